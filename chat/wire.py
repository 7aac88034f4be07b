"""Write a frame that many sockets receive as bytes built once, straight to daphne's connections.

Through ASGI, daphne (with autobahn and Twisted) encodes the text, builds the
websocket frame and buffers it for the next turn of the event loop, adding and
removing the socket's writer, once for every member of a room: that is most of
the server's cost per delivery. A server frame is unmasked and the same for
every member, so the hub builds it once and each socket gets it with one
socket write. Anything this module does not recognize (another server, a TLS
connection, compression, a socket closing, bytes already queued) falls back to
the ASGI send, so the result on the wire is the same either way.
"""
import functools
import struct

from autobahn.websocket.protocol import WebSocketProtocol
from daphne.server import Server
from twisted.internet.tcp import Connection

TEXT_FIN = 0x81  # FIN + text opcode: one unfragmented text message


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
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    if getattr(send.func, "__func__", None) is not Server.handle_reply:
        return None
    protocol = send.args[0]
    if not isinstance(protocol, WebSocketProtocol) or _transforms_frames(protocol):
        return None
    if not isinstance(protocol.transport, Connection) or protocol.transport.TLS:
        return None
    return DirectWriter(protocol)


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
            if sent >= len(frame):
                return True
            frame = frame[sent:]
        transport.write(frame)
        return True
