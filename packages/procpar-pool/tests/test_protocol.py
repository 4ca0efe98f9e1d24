"""The pool's message format (``_protocol``): both directions round-trip, and garbage fails one task, clearly."""

from __future__ import annotations

import pickle

import pytest

from procpar_pool import PicklingFailedError, RemoteTraceback, _oob
from procpar_pool._protocol import (
    BATCH,
    SINGLE,
    TASK_ID,
    decode_reply,
    encode_reply,
    exception_payload,
    read_task_header,
    task_header,
)
from procpar_pool._task import APPLY, MAP

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("layout", [SINGLE, BATCH])
def test_task_header_round_trips(layout: int) -> None:
    ids = [0, 7, (1 << 64) - 3]
    message = task_header(ids, layout) + b"body"
    got_ids, got_layout, start = read_task_header(message)
    assert list(got_ids) == ids
    assert got_layout == layout
    assert message[start:] == b"body"


def test_a_result_round_trips() -> None:
    assert decode_reply(encode_reply(5, APPLY, True, {"a": [1, 2]})) == (5, True, {"a": [1, 2]})


def test_a_chunk_of_ints_travels_packed_and_comes_back_equal() -> None:
    values = list(range(-50, 50))
    message = encode_reply(9, MAP, True, values)
    assert message[TASK_ID.size : TASK_ID.size + 1] == _oob.NUMBERS  # raw 8-byte values, no pickle
    assert decode_reply(message) == (9, True, values)


def test_an_exception_comes_back_with_its_worker_traceback() -> None:
    try:
        raise KeyError("lost")
    except KeyError as exc:
        payload = exception_payload(exc)
    task_id, ok, value = decode_reply(encode_reply(3, APPLY, False, payload))
    assert (task_id, ok) == (3, False)
    assert isinstance(value, KeyError)
    assert isinstance(value.__cause__, RemoteTraceback)
    assert "raise KeyError" in str(value.__cause__)


@pytest.mark.parametrize("body", [pickle.dumps(42), pickle.dumps((True, 1, 2)), b"not a pickle"])
def test_a_reply_that_is_not_an_outcome_fails_its_task_saying_so(body: bytes) -> None:
    task_id, ok, value = decode_reply(TASK_ID.pack(11) + b"\0" + body)
    assert (task_id, ok) == (11, False)
    assert isinstance(value, PicklingFailedError)
    assert "could not be unpickled here" in str(value)


def test_an_unpicklable_result_is_replaced_by_an_error_naming_it() -> None:
    task_id, ok, value = decode_reply(encode_reply(4, MAP, True, [1, lambda: 2]))
    assert (task_id, ok) == (4, False)
    assert "result #1 of the chunk" in str(value)
