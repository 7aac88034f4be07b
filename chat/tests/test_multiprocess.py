"""Two real daphne processes sharing a real Redis and one database: v2 delivery, resume and presence across them."""
import itertools
import json

import pytest

from harness.servers import WebClient, daphnes_running, frame_of, presence_of, project_env, rooms_create, users_create

pytestmark = [pytest.mark.timeout(120)]
_rooms = itertools.count(1)
# Rooms made up front for the `room` fixture: sockets never create one.
ROOMS = 30
_client_ids = itertools.count(1)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Return the directory of the daphne logs."""
    return tmp_path_factory.mktemp("multiprocess")


@pytest.fixture(scope="module")
def daphnes(logs, redis_server, live_database):
    """Start two daphne processes on one Redis and one database; yield their base URLs."""
    print(f"daphne logs in {logs}")
    env = project_env(REDIS_URL=redis_server, DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1,localhost")
    users_create(["ann", "ben", "cat"], env=env)
    rooms_create([f"mp-{n}" for n in range(1, ROOMS + 1)], env=env)
    with daphnes_running(logs, env=env) as urls:
        yield urls


@pytest.fixture
def room():
    """Return a room slug no other test uses."""
    return f"mp-{next(_rooms)}"


async def subscribe(socket, room, after=None):
    """Wait for the socket's hello, subscribe it to `room` (resuming after a cseq when given); return the view."""
    await frame_of(socket, "hello")
    frame = {"type": "subscribe", "room": room, "request_id": "view"}
    if after is not None:
        frame["after"] = after
    await socket.send(json.dumps(frame))
    view = await frame_of(socket, "subscribed", "error")
    assert view["type"] == "subscribed" and view["request_id"] == "view", view
    return view


async def send_all(socket, room, bodies):
    """Send `bodies` as messages to `room`, then return the echoed messages, in order."""
    for body in bodies:
        frame = {"type": "send", "room": room, "body": body, "client_id": f"c{next(_client_ids)}"}
        await socket.send(json.dumps(frame))
    return [await message_of(socket, room) for _ in bodies]


async def message_of(socket, room):
    """Return the message of the next `message` frame, checking that it names `room`."""
    frame = await frame_of(socket, "message")
    assert frame["room"] == room, frame
    return frame["message"]


async def test_messages_sent_on_one_process_reach_the_other_in_order(daphnes, room):
    url_a, url_b = daphnes
    ann, ben = WebClient(url_a).login("ann"), WebClient(url_b).login("ben")
    async with ann.socket() as on_a, ben.socket() as on_b:
        await subscribe(on_a, room)
        await subscribe(on_b, room)
        bodies = [f"hello {i}" for i in range(1, 21)]
        sent = await send_all(on_a, room, bodies)
        received = [await message_of(on_b, room) for _ in bodies]
    assert [m["body"] for m in received] == bodies
    assert [m["seq"] for m in received] == [m["seq"] for m in sent] == list(range(1, 21))
    assert [m["cseq"] for m in received] == list(range(1, 21))
    assert {m["author"] for m in received} == {"ann"}


async def test_room_frames_of_every_length_arrive_whole_through_daphnes_direct_writes(daphnes, logs, room):
    url_a, url_b = daphnes
    ann, ben = WebClient(url_a).login("ann"), WebClient(url_b).login("ben")
    # Frame lengths on both sides of 126 and into the 2-byte length, with multi-byte characters.
    bodies = ["a", "b" * 60, "c" * 120, "é" * 62, "d" * 200, "😀" * 4000, "e" * 4000]
    async with ann.socket() as on_a, ben.socket() as on_b:
        await subscribe(on_a, room)
        await subscribe(on_b, room)
        sent = await send_all(on_a, room, bodies)
        received = [await message_of(on_b, room) for _ in bodies]
    assert [m["body"] for m in sent] == [m["body"] for m in received] == bodies
    connects = [json.loads(line) for name in ("daphne-a", "daphne-b")
                for line in (logs / f"{name}.log").read_text().splitlines() if '"ws.connect"' in line]
    assert connects and all(line["direct"] is True for line in connects)


async def test_resume_on_the_other_process_misses_nothing(daphnes, room):
    url_a, url_b = daphnes
    ann, ben_a, ben_b = WebClient(url_a).login("ann"), WebClient(url_a).login("ben"), WebClient(url_b).login("ben")
    async with ann.socket() as sender:
        await subscribe(sender, room)
        async with ben_b.socket() as listener:
            await subscribe(listener, room)
            await send_all(sender, room, ["before 1", "before 2", "before 3"])
            last_cseq = [(await message_of(listener, room))["cseq"] for _ in range(3)][-1]
        # Ben is away while these are stored, then comes back through the other process.
        await send_all(sender, room, [f"missed {i}" for i in range(1, 8)])
        async with ben_a.socket() as resumed:
            view = await subscribe(resumed, room, after=last_cseq)
            await send_all(sender, room, ["live after resume"])
            live = await message_of(resumed, room)
    assert last_cseq == 3
    assert view["resumed"] is True and view["cseq"] == 10 and view["has_more"] is False
    assert [c["type"] for c in view["changes"]] == ["message"] * 7
    assert [c["message"]["seq"] for c in view["changes"]] == list(range(4, 11))
    assert [c["message"]["body"] for c in view["changes"]] == [f"missed {i}" for i in range(1, 8)]
    assert (live["seq"], live["cseq"], live["body"]) == (11, 11, "live after resume")


async def test_presence_is_shared_between_processes(daphnes, room):
    url_a, url_b = daphnes
    ann, cat = WebClient(url_a).login("ann"), WebClient(url_b).login("cat")
    async with ann.socket() as on_a:
        assert (await subscribe(on_a, room))["online"] == ["ann"]
        async with cat.socket() as on_b:
            assert (await subscribe(on_b, room))["online"] == ["ann", "cat"]
            assert await presence_of(on_a, "cat") == (room, "online")
        assert await presence_of(on_a, "cat") == (room, "offline")
