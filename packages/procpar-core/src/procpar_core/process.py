"""Process objects and the per-process state (current, parent, children)."""

from ._process import (
    ORIGINAL_DIR,
    AuthenticationString,
    BaseProcess,
    _cleanup,
    _dangling,
    active_children,
    current_process,
    parent_process,
)

__all__ = [
    "BaseProcess",
    "current_process",
    "parent_process",
    "active_children",
    "AuthenticationString",
    "ORIGINAL_DIR",
    "_cleanup",
    "_dangling",
]
