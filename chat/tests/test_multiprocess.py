"""Two real daphne processes sharing a real Redis and one database: delivery, resume and presence across them."""
import itertools
import json

import pytest

from chat.tests.servers import WebClient, frame_of, project_env, rooms_create, start_daphne, users_create

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
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(start_daphne(logs, env=env, name=f"daphne-{name}"))
        yield [f"http://127.0.0.1:{server.port}" for server in servers]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def room():
    """Return a room slug no other test uses."""
    return f"mp-{next(_rooms)}"


async def send_all(socket, bodies):
    """Send `bodies` as messages, then return the echoed frames, in order."""
    for body in bodies:
        await socket.send(json.dumps({"type": "send", "body": body, "client_id": f"c{next(_client_ids)}"}))
    return [(await frame_of(socket, "message"))["message"] for _ in bodies]


async def test_messages_sent_on_one_process_reach_the_other_in_order(daphnes, room):
    url_a, url_b = daphnes
    ann, ben = WebClient(url_a).login("ann"), WebClient(url_b).login("ben")
    async with ann.socket(room) as on_a, ben.socket(room) as on_b:
        await frame_of(on_a, "welcome")
        await frame_of(on_b, "welcome")
        bodies = [f"hello {i}" for i in range(1, 21)]
        sent = await send_all(on_a, bodies)
        received = [(await frame_of(on_b, "message"))["message"] for _ in bodies]
    assert [m["body"] for m in received] == bodies
    assert [m["seq"] for m in received] == [m["seq"] for m in sent] == list(range(1, 21))
    assert {m["author"] for m in received} == {"ann"}


async def test_room_frames_of_every_length_arrive_whole_through_daphnes_direct_writes(daphnes, logs, room):
    url_a, url_b = daphnes
    ann, ben = WebClient(url_a).login("ann"), WebClient(url_b).login("ben")
    # Frame lengths on both sides of 126 and into the 2-byte length, with multi-byte characters.
    bodies = ["a", "b" * 60, "c" * 120, "é" * 62, "d" * 200, "😀" * 4000, "e" * 4000]
    async with ann.socket(room) as on_a, ben.socket(room) as on_b:
        await frame_of(on_a, "welcome")
        await frame_of(on_b, "welcome")
        sent = await send_all(on_a, bodies)
        received = [(await frame_of(on_b, "message"))["message"] for _ in bodies]
    assert [m["body"] for m in sent] == [m["body"] for m in received] == bodies
    connects = [json.loads(line) for name in ("daphne-a", "daphne-b")
                for line in (logs / f"{name}.log").read_text().splitlines() if '"ws.connect"' in line]
    assert connects and all(line["direct"] is True for line in connects)


async def test_resume_on_the_other_process_misses_nothing(daphnes, room):
    url_a, url_b = daphnes
    ann, ben_a, ben_b = WebClient(url_a).login("ann"), WebClient(url_a).login("ben"), WebClient(url_b).login("ben")
    async with ann.socket(room) as sender:
        await frame_of(sender, "welcome")
        async with ben_b.socket(room) as listener:
            await frame_of(listener, "welcome")
            await send_all(sender, ["before 1", "before 2", "before 3"])
            last_seq = [(await frame_of(listener, "message"))["message"]["seq"] for _ in range(3)][-1]
        # Ben is away while these are stored, then comes back through the other process.
        await send_all(sender, [f"missed {i}" for i in range(1, 8)])
        async with ben_a.socket(room, query=f"after={last_seq}") as resumed:
            welcome = await frame_of(resumed, "welcome")
            await send_all(sender, ["live after resume"])
            live = (await frame_of(resumed, "message"))["message"]
    assert last_seq == 3
    assert [m["seq"] for m in welcome["messages"]] == list(range(4, 11))
    assert [m["body"] for m in welcome["messages"]] == [f"missed {i}" for i in range(1, 8)]
    assert welcome["has_more"] is False
    assert (live["seq"], live["body"]) == (11, "live after resume")


async def test_presence_is_shared_between_processes(daphnes, room):
    url_a, url_b = daphnes
    ann, cat = WebClient(url_a).login("ann"), WebClient(url_b).login("cat")
    async with ann.socket(room) as on_a:
        assert (await frame_of(on_a, "welcome"))["online"] == ["ann"]
        async with cat.socket(room) as on_b:
            assert (await frame_of(on_b, "welcome"))["online"] == ["ann", "cat"]
            assert await frame_of(on_a, "join", "leave") == {"type": "join", "user": "cat"}
        assert await frame_of(on_a, "join", "leave") == {"type": "leave", "user": "cat"}
