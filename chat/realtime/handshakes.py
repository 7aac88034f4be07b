"""Admit websocket handshakes: a bounded number per address, of logged-in users only, a few at a time.

The stack in myproject/asgi.py runs, in order: the Origin check (chat/realtime/origins.py),
HandshakesPerAddress, HandshakeGate, the session and user (chat/realtime/sessions.py), then
LoginRequired. A bad Origin never reaches the gate, and an address that floods it
is turned away before it; the session lookup runs inside the gate because on
Django's one sync thread hundreds of lookups at once (a reconnect storm of 500 on
PostgreSQL) each outlived daphne's connect timeout, and no client got back in.

When hundreds of clients reconnect together (a server process died), starting
every handshake at once makes every one of them late: each waits behind all
the others' database and Redis calls, daphne drops it after 5 s, its client
retries, and the work already done is lost. Running a few at a time keeps
each one short; a handshake that cannot start soon is closed with 4013, and
its client comes back after a jittered backoff.
"""
import asyncio
import weakref

from django.conf import settings

from chat.platform import metrics
from chat.platform.limits import MemoryCounter
from chat.platform.logs import log_event
from chat.realtime import protocol

# Enough to keep a process's database threads busy.
HANDSHAKES_AT_ONCE = 16
# Well inside daphne's 5 s connect timeout, so that an admitted handshake still has time to finish.
HANDSHAKE_WAIT_SECONDS = 2.0

_slots = weakref.WeakKeyDictionary()
# In this process's memory: a Redis round trip per handshake would cost more than the session lookup it saves.
_per_address = MemoryCounter()


async def close_handshake(receive, send, code):
    """Accept a handshake and close it with `code` at once: a refusal is a bare 403, which hides the code."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code})


class HandshakesPerAddress:
    """Close with 4013 the handshakes of a client address past CHAT_HANDSHAKE_RATE in this process.

    It runs before the session lookup, so an address flooding handshakes costs
    the database nothing past the bound. Every handshake counts, refused or
    not; a logged-in user behind the same address (a NAT) shares the bound and
    retries after a backoff. Without an address (a Unix socket and no proxy
    headers) there is nothing to count by.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        address = (scope.get("client") or [None])[0]
        if address is not None:
            count, seconds = settings.CHAT_HANDSHAKE_RATE
            hits, _ = _per_address.hit(address, seconds)
            if hits > count:
                if hits == count + 1:
                    # Once per window: a flood must not become a flood of log lines.
                    log_event("ws.busy", path=scope["path"], reason="address", address=address)
                metrics.handshake("busy", "address")
                metrics.LIMIT_REFUSALS["handshake"].inc()
                return await close_handshake(receive, send, protocol.CLOSE_BUSY)
        return await self.application(scope, receive, send)


class LoginRequired:
    """Refuse anonymous handshakes (no, expired or garbage session cookie) with 4401 before the consumer runs."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["user"].is_authenticated:
            return await self.application(scope, receive, send)
        log_event("ws.refused", path=scope["path"], reason="anonymous")
        metrics.handshake("refused", "anonymous")
        # Closed with 4401, not a 403 the page sees as 1006: it stops reconnecting and asks to log in.
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": protocol.error_frame(protocol.FORBIDDEN, "Log in to chat.")})
        await send({"type": "websocket.close", "code": protocol.CLOSE_SESSION_ENDED})


class HandshakeGate:
    """Run at most HANDSHAKES_AT_ONCE websocket handshakes of this process at once; close the late ones with 4013."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        slots = _loop_slots()
        try:
            async with asyncio.timeout(HANDSHAKE_WAIT_SECONDS):
                await slots.acquire()
        except TimeoutError:
            log_event("ws.busy", path=scope["path"])
            metrics.handshake("busy", "gate")
            return await close_handshake(receive, send, protocol.CLOSE_BUSY)
        receive = _ReleasingReceive(receive, slots)
        try:
            return await self.application(scope, receive, send)
        finally:
            receive.release()


class _ReleasingReceive:
    """Wrap an ASGI receive to give the gate's slot back once the app asks for its second message."""

    # An object with slots, not two closures and their cells: it lives as long as its socket.
    __slots__ = ("receive", "slots", "first")

    def __init__(self, receive, slots):
        self.receive, self.slots, self.first = receive, slots, True

    async def __call__(self):
        # An app that asks for its second message is done with the first, the
        # handshake. Wrapping receive, not send, keeps the gate off the path of
        # every frame sent to the socket afterwards.
        if not self.first:
            self.release()
        self.first = False
        return await self.receive()

    def release(self):
        """Give the slot back, once."""
        if self.slots is not None:
            self.slots.release()
            self.slots = None


def _loop_slots():
    """Return the handshake slots of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    return _slots[loop]
