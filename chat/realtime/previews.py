"""Build new messages' link previews in this process, off the sockets' path.

Fetches run in threads of their own (FETCH_THREADS at once: a slow site
holds one of them, never the event loop or a database thread); the quick
write that adds the previews goes through the database like any change, and
the event loop makes its broadcast.
"""
import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async

from chat.domain import previews
from chat.realtime.broadcast import sending_on_loop

# Fetches at once per process; more messages with links wait their turn.
FETCH_THREADS = 4

logger = logging.getLogger(__name__)
_building = set()  # tasks in flight, kept from the garbage collector


def previews_start(message_id, body):
    """Start building the previews of a stored message (its id and body) on the running event loop."""
    task = asyncio.create_task(_build(message_id, body))
    _building.add(task)
    task.add_done_callback(_building.discard)


async def _build(message_id, body):
    try:
        found = await asyncio.get_running_loop().run_in_executor(_fetch_threads(), previews.previews_fetch, body)
        # Even with nothing found: an edit may have taken out links that had previews.
        await sending_on_loop(database_sync_to_async(previews.previews_add))(message_id=message_id, previews=found)
    except Exception:  # noqa: BLE001 - a message without its previews is no loss worth more than a line
        logger.warning("could not add the previews of message %s", message_id, exc_info=True)


@functools.cache
def _fetch_threads():
    return ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="chat-previews")
