"""Start and stop the real servers some tests need: redis-server (and Sentinel), daphne, nginx."""
import asyncio
import contextlib
import http.client
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import websockets.asyncio.client


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_on_a_free_port(build, attempts=3):
    """Start the Server that build(port) returns on a free port, taking another when that one was taken meanwhile."""
    for attempt in range(attempts):
        try:
            return build(free_port()).start()
        except RuntimeError:
            # Between free_port() and the server's bind, another process can take the port.
            if attempt == attempts - 1:
                raise


def require_binary(name):
    """Return the path of `name`, skip the test when it is missing, or fail under CI=true."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed; the tests that need a real {name} cannot run.")
    return path


def require(present, message):
    """Skip the test with `message` unless `present`, or fail under CI=true, where it must be installed."""
    if present:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " CI must install it (.ci/run).")
    pytest.skip(message)


def wait_for_port(port, process, timeout=20.0):
    """Wait until something accepts connections on `port`, or fail if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


class Server:
    """One real server process, started by a test and always stopped by it."""

    def __init__(self, args, port, *, env=None, cwd=None, log_path=None):
        self.args, self.port, self.env, self.cwd = args, port, env, cwd
        self.log_path = log_path
        self.process = None

    def start(self):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_port(self.port, self.process)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stop the process (and its children) with `sig`, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


class ServerGroup:
    """Start servers together in a with block; close() stops them on the way out, whatever happened."""

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Start every server of the group."""
        raise NotImplementedError("subclasses of ServerGroup must provide a start() method")

    def close(self):
        """Stop every server the group started, including after a start that failed half-way."""
        raise NotImplementedError("subclasses of ServerGroup must provide a close() method")


def start_redis(tmp_path, *options, name="redis"):
    """Start a private redis-server on a free port, keeping nothing on disk; `options` are more of its flags."""
    binary = require_binary("redis-server")

    def build(port):
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                "--dir", str(tmp_path), *options]
        return Server(args, port, log_path=tmp_path / f"{name}.log")

    return start_on_a_free_port(build)


def start_sentinel(tmp_path, master_port, *, master_name, password, down_after_ms=500, failover_timeout_ms=3000):
    """Start a private Redis Sentinel on a free port, watching the master on `master_port` alone (quorum 1)."""
    binary = require_binary("redis-server")

    def build(port):
        # Sentinel rewrites its config file as it learns of replicas and failovers: each its own file.
        config = tmp_path / f"sentinel-{port}.conf"
        config.write_text("\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {tmp_path}",
            f"sentinel monitor {master_name} 127.0.0.1 {master_port} 1",
            f"sentinel auth-pass {master_name} {password}",
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}",
            f"sentinel failover-timeout {master_name} {failover_timeout_ms}",
        ]) + "\n")
        return Server([binary, str(config), "--sentinel"], port, log_path=tmp_path / f"sentinel-{port}.log")

    return start_on_a_free_port(build)


PROJECT_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "pw-for-live-tests-42"


def project_env(**overrides):
    """Return this process's environment for a project subprocess, with `overrides` (None removes)."""
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "REDIS_URL", "DATABASE_URL"}}
    env.setdefault("SECRET_KEY", "insecure-key-for-tests-only")
    # Whatever a proxy variable says, these tests talk to 127.0.0.1 only.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def manage(*args, env, timeout=120):
    """Run `manage.py args` in a subprocess and return its output; raise with the output on failure."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


@contextlib.contextmanager
def database_migrated(directory, name):
    """Yield the URL of a new migrated database, dropped after: SQLite in `directory`, or `name` beside DATABASE_URL's."""
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        url = f"sqlite:///{Path(directory) / 'db.sqlite3'}"
        manage("migrate", "--noinput", env=project_env(DATABASE_URL=url))
        yield url
        return
    import psycopg

    admin_url = urllib.parse.urlunsplit(urllib.parse.urlsplit(base_url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urllib.parse.urlunsplit(urllib.parse.urlsplit(base_url)._replace(path=f"/{name}"))
        manage("migrate", "--noinput", env=project_env(DATABASE_URL=url))
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def users_create(usernames, *, env, exist_ok=False):
    """Create users with PASSWORD in the database `env` points to (leaving out those there already if `exist_ok`)."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        f"for name in {list(usernames)!r}:\n"
        f"    if not ({exist_ok!r} and get_user_model().objects.filter(username=name).exists()):\n"
        f"        get_user_model().objects.create_user(name, password={PASSWORD!r})\n"
    )
    manage("shell", "-c", code, env=env)


def rooms_create(slugs, *, env, by=None, private=False):
    """Create rooms in the database `env` points to, `by` the named user if any (sockets join rooms, never create them)."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain.models import Room, Membership\n"
        f"user = get_user_model().objects.get(username={by!r}) if {by!r} else None\n"
        f"for slug in {list(slugs)!r}:\n"
        f"    room, _ = Room.objects.get_or_create(slug=slug, defaults={{'name': slug, 'created_by': user, 'is_private': {private!r}}})\n"
        "    if user: Membership.objects.get_or_create(room=room, user=user)\n"
    )
    manage("shell", "-c", code, env=env)


# Tests that are not about the abuse limits must not trip them; the ones that
# are pass their own values in `env`.
UNLIMITED = {
    "CHAT_MESSAGE_RATE": "1000000/1",
    "CHAT_TYPING_RATE": "1000000/1",
    "CHAT_CHANGE_RATE": "1000000/1",
    "CHAT_HANDSHAKE_RATE": "1000000/1",
    "CHAT_ROOM_CREATION_RATE": "1000000/1",
    "CHAT_MAX_SOCKETS_PER_USER": "1000000",
}


def start_daphne(tmp_path, *, env, name="daphne", options=()):
    """Start one daphne process serving the project on a free port, logging (with access lines) to tmp_path/<name>.log."""
    env = {**UNLIMITED, **env}

    def build(port):
        args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "--access-log", "-", *options,
                "myproject.asgi:application"]
        return Server(args, port, env=env, cwd=PROJECT_DIR, log_path=tmp_path / f"{name}.log")

    return start_on_a_free_port(build)


@contextlib.contextmanager
def daphnes_running(tmp_path, *, env, names=("a", "b")):
    """Yield the base URLs of daphne processes daphne-<name> started on `env`; stop every one on the way out."""
    servers = []
    try:
        for name in names:
            servers.append(start_daphne(tmp_path, env=env, name=f"daphne-{name}"))
        yield [f"http://127.0.0.1:{server.port}" for server in servers]
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def daphne_serving(tmp_path, *, env):
    """Run one daphne for the block and yield its base URL; it is stopped however the block ends."""
    with daphnes_running(tmp_path, env=env, names=("one",)) as (url,):
        yield url


def start_nginx(config_path, prefix, port):
    """Start nginx with `config_path` (pid, logs and temp files under `prefix`), listening on `port`."""
    binary = require_binary("nginx")
    args = [binary, "-c", str(config_path), "-p", str(prefix), "-g", "daemon off;"]
    return Server(args, port, cwd=prefix, log_path=Path(prefix) / "nginx.out").start()


class WebClient:
    """A browser stand-in: keeps cookies, logs in through the real login form, opens chat sockets."""

    def __init__(self, base_url, ssl_context=None):
        self.base_url = base_url.rstrip("/")
        self.ssl_context = ssl_context
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl_context),
            urllib.request.HTTPCookieProcessor(self.cookies),
        )

    def request(self, path, data=None, headers=None):
        """Return (status, body text) of a GET, or a form POST when `data` is given."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers or {})
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def cookie(self, name):
        return next((cookie.value for cookie in self.cookies if cookie.name == name), None)

    def fetch(self, path, body=None, headers=None):
        """Return (status, headers, body bytes) of a GET, or a POST of `body`; redirects are answers, not followed."""
        host = urllib.parse.urlsplit(self.base_url)
        connection_class = http.client.HTTPSConnection if host.scheme == "https" else http.client.HTTPConnection
        options = {"context": self.ssl_context} if host.scheme == "https" else {}
        connection = connection_class(host.netloc, timeout=10, **options)
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.cookies)
        try:
            connection.request("POST" if body is not None else "GET", path, body, {"Cookie": cookies, **(headers or {})})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def upload(self, path, filename, data, content_type="application/octet-stream"):
        """Return (status, JSON answer) of a multipart POST of one file as the field `file`, CSRF token included."""
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-CSRFToken": self.cookie("csrftoken"),
            "Origin": self.base_url, "Referer": self.base_url + "/",
        }
        status, _, answer = self.fetch(path, body, headers)
        return status, json.loads(answer)

    def login(self, username, password=PASSWORD):
        """Log in through /accounts/login/ like a browser: GET the form, POST it back with its CSRF token."""
        status, page = self.request("/accounts/login/")
        assert status == 200, page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        # Over HTTPS Django also checks that the post comes from this very origin.
        headers = {"Referer": f"{self.base_url}/accounts/login/", "Origin": self.base_url}
        status, page = self.request(
            "/accounts/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token}, headers
        )
        assert status == 200 and self.cookie("sessionid"), f"login of {username} failed ({status}):\n{page[:2000]}"
        return self

    def socket(self, slug=None, query=""):
        """Return an unopened websocket connection carrying this client's session: to a room (v1), or a tab's (v2)."""
        path = f"/ws/chat/{slug}/" if slug is not None else "/ws/"
        url = self.base_url.replace("http", "ws", 1) + path + (f"?{query}" if query else "")
        return websockets.asyncio.client.connect(
            url, origin=self.base_url, additional_headers={"Cookie": f"sessionid={self.cookie('sessionid')}"},
            ssl=self.ssl_context if url.startswith("wss") else None, proxy=None, open_timeout=10,
        )


async def frame_of(socket, *types, timeout=10.0):
    """Return the next frame of one of `types` from a websockets connection, skipping other kinds."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] in types:
                return frame


async def presence_of(socket, user, timeout=10.0):
    """Return (room, "online" or "offline") from the next v2 `presence` frame that names `user`."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await frame_of(socket, "presence")
            for state in ("online", "offline"):
                if user in frame[state]:
                    return frame["room"], state
