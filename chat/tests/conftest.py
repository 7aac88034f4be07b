"""Fixtures shared by the chat tests: users, logged-in sockets, real servers."""
import gc
import itertools
import os

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
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


def logged_in_client(user):
    """Return a Django test client logged in as `user`."""
    client = Client()
    client.force_login(user)
    return client


def room_ensure(slug, user):
    """Create the public room `slug` (by `user`) unless it exists or the slug is not a room's."""
    from chat.domain.models import Room, validate_room_slug
    from chat.domain.services import DIRECT_SLUG

    try:
        validate_room_slug(slug)
    except ValidationError:
        return
    if not DIRECT_SLUG.fullmatch(slug):
        Room.objects.get_or_create(slug=slug, defaults={"name": slug, "created_by": user})


def session_cookie(client):
    """Return the session cookie header of a logged-in test client."""
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.fixture
def sent(monkeypatch):
    """Record the (kind, data) of every domain event the services send after commit, as they register it."""
    # The test's own transaction never commits; test_broadcast_waits_for_commit covers the waiting.
    from chat.realtime import broadcast

    recorded = []

    def record(group, event):
        recorded.append((event.get("kind", event["type"]), event.get("data")))

    monkeypatch.setattr(broadcast, "_send_on_commit", record)
    return recorded


@pytest.fixture
async def connect():
    """Return an async factory of connected communicators; disconnects them all at the end."""
    opened = []

    async def open_socket(user=None, slug="lobby", *, query="", origin=ORIGIN, expect_welcome=True, client=None,
                          create=True, path=None):
        # The Origin must be the page's own: the one of the Host the request names.
        headers = [(b"host", b"localhost")] + ([(b"origin", origin.encode())] if origin else [])
        if user is not None and create:
            # Sockets join rooms but never create them; most tests want a public room that is there.
            await database_sync_to_async(room_ensure)(slug, user)
        if user is not None and client is None:
            client = await database_sync_to_async(logged_in_client)(user)
        if client is not None:
            headers.append((b"cookie", session_cookie(client)))
        path = path or f"/ws/chat/{slug}/" + (f"?{query}" if query else "")
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


@pytest.fixture(scope="session", autouse=True)
def database_threads(django_db_setup):
    """Stop the sockets' database threads before the test database is dropped, closing their connections."""
    yield
    from chat.realtime.consumers import _database_threads

    if _database_threads.cache_info().currsize:
        _database_threads().shutdown()
        _database_threads.cache_clear()
        # The threads' connections close when their last reference goes.
        gc.collect()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Run a private redis-server for the session and yield its URL."""
    from harness.servers import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_database(tmp_path_factory):
    """Yield the URL of a migrated database the real server processes of a test session share.

    A SQLite file by default; a fresh database on the same server when DATABASE_URL is PostgreSQL.
    """
    from harness.servers import database_migrated

    with database_migrated(tmp_path_factory.mktemp("live-db"), f"chat_live_{os.getpid()}") as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
def presence_backend(request, settings):
    """Run a test once with in-process presence and once with presence in a real Redis."""
    if request.param == "memory":
        settings.CHAT_PRESENCE_BACKEND = "chat.realtime.presence.MemoryPresence"
    else:
        import redis

        url = request.getfixturevalue("redis_server")
        redis.Redis.from_url(url).flushdb()
        settings.CHAT_PRESENCE_BACKEND = "chat.realtime.presence.RedisPresence"
        settings.REDIS_URL = url
    return request.param


@pytest.fixture(autouse=True)
def fresh_presence():
    """Give every test its own presence store, so that no one stays online across tests."""
    from chat.realtime.presence import _presence

    _presence.cache_clear()
    yield
    _presence.cache_clear()


@pytest.fixture(autouse=True)
def fresh_change_pages():
    """Forget the change pages read: a rolled-back test's ids come again in the next test, with other rows."""
    from chat.domain.selectors import _change_page

    _change_page.cache_clear()
    yield
    _change_page.cache_clear()


@pytest.fixture(autouse=True)
def fresh_limits():
    """Start every test with empty abuse-limit counters."""
    from chat.platform.limits import get_counter

    get_counter().clear()
    yield
    get_counter().clear()
