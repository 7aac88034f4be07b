"""Handshake admission on a real daphne: anonymous floods never hold gate slots, and each address has a bound."""
import asyncio
import time

import pytest
import websockets

from chat.realtime.protocol import CLOSE_BUSY, CLOSE_SESSION_ENDED
from harness.servers import WebClient, frame_of, project_env, rooms_create, start_daphne, users_create

pytestmark = [pytest.mark.timeout(120)]

FLOOD_SECONDS = 5
# Enough at once to keep more handshakes waiting than the gate admits in its 2 s wait.
FLOOD_TASKS = 400
FLOOD_MAX_HANDSHAKES = 3000
# The bound of the second server: handshakes per address in its window.
BOUND = 10


def start_server(tmp_path, live_database, name, rate):
    """Start daphne as behind nginx (--proxy-headers: X-Forwarded-For names the client) with CHAT_HANDSHAKE_RATE `rate`."""
    env = project_env(DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1", CHAT_HANDSHAKE_RATE=rate)
    return start_daphne(tmp_path, env=env, name=name, options=["--proxy-headers"])


@pytest.fixture(scope="module")
def users(live_database):
    """Create the tests' users and their rooms."""
    env = project_env(DATABASE_URL=live_database)
    users_create(["ursula", "umberto"], env=env)
    rooms_create(["flood", "bounded"], by="ursula", env=env)


@pytest.fixture
def flood_server(tmp_path, live_database, users):
    """Yield the base URL of a daphne with the default bound per address (60 handshakes in 10 s)."""
    daphne = start_server(tmp_path, live_database, "flood", "60/10")
    try:
        yield f"http://127.0.0.1:{daphne.port}"
    finally:
        daphne.stop()


@pytest.fixture
def bounded_server(tmp_path, live_database, users):
    """Yield the base URL of a daphne admitting BOUND handshakes per address a minute."""
    daphne = start_server(tmp_path, live_database, "bounded", f"{BOUND}/60")
    try:
        yield f"http://127.0.0.1:{daphne.port}"
    finally:
        daphne.stop()




def connect(client, slug, *, address=None, cookie=None):
    """Return an unopened socket to `slug` with the client's session (or `cookie`), from `address` if given."""
    headers = {"Cookie": cookie or f"sessionid={client.cookie('sessionid')}"}
    if address:
        headers["X-Forwarded-For"] = address
    url = client.base_url.replace("http", "ws", 1) + f"/ws/chat/{slug}/"
    return websockets.connect(url, origin=client.base_url, additional_headers=headers, proxy=None, open_timeout=10)


async def outcome(socket):
    """Return "welcome" when the socket is welcomed, else the close code (or the handshake's failure)."""
    try:
        async with socket as ws:
            try:
                await frame_of(ws, "welcome")
                return "welcome"
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
    except websockets.InvalidStatus as error:
        return f"HTTP {error.response.status_code}"
    except TimeoutError:
        return "timeout"


async def garbage_handshake(port):
    """Send one upgrade with a garbage session cookie and the site's Origin; wait for the answer's head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /ws/chat/flood/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nCookie: sessionid=garbage-not-a-session\r\n\r\n".encode()
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        pass
    finally:
        writer.close()


async def test_anonymous_handshake_flood_does_not_starve_logged_in_users(flood_server):
    client = WebClient(flood_server).login("ursula")
    port = int(flood_server.rsplit(":", 1)[1])
    deadline = time.monotonic() + FLOOD_SECONDS
    sent = 0

    async def flood():
        nonlocal sent
        while time.monotonic() < deadline and sent < FLOOD_MAX_HANDSHAKES:
            sent += 1
            await garbage_handshake(port)

    flooders = [asyncio.create_task(flood()) for _ in range(FLOOD_TASKS)]
    outcomes = []
    try:
        await asyncio.sleep(0.5)  # the flood is on
        while time.monotonic() < deadline:
            # From another address than the flood's, as two clients behind nginx are.
            outcomes.append(await outcome(connect(client, "flood", address="203.0.113.7")))
            await asyncio.sleep(0.2)
    finally:
        await asyncio.gather(*flooders)
    assert sent > 300, f"the flood made {sent} handshakes only"
    assert outcomes and all(each == "welcome" for each in outcomes), (sent, outcomes)


async def test_handshakes_past_the_bound_of_an_address_are_closed_busy(bounded_server):
    client = WebClient(bounded_server).login("umberto")
    flooder = "198.51.100.7"
    garbage = "sessionid=garbage"
    for _ in range(BOUND):
        assert await outcome(connect(client, "bounded", address=flooder, cookie=garbage)) == CLOSE_SESSION_ENDED
    # Past the bound everything from that address is turned away before its session is read, logged in or not.
    assert await outcome(connect(client, "bounded", address=flooder, cookie=garbage)) == CLOSE_BUSY
    assert await outcome(connect(client, "bounded", address=flooder)) == CLOSE_BUSY
    assert await outcome(connect(client, "bounded", address="203.0.113.8")) == "welcome"
