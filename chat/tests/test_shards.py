"""The channel layer over two real Redis shards (CHANNEL_LAYER_REDIS_URLS) under two real daphnes.

Every room's group lives on the shard its name hashes to; presence and the limits stay on REDIS_URL
(the first shard here), so they hold across the processes whatever shard carries a room.
"""
import asyncio
import json

import pytest
import redis

from chat.tests.test_multiprocess import subscribe
from harness.servers import WebClient, daphnes_running, frame_of, presence_of, project_env, rooms_create, start_redis, users_create

pytestmark = [pytest.mark.timeout(120)]
ROOMS = [f"shard-{n}" for n in range(1, 21)]
# Each user sends one message per room in the delivery test; the limit test's user sends past it.
MESSAGE_RATE = (len(ROOMS) + 4, 60)


@pytest.fixture(scope="module")
def shard_servers(tmp_path_factory):
    """Start two private redis-servers; yield them."""
    directory = tmp_path_factory.mktemp("shards")
    servers = []
    try:
        for name in ("shard-0", "shard-1"):
            servers.append(start_redis(directory, name=name))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def shards(shard_servers):
    """Return the URLs of the two shards."""
    return [f"redis://127.0.0.1:{server.port}/0" for server in shard_servers]


@pytest.fixture(scope="module")
def daphnes(tmp_path_factory, shards, live_database):
    """Start two daphne processes whose layer spans both shards; yield their base URLs."""
    logs = tmp_path_factory.mktemp("shard-daphnes")
    env = project_env(
        REDIS_URL=shards[0], CHANNEL_LAYER_REDIS_URLS=",".join(shards), DATABASE_URL=live_database,
        ALLOWED_HOSTS="127.0.0.1,localhost", CHAT_MESSAGE_RATE="{}/{}".format(*MESSAGE_RATE),
    )
    users_create(["sa", "sb", "sc"], env=env)
    rooms_create(ROOMS, env=env)
    with daphnes_running(logs, env=env) as urls:
        yield urls


def room_groups(url):
    """Return {group channel: subscribers} of the room groups subscribed on the Redis at `url`."""
    client = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)
    channels = client.pubsub_channels("asgi__group__chat.room.*")
    return dict(client.pubsub_numsub(*channels)) if channels else {}


async def subscribe_all(socket, rooms):
    """Subscribe a socket to every room of `rooms` once its hello came."""
    await frame_of(socket, "hello")
    for room in rooms:
        await socket.send(json.dumps({"type": "subscribe", "room": room, "request_id": room}))
        view = await frame_of(socket, "subscribed", "error")
        assert view["type"] == "subscribed" and view["room"] == room, view


async def answer_of(socket, room, client_id):
    """Send a message to `room`; return the socket's answer to it: its echo, or the error naming its client_id."""
    await socket.send(json.dumps({"type": "send", "room": room, "body": client_id, "client_id": client_id}))
    while True:
        frame = await frame_of(socket, "message", "error")
        if client_id in (frame.get("client_id"), frame.get("message", {}).get("client_id")):
            return frame


async def client_ids_until_quiet(socket, quiet=0.5):
    """Return the client_ids of the messages a socket gets until none comes for `quiet` seconds."""
    ids = []
    try:
        while True:
            ids.append((await frame_of(socket, "message", timeout=quiet))["message"]["client_id"])
    except TimeoutError:
        return ids


async def send_each(socket, rooms, author):
    """Send one message to each of `rooms`; return the (room, body) pairs of the echoes."""
    for room in rooms:
        frame = {"type": "send", "room": room, "body": f"{author} in {room}", "client_id": f"{author}-{room}"}
        await socket.send(json.dumps(frame))
    return await messages_of(socket, len(rooms))


async def messages_of(socket, count):
    """Return the (room, body) pairs of the next `count` message frames, sorted: rooms on two shards interleave."""
    got = []
    for _ in range(count):
        frame = await frame_of(socket, "message")
        got.append((frame["room"], frame["message"]["body"]))
    return sorted(got)


async def test_every_room_reaches_the_other_process_over_both_shards(daphnes, shards):
    url_a, url_b = daphnes
    sa, sb = WebClient(url_a).login("sa"), WebClient(url_b).login("sb")
    async with sa.socket() as on_a, sb.socket() as on_b:
        await subscribe_all(on_a, ROOMS)
        await subscribe_all(on_b, ROOMS)
        groups = [room_groups(url) for url in shards]
        # Each process subscribes each room once, on the one shard its group hashes to.
        assert all(groups), f"a shard carries no room group: {groups}"
        assert not set(groups[0]) & set(groups[1])
        assert len(groups[0]) + len(groups[1]) == len(ROOMS)
        assert {count for shard in groups for count in shard.values()} == {2}
        echoes_a = await send_each(on_a, ROOMS, "sa")
        got_b = await messages_of(on_b, len(ROOMS))
        echoes_b = await send_each(on_b, ROOMS, "sb")
        got_a = await messages_of(on_a, len(ROOMS))
    assert echoes_a == got_b == sorted((room, f"sa in {room}") for room in ROOMS)
    assert echoes_b == got_a == sorted((room, f"sb in {room}") for room in ROOMS)


async def test_presence_holds_across_processes_whatever_shard_carries_the_room(daphnes):
    url_a, url_b = daphnes
    sa, sc = WebClient(url_a).login("sa"), WebClient(url_b).login("sc")
    for room in ROOMS[:4]:
        async with sa.socket() as on_a:
            assert (await subscribe(on_a, room))["online"] == ["sa"]
            async with sc.socket() as on_b:
                assert (await subscribe(on_b, room))["online"] == ["sa", "sc"]
                assert await presence_of(on_a, "sc") == (room, "online")
            assert await presence_of(on_a, "sc") == (room, "offline")


async def test_the_message_limit_counts_a_user_on_both_processes(daphnes):
    url_a, url_b = daphnes
    sc_a, sc_b = WebClient(url_a).login("sc"), WebClient(url_b).login("sc")
    count = MESSAGE_RATE[0]
    room = ROOMS[-1]
    async with sc_a.socket() as on_a, sc_b.socket() as on_b:
        await subscribe(on_a, room)
        await subscribe(on_b, room)
        sockets = [on_a, on_b]
        answers = [await answer_of(sockets[n % 2], room, f"lim-{n}") for n in range(count + 1)]
        # What each socket still gets once the sends are over: the refused message must not be among it.
        later = [await client_ids_until_quiet(each) for each in sockets]
    assert [answer["type"] for answer in answers] == ["message"] * count + ["error"], answers
    refused = answers[-1]
    assert refused["code"] == "rate_limited" and refused["client_id"] == f"lim-{count}"
    assert 0 < refused["retry_after"] <= MESSAGE_RATE[1]
    assert all(f"lim-{count}" not in ids for ids in later), later


def test_the_health_check_names_a_dead_shard_that_the_layer_probe_misses(daphnes, shard_servers):
    # Last in the module: it stops a shard (and starts it again).
    url_a, _ = daphnes
    client = WebClient(url_a)
    status, body = client.request("/healthz")
    assert status == 200
    assert json.loads(body)["checks"] == {"database": "ok", "channel_layer": "ok", "channel_layer_shards": "ok"}
    # The second shard carries no presence, limits or probe group: only the shard check sees it go.
    shard_servers[1].stop()
    try:
        status, body = client.request("/healthz")
    finally:
        shard_servers[1].start()
    assert status == 503
    assert json.loads(body)["checks"] == {"database": "ok", "channel_layer": "ok", "channel_layer_shards": "failed"}
    status, body = client.request("/healthz")
    assert (status, json.loads(body)["status"]) == (200, "ok")
