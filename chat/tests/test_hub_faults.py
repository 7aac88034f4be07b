"""The room hub never leaves a socket open but deaf: a dead reader or a lost subscription closes its sockets."""
import asyncio

import pytest
from channels.layers import get_channel_layer

from chat.realtime import hub as hub_module
from chat.realtime.hub import RoomHub
from chat.realtime.protocol import CLOSE_LINK_LOST, CLOSE_SERVER_FAILED


class Socket:
    """Stand in for a consumer: records frames and its close code."""

    user_id = 1

    def __init__(self):
        self.frames, self.closed = [], None

    async def room_event(self, event):
        self.frames.append(event["data"])

    async def close(self, code=None):
        self.closed = code

    def drop_if_peer_closed(self):
        """Stand in for the consumer's look at its connection (none here)."""


@pytest.fixture
def layer(settings, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    monkeypatch.setattr(hub_module, "PROBE_SECONDS", 0.05)
    monkeypatch.setattr(hub_module, "PROBE_TIMEOUT", 0.2)
    return get_channel_layer()


async def until(predicate, seconds=5):
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_healthy_layer_keeps_sockets_open(layer):
    hub, socket = RoomHub(), Socket()
    await hub.join(1, socket)
    await asyncio.sleep(0.5)  # several probes come and go
    assert socket.closed is None and hub.local_count(1) == 1


async def test_a_lost_probe_closes_every_socket_with_4012_and_the_next_join_starts_afresh(layer, monkeypatch):
    hub, sockets = RoomHub(), [Socket(), Socket()]
    for room_id, socket in enumerate(sockets):
        await hub.join(room_id, socket)
    old_channel = hub.channel
    real_send = layer.send

    async def lose_probes(channel, message):
        if message.get("type") != hub_module.PROBE:
            await real_send(channel, message)

    monkeypatch.setattr(layer, "send", lose_probes)
    await until(lambda: all(socket.closed == CLOSE_LINK_LOST for socket in sockets))
    assert hub.local_count(0) == hub.local_count(1) == 0
    monkeypatch.setattr(layer, "send", real_send)
    again = Socket()
    await hub.join(0, again)
    assert hub.channel != old_channel


async def test_a_reader_that_dies_closes_every_socket_with_4011(layer, monkeypatch):
    hub, socket = RoomHub(), Socket()

    async def broken_receive(channel):
        raise RuntimeError("the layer broke")

    monkeypatch.setattr(layer, "receive", broken_receive)
    await hub.join(1, socket)
    await until(lambda: socket.closed == CLOSE_SERVER_FAILED)
