"""Attacks on the chat socket and pages, each test named after the attack it defeats."""
import html
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.utils import timezone

from chat.tests.conftest import logged_in_client
from chat.tests.test_consumers import refused
from chat.tests.test_markup import assert_inert

pytestmark = [pytest.mark.django_db(transaction=True)]

SESSION_ENDED = {"type": "websocket.close", "code": 4401}


async def logged_in(make_user, username):
    user = await database_sync_to_async(make_user)(username)
    return user, await database_sync_to_async(logged_in_client)(user)


async def test_socket_of_a_session_logged_out_in_another_tab_is_closed(connect, make_user):
    alice, client = await logged_in(make_user, "alice")
    socket = await connect(alice, client=client)
    other_session = await connect(alice)
    assert (await database_sync_to_async(client.post)("/accounts/logout/")).status_code == 302
    assert await socket.receive_output(timeout=5) == SESSION_ENDED
    socket.connected = False
    # Only that session ended: the same user's other login keeps its socket.
    assert await other_session.receive_nothing(timeout=0.3)
    await refused(await connect(alice, client=client, expect_welcome=False), "forbidden", 4401)


async def test_socket_of_an_expired_session_is_closed(connect, make_user):
    alice, client = await logged_in(make_user, "alice")
    key = client.session.session_key
    await database_sync_to_async(Session.objects.filter(session_key=key).update)(
        expire_date=timezone.now() + timedelta(seconds=1)
    )
    socket = await connect(alice, client=client)
    assert await socket.receive_output(timeout=5) == SESSION_ENDED
    socket.connected = False
    await refused(await connect(alice, client=client, expect_welcome=False), "forbidden", 4401)


async def test_sockets_of_a_deactivated_user_are_closed(connect, make_user):
    alice, client = await logged_in(make_user, "alice")
    sockets = [await connect(alice, client=client), await connect(alice, slug="other")]

    @database_sync_to_async
    def deactivate():
        user = get_user_model().objects.get(pk=alice.pk)
        user.is_active = False
        user.save()

    await deactivate()
    for socket in sockets:
        assert await socket.receive_output(timeout=5) == SESSION_ENDED
        socket.connected = False
    await refused(await connect(alice, client=client, expect_welcome=False), "forbidden", 4401)


# Who may connect: cross-site websocket hijacking.


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "", "http://chat.example.com.evil.example", "http://evil.example.com", "null"],
)
async def test_cross_site_websocket_hijacking_is_refused(connect, make_user, settings, origin):
    settings.ALLOWED_HOSTS = ["localhost", "chat.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = []
    [alice] = [await database_sync_to_async(make_user)("alice")]
    assert not (await connect(alice, origin=origin)).connected
    assert (await connect(alice)).connected  # the page's own origin


async def test_trusted_origins_may_connect(connect, make_user, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.partner.example"]
    alice = await database_sync_to_async(make_user)("alice")
    assert (await connect(alice, origin="https://app.partner.example")).connected
    # The scheme counts for trusted origins: plain http is another origin.
    assert not (await connect(alice, origin="http://app.partner.example")).connected


# Per-frame authorization: frame fields never choose the room or the author.


async def test_frame_naming_another_room_or_author_is_not_trusted(connect, make_user):
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    socket = await connect(alice, slug="lobby")
    await socket.send_json_to(
        {"type": "send", "body": "hi", "room": "secret", "room_id": 99, "author": "bob", "user": bob.pk}
    )
    message = (await socket.receive_json_from(timeout=5))["message"]
    assert message["room"] == "lobby" and message["author"] == "alice"

    @database_sync_to_async
    def stored():
        from chat.domain.models import Message

        return list(Message.objects.values_list("room__slug", "author__username"))

    assert await stored() == [("lobby", "alice")]


# Limits.


async def test_message_flood_is_rate_limited_then_closed(connect, make_user, settings):
    settings.CHAT_MESSAGE_RATE = (3, 60)
    settings.CHAT_FLOOD_FACTOR = 2
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    flooder = await connect(alice)
    bystander = await connect(bob)
    await flooder.receive_json_from(timeout=5)  # bob's join
    for i in range(3):
        await flooder.send_json_to({"type": "send", "body": f"ok {i}"})
        assert (await flooder.receive_json_from(timeout=5))["type"] == "message"
        await bystander.receive_json_from(timeout=5)
    for i in range(3):
        await flooder.send_json_to({"type": "send", "body": f"too many {i}", "client_id": f"c{i}"})
        error = await flooder.receive_json_from(timeout=5)
        assert error["code"] == "rate_limited" and error["client_id"] == f"c{i}"
        assert 0 < error["retry_after"] <= 60
    # Past twice the limit the socket is closed with 4008 (autobahn refuses an application's 1008).
    await flooder.send_json_to({"type": "send", "body": "seventh"})
    assert (await flooder.receive_json_from(timeout=5))["code"] == "rate_limited"
    assert await flooder.receive_output(timeout=5) == {"type": "websocket.close", "code": 4008}
    flooder.connected = False
    # Nothing over the limit was stored or broadcast, and others still chat.
    assert await bystander.receive_nothing(timeout=0.2)
    await bystander.send_json_to({"type": "send", "body": "still fine"})
    assert (await bystander.receive_json_from(timeout=5))["message"]["seq"] == 4


async def test_rate_limit_counts_every_socket_of_the_user(connect, make_user, settings):
    settings.CHAT_MESSAGE_RATE = (2, 60)
    alice = await database_sync_to_async(make_user)("alice")
    first, second = await connect(alice), await connect(alice, slug="other")
    await first.send_json_to({"type": "send", "body": "one"})
    assert (await first.receive_json_from(timeout=5))["type"] == "message"
    await second.send_json_to({"type": "send", "body": "two"})
    assert (await second.receive_json_from(timeout=5))["type"] == "message"
    await first.send_json_to({"type": "send", "body": "three"})
    assert (await first.receive_json_from(timeout=5))["code"] == "rate_limited"


async def test_typing_flood_is_refused(connect, make_user, settings):
    settings.CHAT_TYPING_RATE = (2, 60)
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    typer, watcher = await connect(alice), await connect(bob)
    await typer.receive_json_from(timeout=5)  # bob's join
    for _ in range(2):
        await typer.send_json_to({"type": "typing"})
        assert await watcher.receive_json_from(timeout=5) == {"type": "typing", "user": "alice"}
    await typer.send_json_to({"type": "typing"})
    assert (await typer.receive_json_from(timeout=5))["code"] == "rate_limited"
    assert await watcher.receive_nothing(timeout=0.2)


async def test_socket_exhaustion_by_one_user_is_refused_clearly(connect, make_user, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    alice, bob = [await database_sync_to_async(make_user)(name) for name in ("alice", "bob")]
    await connect(alice)
    await connect(alice, slug="other")
    third = await connect(alice, expect_welcome=False)
    assert (await third.receive_json_from(timeout=5))["code"] == "too_many_sockets"
    assert await third.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    third.connected = False
    assert (await connect(bob)).connected


def test_room_creation_flood_is_refused(make_user, settings):
    from chat.domain import services
    from chat.domain.models import Room
    from chat.platform.limits import LimitExceeded

    settings.CHAT_ROOM_CREATION_RATE = (2, 3600)
    alice = make_user("alice")
    services.room_create(slug="one", user=alice)
    services.room_create(slug="two", user=alice)
    with pytest.raises(LimitExceeded):
        services.room_create(slug="three", user=alice)
    services.room_create(slug="one", user=alice)  # opening an existing room is not creating one
    assert sorted(Room.objects.values_list("slug", flat=True)) == ["one", "two"]


@pytest.mark.parametrize("text", ["x" * 70_000, "€" * 22_000])
async def test_oversized_frame_is_refused(connect, make_user, text):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await connect(alice)
    await socket.send_to(text_data='{"type": "send", "body": "' + text + '"}')
    assert (await socket.receive_json_from(timeout=5))["code"] == "too_long"
    await socket.send_json_to({"type": "send", "body": "€" * 4000})  # 12,000 bytes: within the limit
    assert (await socket.receive_json_from(timeout=5))["type"] == "message"


# Password guessing.


def login(client, username, password, address="10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_password_guessing_on_one_username_is_throttled(client, make_user, settings):
    settings.CHAT_LOGIN_FAILURE_RATE = (3, 900)
    make_user("alice")
    for _ in range(3):
        assert login(client, "alice", "wrong").status_code == 200
    # Even the right password is refused now, from any address, and says why.
    response = login(client, "alice", "pw-for-tests-42", address="10.0.0.2")
    assert response.status_code == 429 and "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    make_user("bob")
    assert login(client, "bob", "pw-for-tests-42").status_code == 302


def test_password_spraying_from_one_address_is_throttled(client, make_user, settings):
    settings.CHAT_LOGIN_FAILURE_RATE = (2, 900)  # so 8 failures per address
    make_user("victim")
    for i in range(8):
        assert login(client, f"user{i}", "guess").status_code == 200
    assert login(client, "victim", "pw-for-tests-42").status_code == 429
    assert login(client, "victim", "pw-for-tests-42", address="10.0.0.9").status_code == 302


def test_mass_signup_from_one_address_is_throttled(client, db, settings):
    settings.CHAT_SIGNUP_RATE = (2, 3600)
    for name in ("one", "two"):
        form = {"username": name, "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
        assert client.post("/accounts/signup/", form, REMOTE_ADDR="10.0.0.1").status_code == 302
        client.post("/accounts/logout/")
    form = {"username": "three", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    response = client.post("/accounts/signup/", form, REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 429 and "Too many sign-ups" in response.content.decode()
    assert not get_user_model().objects.filter(username="three").exists()


# Script injection and framing.

XSS_BODIES = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", '"><svg onload=alert(1)>']


async def test_stored_html_travels_as_inert_json_text(connect, make_user):
    alice = await database_sync_to_async(make_user)("alice")
    socket = await connect(alice)
    for body in XSS_BODIES:
        await socket.send_json_to({"type": "send", "body": body})
        message = json.loads(await socket.receive_from(timeout=5))["message"]
        # The body as typed, a JSON string; beside it only the sanitised rendering, where the markup is text.
        assert message["body"] == body
        assert_inert(message["html"])
        assert message["html"] == f"<p>{html.escape(body, quote=False)}</p>"
    again = await connect(alice)
    assert [m["body"] for m in again.welcome["messages"]] == XSS_BODIES


def test_stored_html_is_never_served_as_markup(client, make_user):
    from chat.domain import services

    alice = make_user("alice")
    room, _ = services.room_open(slug="lobby", user=alice)
    for body in XSS_BODIES:
        services.message_create(room=room, author=alice, body=body)
    client.force_login(alice)
    page = client.get("/chat/lobby/").content.decode()
    assert not any(body in page for body in XSS_BODIES)
    response = client.get("/chat/lobby/messages/?after=0")
    assert response["Content-Type"] == "application/json" and response["X-Content-Type-Options"] == "nosniff"
    assert [m["body"] for m in response.json()["messages"]] == XSS_BODIES


def test_pages_carry_a_strict_content_security_policy(client, make_user):
    client.force_login(make_user("alice"))
    response = client.get("/chat/lobby/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "<script>" not in response.content.decode()  # only external modules and JSON data


# History API parameters.


@pytest.mark.parametrize(
    "query", ["before=x", "after=-1", "after=1&before=2", "limit=0", "limit=101", "after=1e3", "after=" + "9" * 30]
)
def test_malformed_history_query_is_400_not_500(client, make_user, query):
    from chat.tests.conftest import room_ensure

    alice = make_user("alice")
    room_ensure("lobby", alice)
    client.force_login(alice)
    response = client.get(f"/chat/lobby/messages/?{query}")
    assert response.status_code == 400 and response.json()["detail"]


def test_history_api_of_a_private_room_is_for_members_only(client, make_user):
    from chat.domain import services

    alice = make_user("alice")
    services.room_open(slug="secret", user=alice, private=True)
    client.force_login(make_user("eve"))
    assert client.get("/chat/secret/messages/").status_code == 403


def test_history_api_pages(client, make_user):
    from chat.domain import services

    alice = make_user("alice")
    room, _ = services.room_open(slug="lobby", user=alice)
    for i in range(5):
        services.message_create(room=room, author=alice, body=f"m{i}")
    client.force_login(alice)
    latest = client.get("/chat/lobby/messages/?limit=2").json()
    assert [m["seq"] for m in latest["messages"]] == [4, 5] and latest["has_more"] is True
    older = client.get("/chat/lobby/messages/?before=4&limit=10").json()
    assert [m["seq"] for m in older["messages"]] == [1, 2, 3] and older["has_more"] is False


def test_production_refuses_a_wildcard_allowed_host():
    import os
    import subprocess
    import sys

    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "*"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    assert result.returncode != 0 and "ALLOWED_HOSTS must name the site's hosts" in result.stderr
