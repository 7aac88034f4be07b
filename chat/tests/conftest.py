"""Fixtures shared by the chat tests: users, logged-in sockets."""
import itertools

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from myproject.asgi import application

ORIGIN = "http://localhost"
_usernames = itertools.count(1)


@pytest.fixture
def make_user(db):
    """Return a factory of users with unique names."""

    def make(username=None, **fields):
        username = username or f"user{next(_usernames)}"
        return get_user_model().objects.create_user(username=username, password="pw-for-tests-42", **fields)

    return make


def session_cookie(user):
    """Log `user` in through Django's test client and return its session cookie header."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.fixture
async def connect():
    """Return an async factory of connected communicators; disconnects them all at the end."""
    opened = []

    async def open_socket(user=None, slug="lobby", *, query="", origin=ORIGIN, expect_welcome=True):
        headers = [(b"origin", origin.encode())] if origin else []
        if user is not None:
            headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
        path = f"/ws/chat/{slug}/" + (f"?{query}" if query else "")
        communicator = WebsocketCommunicator(application, path, headers=headers)
        opened.append(communicator)
        connected, _ = await communicator.connect(timeout=5)
        communicator.connected = connected
        if connected and expect_welcome:
            communicator.welcome = await communicator.receive_json_from(timeout=5)
        return communicator

    yield open_socket
    for communicator in opened:
        if communicator.connected:
            await communicator.disconnect()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Run a private redis-server for the session and yield its URL."""
    from chat.tests.servers import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()
