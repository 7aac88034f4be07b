"""A protocol v2 room follower that does what the page does: subscribe after each hello, resume by cseq, fill holes.

Used by the fault tests and by the soak command (python -m soak).
"""
import asyncio
import itertools
import json
import random
from typing import NamedTuple

import websockets.exceptions

# The page stops reconnecting on these (docs/protocol.md, Closing): bad URL, no login, no access, no room,
# too many sockets.
FINAL_CLOSE_CODES = {4400, 4401, 4403, 4404, 4429}
# A subscribe refused with one of these will be refused again: the client gives up, as the page's room view does.
FINAL_ERROR_CODES = {"invalid", "forbidden", "not_found", "too_many_subscriptions"}
# The server bounds each step of a subscribe by 2 s; past this something is stuck and a new socket is worth trying.
SUBSCRIBE_SECONDS = 15.0
_client_ids = itertools.count(1)


class Stored(NamedTuple):
    """Where the server stored an acknowledged message."""

    seq: int
    cseq: int


class ChatClient:
    """Follow one room over servers tried in turn; hold every message once, as it is now, and count duplicates."""

    def __init__(self, web_clients, slug, username, *, after=0, reconnect=True, backoff=(0.1, 2.0), max_attempts=200):
        self.web_clients = list(web_clients)  # one logged-in WebClient per server, in failover order
        self.slug, self.username = slug, username
        self.reconnect, self.backoff, self.max_attempts = reconnect, backoff, max_attempts
        self.messages = {}  # seq -> message, the copy with the highest cseq
        self.deleted = set()  # seqs of messages the feed said were deleted
        self.cseq = after  # every change up to this one is applied (or was before this client started)
        self.above = set()  # changes applied past a hole, above self.cseq
        # Live frames for a change this connection's view covered or already delivered; a changes
        # answer may legitimately hold a change whose live frame is still on its way.
        self.duplicates = 0
        self.delivered = set()
        self.view_cseq = 0
        self.closes = []  # close codes seen, or "refused" for failed handshakes
        self.errors = []  # error frames
        self.refusal = None  # the error that refused the subscribe for good
        self.online = set()
        self.connects = 0  # views received (one per connection that subscribed)
        self.pages = 0  # changes requests sent (hole filling and resume paging)
        self.pending = {}  # client_id -> body, sent but not acknowledged
        self.acked = {}  # client_id -> Stored
        self.resent = set()
        self.server = 0
        self.socket = None  # set while subscribed
        self._socket = None  # the open connection, subscribed or not
        self.connected = asyncio.Event()
        self._requests = itertools.count(1)
        self._subscribe_id = self._catch_up_id = None
        self._resuming = False
        self._stopping = False
        self._task = None

    def start(self):
        """Start following the room in a background task."""
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self):
        """Close the socket and stop reconnecting."""
        self._stopping = True
        if self._socket is not None:
            await self._socket.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    def seqs(self):
        """Return the held seqs in order."""
        return sorted(self.messages)

    def gaps(self, above=0):
        """Return the seqs above `above` and up to the highest one known that are neither held nor known deleted."""
        known = self.messages.keys() | self.deleted
        highest = max(known, default=above)
        return [seq for seq in range(above + 1, highest + 1) if seq not in known]

    async def send(self, body):
        """Send a message with a fresh client_id (resent after reconnects until acknowledged); return the id."""
        client_id = f"{self.username}-{next(_client_ids)}-{random.getrandbits(32):08x}"
        self.pending[client_id] = body
        await self._send_send(client_id, body)
        return client_id

    async def wait(self, predicate, timeout):
        """Wait until predicate() is true; return False after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def catch_up(self, cseq, timeout=20.0):
        """Be current to change `cseq`, asking for the changes after the cursor when none arrives."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.cseq < cseq and asyncio.get_running_loop().time() < deadline:
            # A lost last change shows no hole until a later one arrives: ask.
            if not await self.wait(lambda: self.cseq >= cseq, 1.0):
                self._catch_up_id = None  # an answer lost with its socket will never come
                await self._request_changes()
        return self.cseq >= cseq

    async def resend(self):
        """Send again what was never acknowledged, once the resume is complete (the server answers repeats)."""
        for client_id, body in list(self.pending.items()):
            self.resent.add(client_id)
            await self._send_send(client_id, body)

    async def _send_send(self, client_id, body):
        # The client_id doubles as the request_id: its ack then names the message it answers.
        await self._send_frame({"type": "send", "room": self.slug, "body": body, "client_id": client_id,
                                "request_id": client_id})

    async def _send_frame(self, frame, socket=None):
        socket = socket or self.socket
        if socket is None:
            return  # sent again once subscribed
        try:
            await socket.send(json.dumps(frame))
        except websockets.exceptions.ConnectionClosed:
            pass  # the reader sees the close and reconnects

    async def _run(self):
        self.failures = 0
        for _ in range(self.max_attempts):
            web = self.web_clients[self.server % len(self.web_clients)]
            try:
                async with web.socket() as socket:
                    self._socket = socket
                    await self._follow(socket)
                code = socket.close_code
            except websockets.exceptions.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
            except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidHandshake):
                code = "refused"
                # This server does not answer: try the next one.
                self.server += 1
            finally:
                self.socket = self._socket = None
                self.connected.clear()
            self.closes.append(code)
            if self._stopping or not self.reconnect or code in FINAL_CLOSE_CODES or self.refusal is not None:
                return
            self.failures += 1
            # Full jitter: a crowd dropped at once spreads its reconnects out.
            await asyncio.sleep(random.uniform(0, min(self.backoff[1], self.backoff[0] * 2 ** self.failures)))

    async def _follow(self, socket):
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert hello["type"] == "hello", hello
        self._subscribe_id = next(self._requests)
        self._catch_up_id = None
        await self._send_frame({"type": "subscribe", "room": self.slug, "after": self.cseq,
                                "request_id": self._subscribe_id}, socket)
        async with asyncio.timeout(SUBSCRIBE_SECONDS) as deadline:
            async for text in socket:
                await self._handle(socket, json.loads(text))
                if self.socket is not None:
                    deadline.reschedule(None)

    async def _handle(self, socket, frame):
        kind = frame["type"]
        if kind == "subscribed":
            if frame.get("request_id") == self._subscribe_id:
                await self._view(socket, frame)
        elif self.socket is None:
            if kind == "error" and frame.get("request_id") == self._subscribe_id:
                await self._refused(socket, frame)
            # Anything else before the view is the user's events, or of a room this client does not follow.
        elif frame.get("room") not in (None, self.slug):
            pass
        elif kind in ("message", "message_edited", "message_deleted"):
            await self._live(frame)
        elif kind == "changes":
            if frame.get("request_id") == self._catch_up_id:
                self._catch_up_id = None
                await self._changes(frame)
        elif kind == "ack":
            if frame.get("seq") is not None and frame["request_id"] in self.pending:
                self._acknowledge(frame["request_id"], frame)
        elif kind == "error":
            self.errors.append(frame)
            if frame.get("request_id") is not None and frame["request_id"] == self._catch_up_id:
                self._catch_up_id = None  # the next live change or catch_up asks again
        elif kind == "presence":
            self.online.update(frame["online"])
            self.online.difference_update(frame["offline"])
        elif kind == "unsubscribed":
            # Removed from the room: the page's room view ends; so does this client.
            self.refusal = frame
            await socket.close()

    async def _view(self, socket, frame):
        self.socket = socket
        self.connects += 1
        # As on the page, only a view proves the server is back: a busy close (4013) goes on backing off.
        self.failures = 0
        self.online = set(frame["online"])
        self.view_cseq = frame["cseq"]
        self.delivered = set()
        self._resuming = True
        self.connected.set()
        await self._changes(frame)

    async def _refused(self, socket, frame):
        self.errors.append(frame)
        if frame["code"] in FINAL_ERROR_CODES:
            self.refusal = frame
        # Otherwise (the database or the layer did not answer) a new socket retries after a backoff.
        await socket.close()

    async def _live(self, frame):
        change = frame if frame["type"] == "message_deleted" else {"type": "message", "message": frame["message"]}
        cseq = self._apply(change)
        resend = frame["type"] == "message" and frame["message"]["client_id"] in self.resent
        if (cseq <= self.view_cseq or cseq in self.delivered) and not resend:
            self.duplicates += 1
        self.delivered.add(cseq)
        if cseq > self.cseq:
            self.above.add(cseq)
        if self._close_hole():
            await self._request_changes()

    async def _changes(self, frame):
        """Apply a subscribed frame (fresh or resumed) or a changes answer, then ask for more while there is more."""
        for message in frame.get("messages", []):
            self._apply({"type": "message", "message": message})
        for change in frame.get("changes", []):
            self._apply(change)
        self.cseq = max(self.cseq, frame["cseq"])
        hole = self._close_hole()
        if frame["has_more"] or hole:
            await self._request_changes()
        elif self._resuming:
            self._resuming = False
            await self.resend()

    def _apply(self, change):
        """Apply one change unless the held copy is as recent; return its cseq."""
        if change["type"] == "message_deleted":
            self.messages.pop(change["seq"], None)
            self.deleted.add(change["seq"])
            return change["cseq"]
        message = change["message"]
        held = self.messages.get(message["seq"])
        if held is None or held["cseq"] < message["cseq"]:
            if message["seq"] not in self.deleted:
                self.messages[message["seq"]] = message
        if message["author"] == self.username and message["client_id"] in self.pending:
            self._acknowledge(message["client_id"], message)
        return message["cseq"]

    def _acknowledge(self, client_id, stored):
        del self.pending[client_id]
        self.acked[client_id] = Stored(stored["seq"], stored["cseq"])

    def _close_hole(self):
        """Move the cursor over the changes applied right above it; return whether a hole is left below one."""
        self.above = {cseq for cseq in self.above if cseq > self.cseq}
        while self.cseq + 1 in self.above:
            self.cseq += 1
            self.above.discard(self.cseq)
        return bool(self.above)

    async def _request_changes(self):
        if self._catch_up_id is not None:
            return  # its answer checks again
        self._catch_up_id = next(self._requests)
        self.pages += 1
        await self._send_frame({"type": "changes", "room": self.slug, "after": self.cseq,
                                "request_id": self._catch_up_id})
