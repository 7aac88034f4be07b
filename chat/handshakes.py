"""Admit websocket handshakes as fast as the process can finish them, and turn the rest away at once.

When hundreds of clients reconnect together (a server process died), starting
every handshake at once makes every one of them late: each waits behind all
the others' database and Redis calls, daphne drops it after 5 s, its client
retries, and the work already done is lost. Running a few at a time keeps
each one short; a handshake that cannot start soon is closed with 4013, and
its client comes back after a jittered backoff.
"""
import asyncio
import weakref

from chat import protocol
from chat.logs import log_event

# Enough to keep a process's database threads busy.
HANDSHAKES_AT_ONCE = 16
# Well inside daphne's 5 s connect timeout, so that an admitted handshake still has time to finish.
HANDSHAKE_WAIT_SECONDS = 2.0

_slots = weakref.WeakKeyDictionary()


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
            # Accepted first: a refused handshake looks like a 403, which the client cannot tell from a lost login.
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": protocol.CLOSE_BUSY})
            return
        first = True

        async def receive_and_release():
            # An app that asks for its second message is done with the first, the
            # handshake. Wrapping receive, not send, keeps the gate off the path of
            # every frame sent to the socket afterwards.
            nonlocal first
            if not first:
                release()
            first = False
            return await receive()

        def release():
            nonlocal slots
            if slots is not None:
                slots.release()
                slots = None

        try:
            return await self.application(scope, receive_and_release, send)
        finally:
            release()


def _loop_slots():
    """Return the handshake slots of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    return _slots[loop]
