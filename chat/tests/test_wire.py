"""Prebuilt frames written straight to daphne's connections: the same bytes autobahn writes, in the same order."""
import collections
import functools
import logging
import socket

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet import reactor
from twisted.internet.tcp import Server as TCPConnection
from twisted.internet.testing import StringTransport

from chat.realtime import wire
from chat.realtime.wire import direct_writer, text_frame

MAX_MESSAGE = 65536


def daphne_protocol(max_message=MAX_MESSAGE):
    """Return daphne's server and a fresh websocket protocol of its factory, with production's size limit."""
    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    factory = WebSocketFactory(server, server="test")
    factory.setProtocolOptions(maxMessagePayloadSize=max_message)
    return server, factory.buildProtocol(None)


@pytest.fixture(autouse=True)
def direct_path(monkeypatch):
    """Give each test a process that has not checked a socket yet."""
    monkeypatch.setattr(wire, "_direct_path", wire.DirectPath())


def wire_warnings(caplog):
    """Return the warnings chat.realtime.wire logged."""
    return [record for record in caplog.records if record.name == "chat.realtime.wire" and record.levelno == logging.WARNING]


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
    protocol.client_addr = list(address)
    server.connections = {}  # as daphne's run() and then each connection do, so that its send delivers
    server.protocol_connected(protocol)
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


@pytest.mark.parametrize("owner, name, value", [
    ("protocol", "send_queue", None),
    ("protocol", "_perMessageCompress", None),
    ("protocol", "maxMessagePayloadSize", "65536"),
    ("transport", "_tempDataBuffer", None),
    ("transport", "dataBuffer", bytearray()),
])
def test_a_process_whose_libraries_changed_sends_through_asgi_for_good(connection, caplog, owner, name, value):
    protocol, send, peer = connection
    target = protocol if owner == "protocol" else protocol.transport
    original = getattr(target, name)
    if value is None:
        delattr(target, name)  # as if a new version renamed it
    else:
        setattr(target, name, value)
    assert direct_writer(send) is None
    assert direct_writer(send) is None
    setattr(target, name, original)
    assert direct_writer(send) is None, "the first socket decides for the whole process"
    [warning] = wire_warnings(caplog)
    assert name in warning.getMessage()


def test_a_socket_that_passes_the_check_logs_nothing(connection, caplog):
    protocol, send, peer = connection
    assert direct_writer(send) is not None
    assert direct_writer(send) is not None
    assert not wire_warnings(caplog)


async def test_a_write_that_raises_before_writing_leaves_the_frame_to_asgi(connection, caplog, monkeypatch):
    protocol, send, peer = connection
    writer = direct_writer(send)
    transport = protocol.transport

    def broken(data):
        raise RuntimeError("a Twisted that works differently")

    with monkeypatch.context() as patch:
        patch.setattr(transport, "writeSomeData", broken)
        assert not writer.write(text_frame("hello"))
    await send({"type": "websocket.send", "text": "hello"})
    transport.doWrite()
    assert received(peer, 7) == text_frame("hello")
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(1)  # nothing of the failed write reached the peer
    assert not writer.write(text_frame("again")), "one failure turns the direct path off for good"
    assert direct_writer(send) is None
    [warning] = wire_warnings(caplog)
    assert warning.exc_info[0] is RuntimeError


def test_a_write_that_raises_after_writing_part_drops_the_connection(connection, caplog, monkeypatch):
    protocol, send, peer = connection
    writer = direct_writer(send)
    transport = protocol.transport
    frame, write_some, aborted = text_frame("hello"), transport.writeSomeData, []

    def broken(data):
        raise RuntimeError("a Twisted that works differently")

    monkeypatch.setattr(transport, "writeSomeData", lambda data: write_some(data[:3]))
    monkeypatch.setattr(transport, "write", broken)
    monkeypatch.setattr(transport, "abortConnection", lambda: aborted.append(True))
    # Sending the whole frame through ASGI after its first bytes would corrupt the stream.
    assert writer.write(frame), "part of the frame is on the wire: not to be sent again"
    assert aborted == [True]
    assert received(peer, 3) == frame[:3]
    assert len(wire_warnings(caplog)) == 1
