"""Prebuilt frames written straight to daphne's connections: the same bytes autobahn writes, in the same order."""
import functools
import socket

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet import reactor
from twisted.internet.tcp import Server as TCPConnection
from twisted.internet.testing import StringTransport

from chat.wire import direct_writer, text_frame

MAX_MESSAGE = 65536


def daphne_protocol(max_message=MAX_MESSAGE):
    """Return daphne's server and a fresh websocket protocol of its factory, with production's size limit."""
    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    factory = WebSocketFactory(server, server="test")
    factory.setProtocolOptions(maxMessagePayloadSize=max_message)
    return server, factory.buildProtocol(None)


@pytest.fixture
def connection():
    """Yield an open daphne websocket protocol on a real loopback TCP connection, daphne's send for it and the peer."""
    server, protocol = daphne_protocol()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        accepted, address = listener.accept()
    accepted.setblocking(False)
    transport = TCPConnection(accepted, protocol, address, None, 1, reactor)
    protocol.makeConnection(transport)
    protocol.state = protocol.STATE_OPEN  # as after the opening handshake
    try:
        yield protocol, functools.partial(server.handle_reply, protocol), peer
    finally:
        # Leave nothing registered on the reactor's loop for a later test's socket to collide with.
        transport.stopReading()
        transport.stopWriting()
        peer.close()
        accepted.close()


def received(peer, size):
    """Read exactly `size` bytes from `peer`."""
    peer.settimeout(5)
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


@pytest.mark.parametrize("text", ["", "a", "x" * 125, "x" * 126, "é" * 100, "x" * 65535, "😀" * 16384, "x" * 70000])
def test_text_frame_is_the_frame_autobahn_builds(text):
    _, protocol = daphne_protocol(max_message=0)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state = protocol.STATE_OPEN
    transport.clear()
    protocol.sendMessage(text.encode("utf-8"))
    assert text_frame(text) == transport.value()


def test_a_frame_goes_straight_to_the_socket_when_nothing_is_queued(connection):
    protocol, send, peer = connection
    writer = direct_writer(send)
    assert writer.write(text_frame("hello"))
    assert received(peer, 7) == b"\x81\x05hello"
    assert not protocol.transport._tempDataBuffer


def test_a_frame_waits_behind_what_daphne_queued_before_it(connection):
    protocol, send, peer = connection
    writer = direct_writer(send)
    protocol.sendMessage(b"welcome")  # daphne's own send, buffered until the loop writes it
    assert writer.write(text_frame("live"))
    protocol.transport.doWrite()
    assert received(peer, 15) == text_frame("welcome") + text_frame("live")


def test_what_a_full_socket_cannot_take_is_queued_in_order(connection):
    protocol, send, peer = connection
    writer = direct_writer(send)
    frames = [text_frame(f"{i:03} " + "b" * 60_000) for i in range(100)]
    for frame in frames:
        assert writer.write(frame)
    assert protocol.transport._tempDataBuffer, "the peer reads nothing, so part of 6 MB must wait"
    big, small = b"".join(frames), text_frame("after")
    assert writer.write(small)
    peer.settimeout(5)
    data = b""
    while len(data) < len(big) + len(small):
        protocol.transport.doWrite()
        data += peer.recv(1 << 20)
    assert data == big + small


@pytest.mark.parametrize("state", ["STATE_CONNECTING", "STATE_CLOSING", "STATE_CLOSED"])
def test_a_socket_that_is_not_open_is_left_to_asgi(connection, state):
    protocol, send, peer = connection
    writer = direct_writer(send)
    protocol.state = getattr(protocol, state)
    assert not writer.write(text_frame("late"))
    assert not protocol.transport._tempDataBuffer


def test_a_frame_over_the_size_limit_is_left_to_autobahn(connection):
    protocol, send, peer = connection
    writer = direct_writer(send)
    assert not writer.write(text_frame("x" * MAX_MESSAGE))
    assert not protocol.transport._tempDataBuffer


def test_a_socket_that_compresses_gets_no_writer(connection):
    protocol, send, peer = connection
    assert direct_writer(send) is not None
    protocol._perMessageCompress = object()  # as after permessage-deflate was agreed
    assert direct_writer(send) is None


def test_sends_that_daphne_did_not_make_get_no_writer():
    async def send(message):
        pass

    _, protocol = daphne_protocol()
    assert direct_writer(send) is None
    assert direct_writer(functools.partial(send)) is None
    assert direct_writer(functools.partial(Server.handle_reply, None, protocol)) is None
