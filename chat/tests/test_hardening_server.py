"""Defects seen only through a real daphne: frame limits, close codes, crashes, closes and races (issue 17)."""
import asyncio
import contextlib
import itertools
import json
import os
import signal
import time

import pytest
import websockets

from chat.tests.rawsocket import RawSocket
from harness.servers import (
    WebClient, frame_of, manage, project_env, rooms_create, start_daphne, start_redis, users_create,
)

pytestmark = [pytest.mark.timeout(120)]

MAX_BYTES = 65536
# The options the README and deploy/ give daphne in production.
PRODUCTION = ["--websocket-max-message-size", str(MAX_BYTES), "--websocket-max-frame-size", str(MAX_BYTES),
              "--ping-interval", "20", "--ping-timeout", "20"]
_names = itertools.count(1)


def names(*prefixes):
    """Return usernames unique in the shared live database."""
    n = next(_names)
    return [f"{prefix}{n}x{os.getpid()}" for prefix in prefixes]


@contextlib.contextmanager
def serving(tmp_path, live_database, users, rooms=(), **env):
    """Run one daphne with the production options; yield (its base URL, its log path)."""
    env = project_env(DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1", **env)
    users_create(users, env=env)
    if rooms:
        rooms_create(rooms, env=env, by=users[0])
    daphne = start_daphne(tmp_path, env=env, options=PRODUCTION)
    try:
        yield f"http://127.0.0.1:{daphne.port}", tmp_path / "daphne.log", daphne
    finally:
        daphne.stop()


def logged_errors(log_path):
    """Return the lines of a daphne log at ERROR level or with a traceback."""
    lines = log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if '"level": "ERROR"' in line or "Traceback" in line or " ERROR " in line]


def seed_messages(env_url, slug, author, bodies):
    """Store the bodies that the Python expression `bodies` makes in room `slug`, through the services."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain import services\nfrom chat.domain.models import Room\n"
        f"room = Room.objects.get(slug={slug!r})\nauthor = get_user_model().objects.get(username={author!r})\n"
        f"for body in {bodies}:\n    services.message_create(room=room, author=author, body=body)\n"
    )
    manage("shell", "-c", code, env=project_env(DATABASE_URL=env_url))


async def received_text(ws, timeout=10):
    """Return the next frame's text and check that it fits the server's limit."""
    text = await asyncio.wait_for(ws.recv(), timeout)
    assert len(text.encode("utf-8")) <= MAX_BYTES
    return text


async def next_frame(ws, *types, timeout=10):
    """Return the next frame of one of `types`, checking each frame's size on the way."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await received_text(ws))
            if frame["type"] in types:
                return frame


async def closed_code(ws, timeout=10):
    """Return the close code the server ends `ws` with."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


# Each at the 4,000-character limit: 3 bytes a character, and 6 for a
# control character that JSON writes as \u0001.
HEAVY_BODIES = ["語" * 4000 if i % 3 else "\x01" * 3999 + "!" for i in range(45)]
# The same, for the shell that stores them (a list this long does not fit in a command line).
HEAVY = '["語" * 4000 if i % 3 else "\\x01" * 3999 + "!" for i in range(45)]'


async def test_a_room_of_maximum_length_multibyte_messages_still_opens_resumes_and_pages_back(
    tmp_path, live_database
):
    [alice] = names("alice")
    [slug] = names("heavy")
    with serving(tmp_path, live_database, [alice], rooms=[slug]) as (base, log, _):
        seed_messages(live_database, slug, alice, HEAVY)
        client = WebClient(base).login(alice)
        async with client.socket(slug) as ws:
            welcome = await next_frame(ws, "welcome")
            seqs = [m["seq"] for m in welcome["messages"]]
            assert welcome["has_more"] and seqs == list(range(46 - len(seqs), 46)) and len(seqs) >= 2
            more = welcome["has_more"]
            while more:
                await ws.send(json.dumps({"type": "history", "before": seqs[0], "limit": 100}))
                page = await next_frame(ws, "history")
                assert page["messages"], "a page back must carry at least one message"
                seqs = [m["seq"] for m in page["messages"]] + seqs
                more = page["has_more"]
            assert seqs == list(range(1, 46))
        async with client.socket(slug, query="after=0") as ws:
            welcome = await next_frame(ws, "welcome")
            seqs = [m["seq"] for m in welcome["messages"]]
            assert welcome["has_more"] and seqs == list(range(1, len(seqs) + 1))
            more = True
            while more:
                await ws.send(json.dumps({"type": "history", "after": seqs[-1], "limit": 100}))
                page = await next_frame(ws, "history")
                seqs += [m["seq"] for m in page["messages"]]
                more = page["has_more"]
            assert seqs == list(range(1, 46))
            assert all(m["body"] == HEAVY_BODIES[m["seq"] - 1] for m in page["messages"])
        assert not logged_errors(log)


async def test_crashed_or_flooded_sockets_leave_no_ghost_in_presence_or_the_socket_count(tmp_path, live_database):
    mallory, watcher = names("mallory", "watcher")
    [slug] = names("ghosts")
    limits = {"CHAT_MAX_SOCKETS_PER_USER": "3", "CHAT_MESSAGE_RATE": "1/60", "CHAT_FLOOD_FACTOR": "1"}
    with serving(tmp_path, live_database, [mallory, watcher], rooms=[slug], **limits) as (base, log, _):
        seed_messages(live_database, slug, watcher, HEAVY + "[:12]")
        attacker, observer = WebClient(base).login(mallory), WebClient(base).login(watcher)
        async with observer.socket(slug) as watching:
            await next_frame(watching, "welcome")
            for _ in range(4):
                # The message limit, then the flood close: once a crash (autobahn refused 1008).
                async with attacker.socket(slug) as ws:
                    await next_frame(ws, "welcome")
                    for n in range(3):
                        await ws.send(json.dumps({"type": "send", "body": f"spam {n}", "client_id": f"c{n}"}))
                    assert await closed_code(ws) == 4008
            for _ in range(6):
                # A history answer sent on a socket its client has just closed: once a crash (Disconnected).
                ws = await attacker.socket(slug)
                await next_frame(ws, "welcome")
                await ws.send(json.dumps({"type": "history", "before": 13, "limit": 100}))
                await ws.close()
            async with attacker.socket(slug) as ws:
                welcome = await next_frame(ws, "welcome", "error")
                assert welcome["type"] == "welcome", welcome
            # Every socket of mallory's has closed: presence must say so.
            deadline = time.monotonic() + 10
            while True:
                async with observer.socket(slug) as ws:
                    if mallory not in (await next_frame(ws, "welcome"))["online"]:
                        break
                assert time.monotonic() < deadline, f"{mallory} stays online with no socket open"
                await asyncio.sleep(0.5)
        assert not logged_errors(log)


async def test_the_flood_close_reaches_the_client_as_4008_through_daphne(tmp_path, live_database):
    [flooder] = names("flooder")
    [slug] = names("flood")
    limits = {"CHAT_MESSAGE_RATE": "2/60", "CHAT_FLOOD_FACTOR": "2"}
    with serving(tmp_path, live_database, [flooder], rooms=[slug], **limits) as (base, log, _):
        async with WebClient(base).login(flooder).socket(slug) as ws:
            await next_frame(ws, "welcome")
            for n in range(6):
                await ws.send(json.dumps({"type": "send", "body": f"x{n}", "client_id": f"f{n}"}))
            errors = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    frame = await next_frame(ws, "error", "message")
                    errors += [frame["code"]] if frame["type"] == "error" else []
            assert closed.value.rcvd.code == 4008
            assert errors.count("rate_limited") >= 1
        assert not logged_errors(log)


async def test_edits_and_deletes_are_rate_limited_like_messages(tmp_path, live_database):
    [editor] = names("editor")
    [slug] = names("edits")
    with serving(tmp_path, live_database, [editor], rooms=[slug], CHAT_CHANGE_RATE="5/60") as (base, log, _):
        seed_messages(live_database, slug, editor, '["first"]')
        async with WebClient(base).login(editor).socket(slug) as ws:
            message_id = (await next_frame(ws, "welcome"))["messages"][0]["id"]
            for n in range(5):
                await ws.send(json.dumps({"type": "edit", "id": message_id, "body": f"edit {n}"}))
                assert (await next_frame(ws, "message_edited", "error"))["type"] == "message_edited"
            await ws.send(json.dumps({"type": "edit", "id": message_id, "body": "one too many"}))
            refused = await next_frame(ws, "message_edited", "error")
            assert refused["type"] == "error" and refused["code"] == "rate_limited" and refused["retry_after"] > 0
            await ws.send(json.dumps({"type": "delete", "id": message_id}))
            assert (await next_frame(ws, "message_deleted", "error"))["code"] == "rate_limited"
        async with WebClient(base).login(editor).socket(slug) as ws:
            # Nothing past the limit was applied: the message is there, with the fifth edit.
            [message] = (await next_frame(ws, "welcome"))["messages"]
            assert message["body"] == "edit 4"


async def test_a_ping_gets_a_pong_and_the_welcome_names_the_build(tmp_path, live_database):
    [pinger] = names("pinger")
    [slug] = names("ping")
    with serving(tmp_path, live_database, [pinger], rooms=[slug]) as (base, _, _):
        async with WebClient(base).login(pinger).socket(slug) as ws:
            welcome = await next_frame(ws, "welcome")
            assert isinstance(welcome["build"], str) and len(welcome["build"]) >= 8
            await ws.send(json.dumps({"type": "ping"}))
            assert await next_frame(ws, "pong", "error") == {"type": "pong"}


async def test_a_tab_that_stopped_reading_and_then_closed_goes_offline_and_logs_nothing(tmp_path, live_database):
    stalled, sender = names("stalled", "sender")
    [slug] = names("slow")
    with serving(tmp_path, live_database, [stalled, sender], rooms=[slug]) as (base, log, daphne):
        reader = WebClient(base).login(stalled)
        raw = RawSocket(daphne.port, f"/ws/chat/{slug}/", origin=base, cookie=f"sessionid={reader.cookie('sessionid')}",
                        receive_buffer=4096)
        try:
            assert raw.status == 101
            async with WebClient(base).login(sender).socket(slug) as ws:
                await next_frame(ws, "welcome")
                # Several MiB: more than the kernel's buffers hold, so Twisted keeps the rest.
                body = "語" * 4000
                for n in range(400):
                    await ws.send(json.dumps({"type": "send", "body": body, "client_id": f"s{n}"}))
                acked = 0
                while acked < 400:
                    frame = await next_frame(ws, "message", "error")
                    assert frame["type"] == "message", frame
                    acked += frame["message"]["author"] == sender
                raw.send_close()
                started = time.monotonic()
                while True:
                    frame = await next_frame(ws, "leave", timeout=15)
                    if frame["user"] == stalled:
                        break
                # Inside the slow-reader bound (a ping interval), whatever is queued for it.
                assert time.monotonic() - started < 10
                for n in range(5):
                    await ws.send(json.dumps({"type": "send", "body": "after the close", "client_id": f"t{n}"}))
                    await next_frame(ws, "message")
        finally:
            raw.close()
        assert not logged_errors(log)


async def test_sockets_closing_while_frames_fly_log_no_errors(tmp_path, live_database):
    users = names("talker", *(f"leaver{i}_" for i in range(12)))
    [slug] = names("races")
    with serving(tmp_path, live_database, users, rooms=[slug]) as (base, log, _):
        talker = WebClient(base).login(users[0])
        leavers = [WebClient(base).login(name) for name in users[1:]]

        async def come_and_go(client):
            for _ in range(4):
                ws = await client.socket(slug)
                await next_frame(ws, "welcome")
                await ws.send(json.dumps({"type": "history", "before": 10**6, "limit": 100}))
                await ws.send(json.dumps({"type": "typing"}))
                await asyncio.sleep(0.05)
                # Abruptly: the TCP connection goes with no close handshake.
                ws.transport.abort()

        async with talker.socket(slug) as ws:
            await next_frame(ws, "welcome")

            async def talk():
                for n in range(150):
                    await ws.send(json.dumps({"type": "send", "body": f"hello {n}", "client_id": f"h{n}"}))
                    await asyncio.sleep(0.01)

            await asyncio.gather(talk(), *map(come_and_go, leavers))
            await asyncio.sleep(1)
        assert not logged_errors(log), "\n".join(logged_errors(log)[:5])


async def test_a_handshake_during_a_redis_pause_is_closed_with_a_retryable_code_not_403(tmp_path, live_database):
    alice, bob = names("alice", "bob")
    [slug] = names("paused")
    redis = start_redis(tmp_path)
    try:
        url = f"redis://127.0.0.1:{redis.port}/0"
        with serving(tmp_path, live_database, [alice, bob], rooms=[slug], REDIS_URL=url) as (base, log, _):
            first, second = WebClient(base).login(alice), WebClient(base).login(bob)
            async with first.socket(slug) as ws:
                await next_frame(ws, "welcome")
                os.kill(redis.process.pid, signal.SIGSTOP)
                try:
                    codes = []
                    for _ in range(3):
                        # Any refusal as HTTP 403 raises InvalidStatus here, which fails the test.
                        async with second.socket(slug) as late:
                            codes.append(await closed_code(late, timeout=15))
                    assert set(codes) == {4012}, codes
                    assert await closed_code(ws, timeout=15) == 4012
                finally:
                    os.kill(redis.process.pid, signal.SIGCONT)
            deadline = time.monotonic() + 20
            while True:
                try:
                    async with second.socket(slug) as again:
                        await next_frame(again, "welcome")
                        break
                except websockets.ConnectionClosed:
                    assert time.monotonic() < deadline, "no welcome after Redis came back"
                    await asyncio.sleep(0.5)
    finally:
        redis.stop()
