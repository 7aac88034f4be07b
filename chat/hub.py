"""Deliver each room's frames to the sockets this process holds, from one place.

The Channels tutorial gives every socket its own group membership, so a room
of N members costs N layer deliveries, N consumer wake-ups and N handler calls
per message. Here each process subscribes once per room (one hub channel in
the room's group), and the hub hands each frame, already encoded, straight to
its local sockets: the cost per member is one socket write.
"""
import asyncio
import logging
import weakref

from channels.layers import get_channel_layer

from chat.broadcast import room_group

logger = logging.getLogger(__name__)

# Layers expire group memberships (channels' default group_expiry is a day);
# renewing well inside that keeps a long-lived room subscribed.
RENEW_SECONDS = 3600


class RoomHub:
    """One process's subscriptions to room groups, and the local sockets of each room."""

    def __init__(self):
        self.layer = get_channel_layer()
        self.rooms = {}  # room_id -> set of sockets with a room_frame(event) coroutine
        self.channel = None
        self.lock = asyncio.Lock()
        self.tasks = []

    async def join(self, room_id, socket):
        """Add a socket to a room; once this returns, every frame sent to the room reaches it."""
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel("chat.hub.")
                self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._renew())]
            if room_id not in self.rooms:
                await self.layer.group_add(room_group(room_id), self.channel)
                self.rooms[room_id] = set()
            self.rooms[room_id].add(socket)

    async def leave(self, room_id, socket):
        """Remove a socket from a room, unsubscribing when it was the room's last here."""
        async with self.lock:
            sockets = self.rooms.get(room_id)
            if sockets is None:
                return
            sockets.discard(socket)
            if not sockets:
                del self.rooms[room_id]
                await self.layer.group_discard(room_group(room_id), self.channel)

    def local_count(self, room_id):
        """Return how many of a room's sockets this process holds."""
        return len(self.rooms.get(room_id, ()))

    async def _read(self):
        while True:
            event = await self.layer.receive(self.channel)
            for socket in tuple(self.rooms.get(event.get("room"), ())):
                try:
                    await socket.room_frame(event)
                except Exception:
                    # One broken socket must not keep the frame from the others.
                    logger.exception("could not deliver a frame of room %s", event.get("room"))

    async def _renew(self):
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for room_id in tuple(self.rooms):
                await self.layer.group_add(room_group(room_id), self.channel)


_hubs = weakref.WeakKeyDictionary()


def get_hub():
    """Return the hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = RoomHub()
    return _hubs[loop]
