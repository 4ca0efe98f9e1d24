"""``multiprocessing.connection``, served by procpar-core."""

from procpar_core.connection import BUFSIZE as BUFSIZE
from procpar_core.connection import CHALLENGE as CHALLENGE
from procpar_core.connection import CONNECTION_TIMEOUT as CONNECTION_TIMEOUT
from procpar_core.connection import FAILURE as FAILURE
from procpar_core.connection import WELCOME as WELCOME
from procpar_core.connection import AuthenticationError as AuthenticationError
from procpar_core.connection import BufferTooShort as BufferTooShort
from procpar_core.connection import Client as Client
from procpar_core.connection import Connection as Connection
from procpar_core.connection import Listener as Listener
from procpar_core.connection import Pipe as Pipe
from procpar_core.connection import SocketClient as SocketClient
from procpar_core.connection import address_type as address_type
from procpar_core.connection import answer_challenge as answer_challenge
from procpar_core.connection import arbitrary_address as arbitrary_address
from procpar_core.connection import default_family as default_family
from procpar_core.connection import deliver_challenge as deliver_challenge
from procpar_core.connection import families as families
from procpar_core.connection import wait as wait

__all__ = [
    "Client",
    "Connection",
    "Listener",
    "Pipe",
    "wait",
    "deliver_challenge",
    "answer_challenge",
    "AuthenticationError",
    "BufferTooShort",
    "address_type",
    "arbitrary_address",
    "default_family",
    "families",
    "BUFSIZE",
    "CONNECTION_TIMEOUT",
    "SocketClient",
    "CHALLENGE",
    "WELCOME",
    "FAILURE",
]
