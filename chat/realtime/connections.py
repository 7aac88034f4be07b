"""Find daphne's websocket connection behind an ASGI send, and drop it when its client has gone.

When a client closes, autobahn answers the close at once but daphne only
tells the application once Twisted has flushed what it still holds for the
client. A client that stopped reading before it closed never takes those
bytes, so without this the socket would stay in its rooms and in presence
(a ghost) until the process restarts.
"""
import functools

from autobahn.websocket.protocol import WebSocketProtocol
from daphne.server import Server


def daphne_protocol(send):
    """Return the autobahn protocol behind an ASGI `send` that daphne made, else None."""
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    if getattr(send.func, "__func__", None) is not Server.handle_reply:
        return None
    protocol = send.args[0]
    return protocol if isinstance(protocol, WebSocketProtocol) else None


def abort_if_peer_closed(protocol):
    """Abort the TCP connection of `protocol` when its websocket is closed but the connection lingers; return True if so."""
    transport = getattr(protocol, "transport", None)
    if protocol.state != WebSocketProtocol.STATE_CLOSED or transport is None:
        return False
    if not getattr(transport, "connected", False) or not hasattr(transport, "abortConnection"):
        return False
    # Nothing more can be sent on a closed websocket: the unread bytes are
    # worth nothing. Twisted then reports the loss, and daphne the disconnect.
    transport.abortConnection()
    return True

