from __future__ import annotations

import sys
from typing import Any

import pytest

import procpar_core
from procpar_core import reduction

pytestmark = pytest.mark.timeout(60)


def test_unknown_serializer() -> None:
    with pytest.raises(ValueError, match="unknown serializer 'json'"):
        procpar_core.set_serializer("json")
    assert procpar_core.get_serializer() == "pickle"


def test_missing_cloudpickle_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    with pytest.raises(ImportError, match=r"procpar-core\[cloudpickle\]"):
        procpar_core.set_serializer("cloudpickle")
    assert procpar_core.get_serializer() == "pickle"


def test_lambda_needs_cloudpickle() -> None:
    a, b = procpar_core.Pipe()
    with pytest.raises(Exception):
        a.send(lambda x: x + 1)


def test_cloudpickle_sends_lambdas_and_closures_to_children(run_script: Any) -> None:
    pytest.importorskip("cloudpickle")
    result = run_script(
        """
        import procpar_core
        if __name__ == "__main__":
            procpar_core.set_serializer("cloudpickle")
            factor = 7
            for m in procpar_core.get_all_start_methods():
                ctx = procpar_core.get_context(m)
                r, w = ctx.Pipe()
                p = ctx.Process(target=lambda conn: conn.send((lambda x: x * factor)(6)), args=(w,))
                p.start()
                print(m, r.recv())
                p.join(30)
            a, b = procpar_core.Pipe()
            a.send(lambda y: y - 1)
            print("over pipe", b.recv()(10))
        """
    )
    assert result.returncode == 0, result.stderr
    for m in procpar_core.get_all_start_methods():
        assert f"{m} 42" in result.stdout
    assert "over pipe 9" in result.stdout


def test_forking_pickler_register_and_copyreg() -> None:
    import copyreg
    import io

    class Special:
        def __init__(self, v: int) -> None:
            self.v = v

    reduction.register(Special, lambda s: (int, (s.v,)))
    assert reduction.loads(reduction.dumps(Special(5))) == 5
    buf = io.BytesIO()
    reduction.dump(Special(6), buf)
    assert reduction.loads(buf.getvalue()) == 6

    class Other:
        pass

    # Rebuilt as another type on purpose (typeshed wants a reducer to rebuild its own type).
    copyreg.pickle(Other, lambda o: (str, ("via copyreg",)))  # type: ignore[arg-type,return-value]
    try:
        assert reduction.loads(reduction.dumps(Other())) == "via copyreg"
    finally:
        del copyreg.dispatch_table[Other]


def test_objects_that_must_be_inherited() -> None:
    with pytest.raises(RuntimeError, match="through inheritance"):
        reduction.assert_spawning(object())


class _Reentrant:
    """Pickles a nested procpar pickle of its payload from inside its own reduction."""

    def __init__(self, payload: object) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[object, ...]:
        from procpar_core import _reduction

        return (_rebuild_reentrant, (_reduction.dumps_bytes(self.payload),))


def _rebuild_reentrant(data: bytes) -> object:
    import pickle

    return ("rebuilt", pickle.loads(data))


class _Late:
    pass


def test_thread_pickler_is_reusable_reentrant_and_sees_new_registrations() -> None:
    import copyreg
    import pickle

    from procpar_core import _reduction

    assert pickle.loads(_reduction.dumps_bytes([1, "a", {2: 3}])) == [1, "a", {2: 3}]
    # The memo is cleared between objects: the same object twice pickles the same way.
    shared = ["x"]
    assert _reduction.dumps_bytes(shared) == _reduction.dumps_bytes(shared)
    assert pickle.loads(_reduction.dumps_bytes(_Reentrant({"k": 1}))) == ("rebuilt", {"k": 1})
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        _reduction.dumps_bytes(lambda: None)
    big = [bytes(200_000), "tail"]  # more than one chunk reaches the sink
    assert pickle.loads(_reduction.dumps_bytes(big)) == big
    copyreg.pickle(_Late, lambda obj: (str, ("late reducer",)))  # type: ignore[arg-type,return-value]
    try:
        assert pickle.loads(_reduction.dumps_bytes(_Late())) == "late reducer"
    finally:
        del copyreg.dispatch_table[_Late]
