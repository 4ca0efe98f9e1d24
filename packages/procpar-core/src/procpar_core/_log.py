"""The package logger: ``get_logger`` and ``log_to_stderr``.

The logger is called ``procpar``. ``logging`` fills ``processName`` from the stdlib's
``multiprocessing`` only, so a filter writes procpar's own process name into every record that passes.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    import logging
    from typing import Any, Union

# ``logging`` is imported on first use only: it pulls in ``re``, ``traceback`` and ``threading``, and the
# spawn child's bootstrap must stay lean.

SUBDEBUG = 5
SUBWARNING = 25
LOGGER_NAME = "procpar"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"

_logger: logging.Logger | None = None
_stderr_handler: logging.Handler | None = None


def _set_process_name(record: Any) -> bool:
    from ._process import current_process

    record.processName = current_process().name
    return True


def set_logger_name(name: str) -> None:
    """Name the package logger ``name`` (``"multiprocessing"`` under ``procpar.install()``, so that a program
    that configures the stdlib's logger configures procpar's); before or after its first use."""
    global LOGGER_NAME, _logger
    if name == LOGGER_NAME:
        return
    LOGGER_NAME = name
    if _logger is not None:

        old, _logger = _logger, None
        new = get_logger()
        new.setLevel(old.level)
        for handler in old.handlers:
            new.addHandler(handler)


def get_logger() -> logging.Logger:
    """Return the procpar logger, creating it (level NOTSET, no handler) on first use."""
    global _logger
    if _logger is None:
        import logging

        logging.addLevelName(SUBDEBUG, "SUBDEBUG")
        logging.addLevelName(SUBWARNING, "SUBWARNING")
        logger = logging.getLogger(LOGGER_NAME)
        logger.propagate = False
        logger.addFilter(_set_process_name)
        _logger = logger
    return _logger


def log_to_stderr(level: Union[int, str, None] = None) -> logging.Logger:
    """Send the procpar logger's records to stderr in the documented format; return the logger."""
    global _stderr_handler
    import logging

    logger = get_logger()
    if _stderr_handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(DEFAULT_LOGGING_FORMAT))
        handler.addFilter(_set_process_name)
        logger.addHandler(handler)
        _stderr_handler = handler
    if level:
        logger.setLevel(level)
    return logger


def current_config() -> tuple[int, bool] | None:
    """What a spawned child needs to rebuild the logger: (level, stderr handler), or None if unused."""
    if _logger is None:
        return None
    # The effective level: a child's root logger is unconfigured, so a level inherited from the parent's
    # root logger must travel explicitly.
    return (_logger.getEffectiveLevel(), _stderr_handler is not None)


def apply_config(config: tuple[int, bool] | None) -> None:
    if config is None:
        return
    level, to_stderr = config
    if to_stderr:
        log_to_stderr(level or None)
    else:
        get_logger().setLevel(level)


NOTSET, DEBUG, INFO = 0, 10, 20


def _log(level: int, msg: str, *args: object) -> None:
    # Cheap when nobody asked for logging: no logger object exists yet. stacklevel 3: the record names the
    # caller of debug()/info()/... (its %(filename)s and %(lineno)d), as the stdlib's do.
    if _logger is not None:
        _logger.log(level, msg, *args, stacklevel=3)


def sub_debug(msg: str, *args: object) -> None:
    _log(SUBDEBUG, msg, *args)


def debug(msg: str, *args: object) -> None:
    _log(DEBUG, msg, *args)


def info(msg: str, *args: object) -> None:
    _log(INFO, msg, *args)


def sub_warning(msg: str, *args: object) -> None:
    _log(SUBWARNING, msg, *args)
