"""The handshake gate: a few handshakes at a time, the late ones closed with 4013 at once."""
import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from chat.realtime import handshakes
from chat.realtime.handshakes import HandshakeGate, HandshakesPerAddress
from chat.realtime.protocol import CLOSE_BUSY, CLOSE_SESSION_ENDED


class SlowHandshakes:
    """An app whose handshakes accept only when the test lets them."""

    def __init__(self):
        self.go = asyncio.Event()
        self.started = 0

    async def __call__(self, scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        self.started += 1
        await self.go.wait()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "welcome"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@pytest.fixture
def gate(monkeypatch):
    monkeypatch.setattr(handshakes, "HANDSHAKES_AT_ONCE", 2)
    monkeypatch.setattr(handshakes, "HANDSHAKE_WAIT_SECONDS", 0.2)
    app = SlowHandshakes()
    return app, HandshakeGate(app)


async def test_a_handshake_past_the_limit_that_waits_too_long_is_closed_with_4013(gate):
    app, application = gate
    first, second, third = (WebsocketCommunicator(application, "/ws/chat/lobby/") for _ in range(3))
    pending = [asyncio.create_task(c.connect()) for c in (first, second)]
    while app.started < 2:
        await asyncio.sleep(0.01)
    connected, _ = await third.connect()
    assert connected
    assert await third.receive_output() == {"type": "websocket.close", "code": CLOSE_BUSY}
    assert app.started == 2  # the third never reached the app
    app.go.set()
    assert all(ok for ok, _ in await asyncio.gather(*pending))
    for communicator in (first, second, third):
        await communicator.disconnect()


async def test_accepted_sockets_free_their_slot_for_the_next_handshake(gate):
    app, application = gate
    app.go.set()
    sockets = [WebsocketCommunicator(application, "/ws/chat/lobby/") for _ in range(5)]
    for communicator in sockets:
        connected, _ = await communicator.connect()
        assert connected and await communicator.receive_from() == "welcome"
    assert app.started == 5
    for communicator in sockets:
        await communicator.disconnect()


async def test_a_handshake_the_app_refuses_frees_its_slot(gate):
    async def refuse(scope, receive, send):
        await receive()
        await send({"type": "websocket.close"})

    application = HandshakeGate(refuse)
    for _ in range(5):
        connected, _ = await WebsocketCommunicator(application, "/ws/chat/lobby/").connect()
        assert not connected


async def test_bad_origins_never_wait_for_the_gate(monkeypatch):
    from myproject.asgi import application

    # Every slot taken: a handshake that reached the gate would wait, then get 4013.
    monkeypatch.setattr(handshakes, "_loop_slots", lambda: asyncio.Semaphore(0))
    monkeypatch.setattr(handshakes, "HANDSHAKE_WAIT_SECONDS", 5)
    headers = [(b"host", b"localhost"), (b"origin", b"http://evil.example"), (b"cookie", b"sessionid=garbage")]
    communicator = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=headers)
    async with asyncio.timeout(2):
        connected, _ = await communicator.connect()
    assert not connected


async def test_handshakes_of_an_address_past_its_bound_are_closed_with_4013(settings):
    settings.CHAT_HANDSHAKE_RATE = (2, 60)
    handshakes._per_address.clear()

    async def accept(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})

    application = HandshakesPerAddress(accept)

    async def handshake(address):
        communicator = WebsocketCommunicator(application, "/ws/chat/lobby/")
        communicator.scope["client"] = [address, 50000]
        assert (await communicator.connect())[0]
        if await communicator.receive_nothing(0.05):
            return "admitted"
        return (await communicator.receive_output())["code"]

    assert [await handshake("198.51.100.1") for _ in range(3)] == ["admitted", "admitted", CLOSE_BUSY]
    assert await handshake("198.51.100.2") == "admitted"
