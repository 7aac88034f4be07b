"""Attacks on the real server: smuggled header bytes, compression negotiation, oversized frames, foreign origins."""
import json
import re
import socket

import pytest
import websockets

from chat.realtime.protocol import CLOSE_SESSION_ENDED
from harness.servers import (
    PASSWORD, PROJECT_DIR, WebClient, frame_of, manage, project_env, rooms_create, start_daphne, users_create,
)

pytestmark = [pytest.mark.timeout(120)]

MAX_BYTES = 65536
# Three failures per username, twelve per address, so that the login tests need few attempts.
LOGIN_FAILURES = 3


def upgrade(port, host=None, slug="lobby"):
    """Return the head of a websocket upgrade request to daphne on `port`, less the Origin and the blank line."""
    return (
        f"GET /ws/chat/{slug}/ HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory, live_database):
    """Start daphne as production runs it (frame limits included); yield its base URL."""
    env = project_env(
        DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1", CHAT_LOGIN_FAILURE_RATE=f"{LOGIN_FAILURES}/900",
    )
    users_create(["mallory"], env=env)
    rooms_create(["lobby"], by="mallory", env=env)
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
    request = (upgrade(port) + f"Origin: {server}\r\nCookie: sessionid={client.cookie('sessionid')}\r\n").encode()
    assert handshake_head(port, request + b"\r\n").startswith("HTTP/1.1 101")  # the same request, clean
    assert handshake_head(port, request + smuggled + b"\r\n").startswith("HTTP/1.1 400")


def test_permessage_deflate_is_not_negotiated(server):
    port = int(server.rsplit(":", 1)[1])
    client = WebClient(server).login("mallory")
    request = upgrade(port) + (
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


# Who may connect: the Origin must be the site's own origin (scheme, host and port) or a trusted one.


def handshake_status(port, *, origin, cookie, host=None, headers=""):
    """Return the status code daphne answers a websocket upgrade with."""
    request = upgrade(port, host) + f"Origin: {origin}\r\nCookie: sessionid={cookie}\r\n{headers}\r\n"
    return int(handshake_head(port, request.encode()).split(" ", 2)[1])


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:9999", "https://127.0.0.1", "http://127.0.0.1", "https://127.0.0.1:{port}"]
)
def test_origin_of_another_port_or_scheme_is_refused(server, origin):
    port = int(server.rsplit(":", 1)[1])
    cookie = WebClient(server).login("mallory").cookie("sessionid")
    assert handshake_status(port, origin=server, cookie=cookie) == 101
    assert handshake_status(port, origin=origin.format(port=port), cookie=cookie) == 403


def production_env(**overrides):
    """Return deploy/chat.env.example as an environment, with `overrides` for what a test machine lacks."""
    env = {}
    for line in (PROJECT_DIR / "deploy" / "chat.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return project_env(**{**env, "SECRET_KEY": "insecure-key-for-tests-only", **overrides})


def session_create(username, *, env):
    """Return the key of a new login session of `username` in the database `env` points to."""
    code = (
        "from importlib import import_module\n"
        "from django.conf import settings\n"
        "from django.contrib import auth\n"
        f"user = auth.get_user_model().objects.get(username={username!r})\n"
        "session = import_module(settings.SESSION_ENGINE).SessionStore()\n"
        "session[auth.SESSION_KEY] = str(user.pk)\n"
        "session[auth.BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
        "session[auth.HASH_SESSION_KEY] = user.get_session_auth_hash()\n"
        "session.create()\n"
        "print('session', session.session_key)\n"
    )
    return re.search(r"^session (\S+)$", manage("shell", "-c", code, env=env), re.M).group(1)


def test_origin_of_another_scheme_or_port_is_refused_in_production(tmp_path, live_database, redis_server, server):
    env = production_env(DATABASE_URL=live_database, REDIS_URL=redis_server, STATIC_ROOT=tmp_path / "static")
    cookie = session_create("mallory", env=env)
    daphne = start_daphne(tmp_path, env=env, options=["--proxy-headers"])
    try:
        # As nginx forwards it: the Host the browser sent, and the scheme it came over.
        sent = {"host": "chat.example.com", "headers": "X-Forwarded-Proto: https\r\n", "cookie": cookie}
        assert handshake_status(daphne.port, origin="https://chat.example.com", **sent) == 101
        for origin in ["http://chat.example.com", "https://chat.example.com:8443", "https://evil.example"]:
            assert handshake_status(daphne.port, origin=origin, **sent) == 403, origin
        # A Host outside ALLOWED_HOSTS is refused even with a trusted Origin.
        sent["host"] = "evil.example"
        assert handshake_status(daphne.port, origin="https://chat.example.com", **sent) == 403
    finally:
        daphne.stop()


# Anonymous handshakes are told their session ended, instead of a 403 the page sees as a dropped connection.


@pytest.mark.parametrize("cookie", [None, "sessionid=garbage-not-a-session"])
async def test_anonymous_handshake_is_closed_with_session_ended_not_refused(server, cookie):
    url = server.replace("http", "ws", 1) + "/ws/chat/lobby/"
    headers = {"Cookie": cookie} if cookie else {}
    async with websockets.connect(url, origin=server, additional_headers=headers, proxy=None, open_timeout=10) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                frame = json.loads(await ws.recv())
                assert frame["type"] == "error"
    assert closed.value.rcvd.code == CLOSE_SESSION_ENDED


# The admin's login page is throttled with the site's: a failure on either counts for both.


def staff_create(usernames, *, env):
    """Create staff users with PASSWORD, who may log in to the admin."""
    users_create(usernames, env=env)
    code = (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.filter(username__in={list(usernames)!r}).update(is_staff=True)\n"
    )
    manage("shell", "-c", code, env=env)


def login_post(client, path, username, password):
    """Post a login form at `path` as a browser does (its CSRF token, this origin); return the status."""
    status, page = client.request(path)
    assert status == 200, page[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    headers = {"Referer": client.base_url + path, "Origin": client.base_url}
    return client.request(path, {"username": username, "password": password, "csrfmiddlewaretoken": token}, headers)[0]


@pytest.mark.parametrize(
    "guessed_at, then_at", [("/admin/login/", "/admin/login/"), ("/admin/login/", "/accounts/login/"),
                            ("/accounts/login/", "/admin/login/")],
)
def test_password_guessing_at_the_admin_login_is_throttled(server, live_database, guessed_at, then_at):
    staff = f"staff-{guessed_at.strip('/').split('/')[0]}-{then_at.strip('/').split('/')[0]}"
    staff_create([staff], env=project_env(DATABASE_URL=live_database))
    client = WebClient(server)
    for _ in range(LOGIN_FAILURES):
        assert login_post(client, guessed_at, staff, "wrong-password") == 200
    # Throttled: even the right password is refused until the window ends.
    assert login_post(client, then_at, staff, PASSWORD) == 429
    assert client.cookie("sessionid") is None
