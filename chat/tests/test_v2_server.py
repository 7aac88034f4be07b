"""Protocol v2 through a real daphne with the production options: frame limits, resume of every change, close codes."""
import asyncio
import json

import jsonschema
import pytest
import websockets

from chat.realtime import frames
from harness.servers import WebClient, manage, project_env
from chat.tests.test_hardening_server import (
    HEAVY, HEAVY_BODIES, MAX_BYTES, closed_code, logged_errors, names, seed_messages, serving,
)

pytestmark = [pytest.mark.timeout(120)]

SCHEMA = {**frames.schema()["server"], "$defs": frames.schema()["$defs"]}


async def next_frame(ws, *types, timeout=10):
    """Return the next frame of one of `types`, checking every frame's size and schema on the way."""
    while True:
        text = await asyncio.wait_for(ws.recv(), timeout)
        assert len(text.encode("utf-8")) <= MAX_BYTES
        frame = json.loads(text)
        jsonschema.validate(frame, SCHEMA)
        if frame["type"] in types:
            return frame


def change_while_away(env_url, slug, author):
    """Edit the first message, delete the second, and add one, through the services."""
    code = (
        "from django.contrib.auth import get_user_model\nfrom chat.domain import services\nfrom chat.domain.models import Room\n"
        f"room = Room.objects.get(slug={slug!r})\nauthor = get_user_model().objects.get(username={author!r})\n"
        "first, second = room.messages.order_by('seq')[:2]\n"
        "services.message_edit(room=room, actor=author, message_id=first.id, body='edited away')\n"
        "services.message_delete(room=room, actor=author, message_id=second.id)\n"
        "services.message_create(room=room, author=author, body='new while away')\n"
    )
    manage("shell", "-c", code, env=project_env(DATABASE_URL=env_url))


async def test_one_tab_socket_views_heavy_rooms_within_the_frame_limit_and_resumes_every_change(
    tmp_path, live_database
):
    [alice] = names("alice")
    heavy, light = names("heavy", "light")
    with serving(tmp_path, live_database, [alice], rooms=[heavy, light]) as (base, log, _):
        seed_messages(live_database, heavy, alice, HEAVY)
        client = WebClient(base).login(alice)
        async with client.socket() as ws:
            hello = await next_frame(ws, "hello")
            assert {r["room"] for r in hello["rooms"]} == {heavy, light}
            await ws.send(json.dumps({"type": "subscribe", "room": light, "request_id": 1}))
            await ws.send(json.dumps({"type": "subscribe", "room": heavy, "request_id": 2}))
            views = {}
            for _ in range(2):
                view = await next_frame(ws, "subscribed")
                views[view["request_id"]] = view
            fresh = views[2]
            assert fresh["room"] == heavy and fresh["has_more"] and fresh["messages"][-1]["seq"] == 45
            seen = fresh["cseq"]
            stale = {m["id"]: m for m in fresh["messages"]}

        change_while_away(live_database, heavy, alice)
        async with client.socket() as ws:
            await next_frame(ws, "hello")
            await ws.send(json.dumps({"type": "subscribe", "room": heavy, "after": 0}))
            page = await next_frame(ws, "subscribed")
            changes = page["changes"]
            while page["has_more"]:
                assert page["changes"], "a page of changes must carry at least one"
                await ws.send(json.dumps({"type": "changes", "room": heavy, "after": page["cseq"]}))
                page = await next_frame(ws, "changes")
                changes += page["changes"]
            # Every change of the room, each once, in order: 45 messages, then 3 changes while away.
            assert [c.get("cseq") or c["message"]["cseq"] for c in changes] == sorted(
                c.get("cseq") or c["message"]["cseq"] for c in changes
            )
            assert page["cseq"] == 48 and len(changes) == 45 + 1  # 2 messages changed again, 1 new
            assert [c["message"]["body"] for c in changes if c["type"] == "message"][:1] == [HEAVY_BODIES[2]]

            await ws.send(json.dumps({"type": "subscribe", "room": heavy, "after": seen}))
            resumed = await next_frame(ws, "subscribed")
            for change in resumed["changes"]:
                if change["type"] == "message_deleted":
                    stale.pop(change["id"], None)
                else:
                    stale[change["message"]["id"]] = change["message"]
            await ws.send(json.dumps({"type": "subscribe", "room": heavy}))
            now = await next_frame(ws, "subscribed")
            assert [m for m in sorted(stale.values(), key=lambda m: m["seq"]) if m["seq"] >= now["messages"][0]["seq"]] \
                == now["messages"]
            assert now["messages"][-1]["body"] == "new while away"
        assert not logged_errors(log)


async def test_a_tab_socket_without_a_login_is_closed_with_4401_and_bad_frames_do_not_close_it(
    tmp_path, live_database
):
    [alice] = names("alice")
    with serving(tmp_path, live_database, [alice]) as (base, log, _):
        async with WebClient(base).socket() as ws:  # no session
            assert (await next_frame(ws, "error"))["code"] == "forbidden"
            assert await closed_code(ws) == 4401
        async with WebClient(base).login(alice).socket() as ws:
            await next_frame(ws, "hello")
            for bad in ("nope", '{"type": "subscribe", "room": "Bad!", "request_id": "x"}', "{" * 10000):
                await ws.send(bad)
                error = await next_frame(ws, "error")
                assert error["code"] == "invalid"
            await ws.send(json.dumps({"type": "ping", "request_id": "still"}))
            assert (await next_frame(ws, "pong"))["request_id"] == "still"
            with pytest.raises(websockets.ConnectionClosed):
                await ws.send("x" * (MAX_BYTES + 1))
                await ws.recv()
        assert not logged_errors(log)
