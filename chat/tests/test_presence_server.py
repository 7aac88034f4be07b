"""Presence news through a real daphne and Redis at the production interval: a room filling up, then emptying."""
import asyncio
import contextlib
import json

import pytest

from harness.servers import WebClient, daphne_serving, frame_of, project_env, rooms_create, users_create

pytestmark = [pytest.mark.timeout(120)]
USERS = 20
INTERVAL = 0.25


async def subscribed(client, room):
    """Open a v2 socket for a logged-in `client` and subscribe it to `room`; return the socket."""
    socket = await client.socket()
    await frame_of(socket, "hello")
    await socket.send(json.dumps({"type": "subscribe", "room": room}))
    await frame_of(socket, "subscribed")
    return socket


async def presence_until(socket, online, names):
    """Return the `presence` frames the socket receives until every one of `names` is online (or offline)."""
    state, received = {}, []
    async with asyncio.timeout(20):
        while any(state.get(name) != online for name in names):
            frame = await frame_of(socket, "presence")
            received.append(frame)
            state.update({name: True for name in frame["online"]})
            state.update({name: False for name in frame["offline"]})
    return received


async def test_a_room_filling_up_and_emptying_costs_each_member_a_few_presence_frames(
    tmp_path, redis_server, live_database
):
    env = project_env(REDIS_URL=redis_server, DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1,localhost",
                      CHAT_PRESENCE_BATCH_SECONDS=str(INTERVAL))
    names = [f"pf{n}" for n in range(USERS)]
    users_create(["pf-watcher", *names], env=env, exist_ok=True)
    rooms_create(["presence-fill"], env=env)
    with daphne_serving(tmp_path, env=env) as url:
        clients = await asyncio.gather(*(asyncio.to_thread(WebClient(url).login, n) for n in names))
        watcher = await subscribed(WebClient(url).login("pf-watcher"), "presence-fill")
        sockets = []
        try:
            arriving = asyncio.create_task(presence_until(watcher, True, names))
            sockets = await asyncio.gather(*(subscribed(client, "presence-fill") for client in clients))
            came = await arriving
            leaving = asyncio.create_task(presence_until(watcher, False, names))
            await asyncio.gather(*(socket.close() for socket in sockets))
            went = await leaving
        finally:
            for socket in [watcher, *sockets]:
                with contextlib.suppress(Exception):
                    await socket.close()
    print(f"{USERS} users came in {len(came)} presence frames and went in {len(went)}")
    # One frame per newcomer without batching; the watcher's own news may come first.
    assert len(came) <= USERS // 2 and len(went) <= USERS // 2
