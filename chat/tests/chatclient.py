"""A room follower that does what the page does: resume with ?after=, heal seq gaps with history after, reconnect with jittered backoff.

Used by the fault tests and by the soak command (python -m soak).
"""
import asyncio
import itertools
import json
import random

import websockets.exceptions

# The page stops reconnecting on these (docs/protocol.md, Closing): bad URL, no login, no access, no room, too many sockets.
FINAL_CLOSE_CODES = {4400, 4401, 4403, 4404, 4429}
_client_ids = itertools.count(1)


class ChatClient:
    """Follow one room over servers tried in turn; hold every message once, in seq order, and count duplicates."""

    def __init__(self, web_clients, slug, username, *, after=0, reconnect=True, backoff=(0.1, 2.0), max_attempts=200):
        self.web_clients = list(web_clients)  # one logged-in WebClient per server, in failover order
        self.slug, self.username = slug, username
        self.reconnect, self.backoff, self.max_attempts = reconnect, backoff, max_attempts
        self.messages = {}  # seq -> message
        self.contiguous = after  # every seq up to this one is held (or was before this client started)
        # Live frames for a seq this connection already delivered (welcome or live); a history
        # answer may legitimately hold a message whose live frame is still on its way.
        self.duplicates = 0
        self.delivered = set()
        self.closes = []  # close codes seen, or "refused" for failed handshakes
        self.errors = []  # error frames
        self.online = set()
        self.connects = 0
        self.pages = 0  # history requests sent (gap healing and resume paging)
        self.pending = {}  # client_id -> body, sent but not acknowledged
        self.acked = {}  # client_id -> seq
        self.resent = set()
        self.server = 0
        self.socket = None
        self.connected = asyncio.Event()
        self._healing = False
        self._stopping = False
        self._task = None

    def start(self):
        """Start following the room in a background task."""
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self):
        """Close the socket and stop reconnecting."""
        self._stopping = True
        if self.socket is not None:
            await self.socket.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    def seqs(self):
        """Return the held seqs in order."""
        return sorted(self.messages)

    async def send(self, body):
        """Send a message with a fresh client_id (resent after reconnects until acknowledged); return the id."""
        client_id = f"{self.username}-{next(_client_ids)}-{random.getrandbits(32):08x}"
        self.pending[client_id] = body
        await self._send_frame({"type": "send", "body": body, "client_id": client_id})
        return client_id

    async def wait(self, predicate, timeout):
        """Wait until predicate() is true; return False after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def catch_up(self, seq, timeout=20.0):
        """Hold every seq up to `seq`, asking for history after the last held one when none arrives."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.contiguous < seq and asyncio.get_running_loop().time() < deadline:
            # A lost last message shows no gap until a later one arrives: ask.
            if not await self.wait(lambda: self.contiguous >= seq, 1.0):
                await self._heal()
        return self.contiguous >= seq

    async def _send_frame(self, frame):
        socket = self.socket
        if socket is None:
            return
        try:
            await socket.send(json.dumps(frame))
        except websockets.exceptions.ConnectionClosed:
            pass  # the reader sees the close and reconnects

    async def _run(self):
        self.failures = 0
        for _ in range(self.max_attempts):
            web = self.web_clients[self.server % len(self.web_clients)]
            try:
                async with web.socket(self.slug, query=f"after={self.contiguous}") as socket:
                    await self._follow(socket)
                code = socket.close_code
            except websockets.exceptions.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
            except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidHandshake):
                code = "refused"
                # This server does not answer: try the next one.
                self.server += 1
            finally:
                self.socket = None
                self.connected.clear()
            self.closes.append(code)
            if self._stopping or not self.reconnect or code in FINAL_CLOSE_CODES:
                return
            self.failures += 1
            # Full jitter: a crowd dropped at once spreads its reconnects out.
            await asyncio.sleep(random.uniform(0, min(self.backoff[1], self.backoff[0] * 2 ** self.failures)))

    async def _follow(self, socket):
        welcome = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert welcome["type"] == "welcome", welcome
        self.socket = socket
        self.connects += 1
        # As on the page, only a welcome proves the server is back: a busy close (4013) goes on backing off.
        self.failures = 0
        self.online = set(welcome["online"])
        self._healing = False
        self.delivered = {message["seq"] for message in welcome["messages"]}
        self._absorb(welcome["messages"])
        self.connected.set()
        if welcome["has_more"] or self._first_gap():
            await self._heal()
        else:
            await self.resend()
        async for text in socket:
            await self._handle(json.loads(text))

    async def _handle(self, frame):
        kind = frame["type"]
        if kind == "message":
            message = frame["message"]
            if message["seq"] in self.delivered and message["client_id"] not in self.resent:
                self.duplicates += 1
            self.delivered.add(message["seq"])
            self._absorb([message])
            if self._first_gap() and not self._healing:
                await self._heal()
        elif kind == "history":
            self._healing = False
            self._absorb(frame["messages"])
            if frame["has_more"] or self._first_gap():
                await self._heal()
            else:
                await self.resend()
        elif kind == "error":
            self.errors.append(frame)
        elif kind == "join":
            self.online.add(frame["user"])
        elif kind == "leave":
            self.online.discard(frame["user"])

    def _absorb(self, messages):
        for message in messages:
            self.messages.setdefault(message["seq"], message)
            if message["author"] == self.username and message["client_id"] in self.pending:
                del self.pending[message["client_id"]]
                self.acked[message["client_id"]] = message["seq"]
        while self.contiguous + 1 in self.messages:
            self.contiguous += 1

    def _first_gap(self):
        """Return the lowest held seq above a missing one, or None."""
        above = [seq for seq in self.messages if seq > self.contiguous]
        return min(above) if above else None

    async def _heal(self):
        """Ask for the messages after the last contiguous seq, no further than the next held one."""
        following = self._first_gap()
        limit = 100 if following is None else min(100, following - self.contiguous - 1)
        self._healing = True
        self.pages += 1
        await self._send_frame({"type": "history", "after": self.contiguous, "limit": limit})

    async def resend(self):
        """Send again what was never acknowledged, once the resume is complete (the server answers repeats)."""
        for client_id, body in list(self.pending.items()):
            self.resent.add(client_id)
            await self._send_frame({"type": "send", "body": body, "client_id": client_id})
