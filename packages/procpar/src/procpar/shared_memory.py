"""``multiprocessing.shared_memory``, served by procpar-shm.

This module replaces itself with ``procpar_shm.shared_memory``: code that patches module globals (say
``_make_filename`` in a test) must reach the module whose functions read them.
"""

import sys

from procpar_shm import shared_memory as _implementation

sys.modules[__name__] = _implementation
