"""The resource tracker: removes named resources a program leaves behind when it ends or is killed."""

from __future__ import annotations

from ._resource_tracker import (
    _CLEANUP_FUNCS,
    ResourceTracker,
    _resource_tracker,
    ensure_running,
    getfd,
    main,
    register,
    revive_if_dead,
    start_deferred,
    sweep_dead_programs,
    unregister,
)

__all__ = ["ResourceTracker", "ensure_running", "register", "unregister", "getfd", "main", "sweep_dead_programs",
           "revive_if_dead", "start_deferred", "_CLEANUP_FUNCS", "_resource_tracker"]
