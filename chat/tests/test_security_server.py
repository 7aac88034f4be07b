"""Attacks on the real server: smuggled header bytes, compression negotiation, oversized frames."""
import socket

import pytest
import websockets

from chat.tests.servers import WebClient, frame_of, project_env, start_daphne, users_create

pytestmark = [pytest.mark.timeout(120)]

MAX_BYTES = 65536
UPGRADE = (
    "GET /ws/chat/lobby/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, live_database):
    """Start daphne as production runs it (frame limits included); yield its base URL."""
    env = project_env(DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1")
    users_create(["mallory"], env=env)
    limits = ["--websocket-max-message-size", str(MAX_BYTES), "--websocket-max-frame-size", str(MAX_BYTES)]
    daphne = start_daphne(tmp_path_factory.mktemp("security"), env=env, options=limits)
    try:
        yield f"http://127.0.0.1:{daphne.port}"
    finally:
        daphne.stop()


def handshake_head(port, request):
    """Send raw request bytes and return the response head (status line and headers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n")[0].decode("latin-1")


@pytest.mark.parametrize(
    "smuggled",
    [b"X-Evil: a\x00b\r\n", b"X-Evil: a\rInjected: 1\r\n", b"X-Evil: a\nInjected: 1\r\n",
     b"Transfer-Encoding : chunked\r\n", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"],
)
def test_upgrade_with_smuggled_header_bytes_is_rejected(server, smuggled):
    port = int(server.rsplit(":", 1)[1])
    client = WebClient(server).login("mallory")
    request = (UPGRADE + f"Origin: {server}\r\nCookie: sessionid={client.cookie('sessionid')}\r\n").encode()
    assert handshake_head(port, request + b"\r\n").startswith("HTTP/1.1 101")  # the same request, clean
    assert handshake_head(port, request + smuggled + b"\r\n").startswith("HTTP/1.1 400")


def test_permessage_deflate_is_not_negotiated(server):
    port = int(server.rsplit(":", 1)[1])
    client = WebClient(server).login("mallory")
    request = UPGRADE + (
        f"Origin: {server}\r\nCookie: sessionid={client.cookie('sessionid')}\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    )
    head = handshake_head(port, request.encode())
    assert head.startswith("HTTP/1.1 101")
    assert "sec-websocket-extensions" not in head.lower()


async def test_oversized_frame_is_refused_by_the_server(server):
    client = WebClient(server).login("mallory")
    async with client.socket("lobby") as ws:
        await frame_of(ws, "welcome")
        await ws.send("x" * (MAX_BYTES + 1))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await frame_of(ws, "error")
    # daphne drops the connection (or closes with 1009, message too big) before the application sees it.
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    async with client.socket("lobby") as ws:  # the server itself is fine
        await frame_of(ws, "welcome")
