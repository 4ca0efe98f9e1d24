"""``multiprocessing.resource_tracker``, served by procpar-core."""

from procpar_core.resource_tracker import (
    _CLEANUP_FUNCS as _CLEANUP_FUNCS,
)
from procpar_core.resource_tracker import (
    ResourceTracker as ResourceTracker,
)
from procpar_core.resource_tracker import (
    _resource_tracker as _resource_tracker,
)
from procpar_core.resource_tracker import (
    ensure_running as ensure_running,
)
from procpar_core.resource_tracker import (
    getfd as getfd,
)
from procpar_core.resource_tracker import (
    main as main,
)
from procpar_core.resource_tracker import (
    register as register,
)
from procpar_core.resource_tracker import (
    unregister as unregister,
)

__all__ = ["ResourceTracker", "ensure_running", "register", "unregister", "getfd", "main"]
