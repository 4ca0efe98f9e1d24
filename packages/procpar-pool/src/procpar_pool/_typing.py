"""Type aliases procpar-pool's signatures share. Imported by type checkers only (``if TYPE_CHECKING:``): the
package keeps ``typing`` out of its run-time imports.

mypy runs with ``disallow_any_explicit`` over this package; the one ``Any`` it needs is the ``...`` of a callable
of any signature (a task's function, an initializer), which Python's type system cannot spell otherwise. It is
written once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")

#: A callable of any signature whose result is not looked at (an initializer, a callback's target).
Function = Callable[..., object]  # type: ignore[explicit-any]
#: A callable of any signature returning ``R`` (a task's function: ``apply``, ``starmap``).
Returning = Callable[..., R]  # type: ignore[explicit-any]
