"""The hub: one layer subscription per room per process, frames to every local socket, user events to the user's."""
import asyncio
import threading
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat.realtime.broadcast import (
    USERS_GROUP, activity_on_commit, room_event, room_group, room_send_on_commit, sending_on_loop,
    user_event_on_commit,
)
from chat.realtime.hub import RoomHub


class Socket:
    """Stand in for a consumer: records the frames the hub hands it."""

    def __init__(self, fail=False, user_id=1):
        self.frames, self.events, self.activity = [], [], []
        self.fail, self.user_id = fail, user_id

    async def room_event(self, event):
        if self.fail:
            raise RuntimeError("broken socket")
        self.frames.append(event["data"]["text"])

    async def user_event(self, event):
        self.events.append(event)

    async def room_activity(self, event):
        self.activity.append(event["data"])

    def drop_if_peer_closed(self):
        """Stand in for the consumer's look at its connection (none here)."""


async def until(predicate):
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
def layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return get_channel_layer()


async def test_one_subscription_per_room_however_many_sockets(layer):
    hub = RoomHub()
    sockets = [Socket() for _ in range(3)]
    for socket in sockets:
        await hub.join(7, socket)
    assert set(layer.groups[room_group(7)]) == {hub.channel}
    await layer.group_send(room_group(7), room_event(7, "typing", {"text": "one"}))
    await layer.group_send(room_group(7), room_event(7, "typing", {"text": "two"}))
    await until(lambda: all(len(s.frames) == 2 for s in sockets))
    assert all(s.frames == ["one", "two"] for s in sockets)


async def test_last_local_leave_unsubscribes(layer):
    hub = RoomHub()
    first, second = Socket(), Socket()
    await hub.join(7, first)
    await hub.join(7, second)
    await hub.leave(7, first)
    assert hub.channel in layer.groups.get(room_group(7), {})
    await hub.leave(7, second)
    assert hub.channel not in layer.groups.get(room_group(7), {})
    assert hub.local_count(7) == 0


async def test_frames_go_to_their_own_room_only(layer):
    hub = RoomHub()
    here, there = Socket(), Socket()
    await hub.join(1, here)
    await hub.join(2, there)
    await layer.group_send(room_group(2), room_event(2, "typing", {"text": "for room 2"}))
    await until(lambda: there.frames)
    assert here.frames == [] and there.frames == ["for room 2"]


async def test_a_broken_socket_does_not_stop_delivery_to_the_others(layer):
    hub = RoomHub()
    broken, healthy = Socket(fail=True), Socket()
    await hub.join(1, broken)
    await hub.join(1, healthy)
    await layer.group_send(room_group(1), room_event(1, "typing", {"text": "still delivered"}))
    await until(lambda: healthy.frames)
    assert healthy.frames == ["still delivered"]


@pytest.mark.django_db(transaction=True)
async def test_user_events_reach_every_socket_of_that_user_in_any_room_and_no_other(layer):
    hub = RoomHub()
    mine = [Socket(user_id=5), Socket(user_id=5)]
    other = Socket(user_id=6)
    for socket in (*mine, other):
        await hub.attach(socket)
    await hub.join(1, mine[0])  # in a room or not, a socket gets its user's events
    assert set(layer.groups[USERS_GROUP]) == {hub.channel}
    await database_sync_to_async(user_event_on_commit)(5, "notification", {"text": "for 5"})
    await until(lambda: all(s.events for s in mine))
    assert [e["data"]["text"] for s in mine for e in s.events] == ["for 5", "for 5"] and other.events == []
    await hub.detach(mine[0], [1])
    await hub.detach(mine[1])
    assert 5 not in hub.users and hub.users == {6: {other}} and hub.local_count(1) == 0


@pytest.mark.django_db(transaction=True)
async def test_activity_reaches_the_sockets_watching_the_room_only_until_they_stop(layer):
    hub = RoomHub()
    watching, elsewhere = Socket(user_id=5), Socket(user_id=6)
    for socket in (watching, elsewhere):
        await hub.attach(socket)
    hub.watch(watching, [1, 2])
    hub.watch(elsewhere, [3])
    await database_sync_to_async(activity_on_commit)(2, {"seq": 1})
    await until(lambda: watching.activity)
    assert watching.activity == [{"seq": 1}] and elsewhere.activity == []
    await hub.detach(watching)
    await database_sync_to_async(activity_on_commit)(2, {"seq": 2})
    await database_sync_to_async(activity_on_commit)(3, {"seq": 1})
    await until(lambda: elsewhere.activity)
    assert watching.activity == [{"seq": 1}] and hub.watchers == {3: {elsewhere}} and hub.watched == {elsewhere: {3}}


@pytest.mark.django_db(transaction=True)
async def test_activity_skips_the_sockets_that_show_the_room_until_they_leave_it(layer):
    hub = RoomHub()
    showing, listing = Socket(user_id=5), Socket(user_id=6)
    for socket in (showing, listing):
        await hub.attach(socket)
        hub.watch(socket, [2])
    await hub.join(2, showing)
    await database_sync_to_async(activity_on_commit)(2, {"seq": 1})
    await until(lambda: listing.activity)
    await hub.leave(2, showing)
    await database_sync_to_async(activity_on_commit)(2, {"seq": 2})
    await until(lambda: showing.activity)
    assert showing.activity == [{"seq": 2}] and listing.activity == [{"seq": 1}, {"seq": 2}]


@pytest.mark.django_db(transaction=True)
async def test_a_write_whose_caller_was_cancelled_is_still_sent(layer):
    channel = await layer.new_channel()
    await layer.group_add(room_group(1), channel)
    started, release = threading.Event(), threading.Event()

    def write():
        started.set()
        release.wait(5)
        room_send_on_commit(1, "typing", {"text": "stored"})

    call = asyncio.create_task(sending_on_loop(database_sync_to_async(write))())
    await asyncio.to_thread(started.wait, 5)
    call.cancel()  # the socket went away while its message was being stored
    release.set()

    event = await asyncio.wait_for(layer.receive(channel), 5)
    assert event["data"] == {"text": "stored"}


async def test_the_hub_tells_which_sessions_ended_since_a_time_it_was_listening(layer):
    hub = RoomHub()
    before = time.monotonic()
    await hub.attach(Socket(user_id=1))
    since = time.monotonic()
    assert hub.session_ended_since(7, "key-1", before) is None  # it was not listening yet
    assert hub.session_ended_since(7, "key-1", since) is False
    for user, key in ((7, "key-2"), (8, None)):
        await layer.group_send(USERS_GROUP, {"type": "session.revoked", "user": user, "session_key": key})
    await until(lambda: len(hub.revoked) == 2)
    assert hub.session_ended_since(7, "key-1", since) is False  # another session of the same user
    assert hub.session_ended_since(7, "key-2", since) is True
    assert hub.session_ended_since(8, "any", since) is True  # a deactivated user: every session
    assert hub.session_ended_since(7, "key-2", time.monotonic()) is False  # ended before that time
    await hub.reset(4012)
    assert hub.session_ended_since(7, "key-1", since) is None  # what it heard while down is unknown
