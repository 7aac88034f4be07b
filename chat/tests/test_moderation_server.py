"""Moderation through a real daphne and Redis: a ban closes a live socket with 4401 and refuses the login; a mute
refuses sends with a clear error, stores nothing, and ends on time. The moderator acts from another process, as
the admin of another server process would."""
import asyncio
import datetime
import json

import pytest

from chat.tests.test_hardening_server import closed_code, logged_errors, names, serving
from chat.tests.test_hardening_server import next_frame as v1_frame
from chat.tests.test_v2_server import next_frame
from harness.servers import PASSWORD, WebClient, manage, project_env

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def server(tmp_path_factory, live_database, redis_server):
    """Yield (base URL, daphne log, moderator, room, the shell's environment) of one daphne on Redis."""
    moderator, alice, bob = names("mod", "alice", "bob")
    [room] = names("room")
    with serving(tmp_path_factory.mktemp("moderation"), live_database, [moderator, alice, bob], rooms=[room],
                 REDIS_URL=redis_server) as (base, log, _):
        env = project_env(DATABASE_URL=live_database, REDIS_URL=redis_server)
        manage("shell", "-c", f"from django.contrib.auth import get_user_model\n"
               f"get_user_model().objects.filter(username={moderator!r}).update(is_staff=True)", env=env)
        yield base, log, (moderator, alice, bob), room, env


def moderate(env, call):
    """Run `call` (Python naming moderation, mod, user, room and in_seconds) in a shell process; return its output."""
    code = (
        "import datetime\nfrom django.contrib.auth import get_user_model\nfrom django.utils import timezone\n"
        "from chat.domain import moderation\nfrom chat.domain.models import Room\n"
        "users = get_user_model().objects\n"
        "def in_seconds(n): return timezone.now() + datetime.timedelta(seconds=n)\n"
        f"{call}\n"
    )
    return manage("shell", "-c", code, env=env)


async def subscribed(ws, room):
    await next_frame(ws, "hello")
    await ws.send(json.dumps({"type": "subscribe", "room": room, "request_id": "s"}))
    return await next_frame(ws, "subscribed")


def stored_count(env, room, author):
    out = moderate(env, f"print(Room.objects.get(slug={room!r}).messages.filter(author__username={author!r}).count())")
    return int(out.strip().splitlines()[-1])


async def test_a_muted_user_is_told_at_once_stores_nothing_and_sends_again_once_the_mute_ends(server):
    base, log, (moderator, _, bob), room, env = server
    client = WebClient(base).login(bob)
    async with client.socket() as ws:
        assert "muted_until" not in await subscribed(ws, room)
        moderate(env, f"moderation.room_mute(actor=users.get(username={moderator!r}), room=Room.objects.get("
                      f"slug={room!r}), user=users.get(username={bob!r}), until=in_seconds(8), reason='calm down')")
        muted = await next_frame(ws, "room_muted")
        assert muted["room"] == room
        until = datetime.datetime.fromisoformat(muted["until"])
        await ws.send(json.dumps({"type": "send", "room": room, "body": "hello?", "client_id": "m1", "request_id": 1}))
        error = await next_frame(ws, "error")
        assert error["code"] == "muted" and error["until"] == muted["until"] and error["client_id"] == "m1"
        assert f"muted in #{room} until" in error["detail"]
        # A reconnecting page learns it from its view; version 1 is refused the same way.
        async with client.socket() as again:
            assert (await subscribed(again, room))["muted_until"] == muted["until"]
        async with client.socket(room) as v1:
            await v1_frame(v1, "welcome")
            await v1.send(json.dumps({"type": "send", "body": "v1?", "client_id": "m3"}))
            refused = await v1_frame(v1, "error")
            assert (refused["code"], refused["until"], refused["client_id"]) == ("muted", muted["until"], "m3")
        assert stored_count(env, room, bob) == 0
        wait = (until - datetime.datetime.now(datetime.UTC)).total_seconds()
        assert 0 < wait < 8
        await asyncio.sleep(wait + 0.2)
        await ws.send(json.dumps({"type": "send", "room": room, "body": "back", "client_id": "m2", "request_id": 2}))
        ack = await next_frame(ws, "ack", "error")
        assert ack["type"] == "ack" and ack["request_id"] == 2
    assert stored_count(env, room, bob) == 1
    assert not logged_errors(log)


async def test_a_ban_closes_every_live_socket_with_4401_and_the_login_is_refused_until_unbanned(server):
    base, log, (moderator, alice, _), room, env = server
    client = WebClient(base).login(alice)
    other_browser = WebClient(base).login(alice)
    async with client.socket() as ws, other_browser.socket() as other:
        await subscribed(ws, room)
        await next_frame(other, "hello")
        moderate(env, f"moderation.user_ban(actor=users.get(username={moderator!r}), user=users.get("
                      f"username={alice!r}), reason='spam')")
        assert await closed_code(ws) == 4401
        assert await closed_code(other) == 4401
    # The session is gone: the same cookie opens no socket and no page.
    async with client.socket() as ws:
        assert (await next_frame(ws, "error"))["code"] == "forbidden"
        assert await closed_code(ws) == 4401
    fresh = WebClient(base)
    status, page = fresh.request("/accounts/login/")
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    status, page = fresh.request("/accounts/login/", {
        "username": alice, "password": PASSWORD, "csrfmiddlewaretoken": token,
    }, {"Referer": f"{base}/accounts/login/", "Origin": base})
    assert status == 200 and "This account has been banned." in page and not fresh.cookie("sessionid")
    moderate(env, f"moderation.user_unban(actor=users.get(username={moderator!r}), user=users.get(username={alice!r}))")
    async with WebClient(base).login(alice).socket() as ws:
        await next_frame(ws, "hello")
    assert not logged_errors(log)
