"""Write a frame that many sockets receive as bytes built once, straight to daphne's connections.

Through ASGI, daphne (with autobahn and Twisted) encodes the text, builds the
websocket frame and buffers it for the next turn of the event loop, adding and
removing the socket's writer, once for every member of a room: that is most of
the server's cost per delivery. A server frame is unmasked and the same for
every member, so the hub builds it once and each socket gets it with one
socket write. Anything this module does not recognize (another server, a TLS
connection, compression, a socket closing, bytes already queued) falls back to
the ASGI send, so the result on the wire is the same either way.

The direct path reads private attributes of autobahn and Twisted (requirements.txt
pins both): the first daphne socket of a process is checked for all of them,
and a process that finds one missing or of another type, or that meets an
exception while writing, sends everything through ASGI from then on.
"""
import collections
import functools
import inspect
import logging
import struct
from importlib import metadata

from autobahn.websocket.protocol import WebSocketProtocol
from daphne.server import Server
from twisted.internet.tcp import Connection

logger = logging.getLogger(__name__)

TEXT_FIN = 0x81  # FIN + text opcode: one unfragmented text message

# What the direct path reads, and the types it relies on. autobahn sets these
# on each protocol when its connection is made, so they are checked on a live
# socket. The compressor and the timings are objects when on, of any class:
# the path only asks whether they are set, and a set one sends the socket through ASGI.
PROTOCOL_ATTRIBUTES = {
    "state": int, "STATE_OPEN": int, "send_queue": collections.deque, "maxMessagePayloadSize": int,
    "_perMessageCompress": object, "maskServerFrames": bool, "autoFragmentSize": int,
    "trackedTimings": object, "logFrames": bool, "logOctets": bool,
}
CONNECTION_ATTRIBUTES = {
    "connected": int, "disconnecting": int, "_writeDisconnected": bool, "dataBuffer": bytes,
    "_tempDataBuffer": list, "TLS": bool,
}
CONNECTION_METHODS = ("writeSomeData", "write", "abortConnection")
_MISSING = object()


def text_frame(text):
    """Return the bytes of an unmasked, unfragmented websocket text frame carrying `text`."""
    payload = text.encode("utf-8")
    length = len(payload)
    if length <= 125:
        header = struct.pack("!BB", TEXT_FIN, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", TEXT_FIN, 126, length)
    else:
        header = struct.pack("!BBQ", TEXT_FIN, 127, length)
    return header + payload


def direct_writer(send):
    """Return a DirectWriter for an ASGI `send` that daphne made for a plain-TCP websocket, else None."""
    protocol = _daphne_protocol(send)
    if protocol is None or not isinstance(protocol.transport, Connection):
        return None
    if not _direct_path.usable(send, protocol):
        return None
    try:
        if protocol.transport.TLS or _transforms_frames(protocol):
            return None
    except Exception:
        _direct_path.disable("reading a new socket's settings failed", exc_info=True)
        return None
    return DirectWriter(protocol)


def _daphne_protocol(send):
    """Return the autobahn protocol that a send made by daphne's Server is bound to, else None."""
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    if not isinstance(getattr(send.func, "__self__", None), Server):
        return None
    protocol = send.args[0]
    return protocol if isinstance(protocol, WebSocketProtocol) else None


def _surprises(send, protocol):
    """Return what `send` and `protocol` do differently from what the direct path reads, one line each."""
    found = []
    handle_reply = getattr(Server, "handle_reply", None)
    if not inspect.isfunction(handle_reply) or getattr(send.func, "__func__", None) is not handle_reply:
        found.append("daphne's send is not Server.handle_reply")
    transport = protocol.transport
    for owner, attributes in ((protocol, PROTOCOL_ATTRIBUTES), (transport, CONNECTION_ATTRIBUTES)):
        for name, kind in attributes.items():
            value = getattr(owner, name, _MISSING)
            if value is _MISSING:
                found.append(f"{type(owner).__name__}.{name} is missing")
            elif not isinstance(value, kind):
                found.append(f"{type(owner).__name__}.{name} is a {type(value).__name__}, not {kind.__name__}")
    found.extend(f"{type(transport).__name__}.{name} is not a method"
                 for name in CONNECTION_METHODS if not callable(getattr(transport, name, None)))
    return found


class DirectPath:
    """Whether this process writes frames straight to its sockets: checked once, then off for good after a surprise."""

    def __init__(self):
        self.on = None  # not known until a daphne socket is checked

    def usable(self, send, protocol):
        """Return whether the direct path may be used, checking `protocol` if no socket was checked yet."""
        if self.on is None:
            try:
                found = _surprises(send, protocol)
            except Exception as error:
                found = [f"checking a socket raised {type(error).__name__}: {error}"]
            if found:
                self.disable("; ".join(found))
            else:
                self.on = True
        return self.on

    def disable(self, reason, exc_info=False):
        """Send every frame of this process through ASGI from now on, logging why the first time."""
        if self.on is False:
            return
        self.on = False
        logger.warning("direct writes are off, frames go through ASGI: %s (%s)", reason, _versions(),
                       exc_info=exc_info)


def _versions():
    """Return the installed versions of the packages whose internals the direct path reads."""
    found = []
    for name in ("daphne", "autobahn", "Twisted"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} unknown")
    return ", ".join(found)


_direct_path = DirectPath()


def _transforms_frames(protocol):
    """Return True when autobahn would compress, mask, fragment or log the frames of `protocol`."""
    return bool(
        protocol._perMessageCompress is not None or protocol.maskServerFrames or protocol.autoFragmentSize
        or protocol.trackedTimings or protocol.logFrames or protocol.logOctets
    )


class DirectWriter:
    """One daphne websocket's TCP connection, written to with prebuilt frames when that is safe."""

    __slots__ = ("protocol",)

    def __init__(self, protocol):
        self.protocol = protocol

    def write(self, frame):
        """Write a frame built by text_frame and return True, or return False to have ASGI send it."""
        if not _direct_path.on:
            return False
        # Once bytes may have reached the transport, ASGI must not send the
        # frame again: the peer would get part of it twice.
        handed = False
        try:
            protocol = self.protocol
            if protocol.state != protocol.STATE_OPEN or protocol.send_queue:
                return False
            if 0 < protocol.maxMessagePayloadSize < len(frame):
                return False  # autobahn refuses an oversized message with an error; let it
            transport = protocol.transport
            if not transport.connected or transport.disconnecting or transport._writeDisconnected:
                return False
            if not transport.dataBuffer and not transport._tempDataBuffer:
                # Nothing is queued, so writing now keeps the order; and the socket
                # is usually writable, so no writer is added and removed.
                sent = transport.writeSomeData(frame)
                if not isinstance(sent, int):
                    sent = 0  # the connection is lost: Twisted finds out on its next write
                handed = sent > 0
                if sent >= len(frame):
                    return True
                frame = frame[sent:]
            handed = True
            transport.write(frame)
            return True
        except Exception:
            _direct_path.disable("writing a frame raised", exc_info=True)
            if handed:
                self.abort()
            return handed

    def abort(self):
        """Drop the connection, whose stream may end inside a frame, so that its client reconnects and resumes."""
        try:
            self.protocol.transport.abortConnection()
        except Exception:
            logger.debug("could not abort a connection after a failed write", exc_info=True)
