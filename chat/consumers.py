"""The chat socket: authenticate, join the room, translate frames to services and back."""
import asyncio
import functools
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, DatabaseError
from django.utils import timezone

from chat import protocol, selectors, services
from chat.batches import get_send_queue
from chat.broadcast import room_send, sending_on_loop
from chat.build import build_id
from chat.dbhealth import DatabaseUnavailable, get_breaker
from chat.hub import LinkLost, get_hub
from chat.limits import Limit, LimitExceeded
from chat.logs import log_event
from chat.presence import get_process_presence
from chat.connections import abort_if_peer_closed, daphne_protocol
from chat.wire import direct_writer

logger = logging.getLogger(__name__)

# Past a session's expiry time, wait this long before looking, so that it has surely passed.
SESSION_GRACE_SECONDS = 0.5
# When the database cannot say whether a session still holds, ask again this much later.
SESSION_RETRY_SECONDS = 30
# A handshake's subscription and presence entry take milliseconds; well inside daphne's 5 s connect timeout.
LAYER_SECONDS = 2.0


def db(func):
    """Wrap an ORM function for the event loop, in parallel threads where the database allows it."""
    # SQLite has one writer at a time, so its calls share one thread. Other
    # databases get up to CHAT_DATABASE_THREADS threads, each with its own
    # connection, so that round trips overlap instead of queueing behind each
    # other; the event loop makes each commit's sends.
    # The engine is read from the settings: touching `connection` here, in the
    # socket's task, would give every socket a database wrapper of its own (3 KiB each).
    if settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.sqlite3":
        call = database_sync_to_async(func)
    else:
        # A database over the network can stop answering: its calls then fail
        # (DatabaseUnavailable) after CHAT_DATABASE_CALL_TIMEOUT, and at once while it is known down.
        call = get_breaker().guard(
            func, executor=_database_threads(), timeout=settings.CHAT_DATABASE_CALL_TIMEOUT
        )
    return sending_on_loop(call)


@functools.cache
def _database_threads():
    return ThreadPoolExecutor(settings.CHAT_DATABASE_THREADS, thread_name_prefix="chat-db")


class ChatConsumer(AsyncWebsocketConsumer):
    # No layer channel per socket: the process's hub delivers room frames and user events.
    channel_layer_alias = None
    user = room = None
    # The next look at the login session: a timer between looks, a task only
    # during one (a task sleeping for hours would cost each socket 1.4 KiB).
    session_timer = session_check = None
    # The process presence that counts this socket, once it does (and must uncount it).
    presence = None
    # Room frames that arrive before the welcome is sent wait here, in order.
    backlog = None
    # Writes the hub's prebuilt frames straight to the connection, under daphne.
    direct = None
    # daphne's websocket protocol of this socket, when served by daphne.
    connection = None
    accepted = closed = released = False

    async def __call__(self, scope, receive, send):
        # Whatever ends this socket (a disconnect, an exception, cancellation),
        # its hub membership, presence and socket count go exactly once.
        self.asgi_send = send
        try:
            await super().__call__(scope, receive, self.send_unless_closed)
        finally:
            await self.release()

    async def send_unless_closed(self, message):
        """Pass an ASGI message to the server, dropping it once the socket is closing or closed."""
        if self.closed:
            return
        kind = message["type"]
        if kind == "websocket.close":
            self.closed = True
        try:
            await self.asgi_send(message)
        except Disconnected:
            # The client closed meanwhile: a benign race, not an error.
            self.closed = True
            logger.debug("dropped a %s for a closed socket", kind)
            self.drop_if_peer_closed()
            return
        if kind == "websocket.accept":
            self.accepted = True

    async def dispatch(self, message):
        """Call the handler of an ASGI message; a failure closes the socket with 4011 instead of killing it."""
        # No channels' connection clean-up before each (a hop to the one sync
        # thread for every frame); db() already closes stale connections in the thread that uses them.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except (StopConsumer, asyncio.CancelledError):
            raise
        except LinkLost:
            # The hub has logged the outage once; the client reconnects and resumes.
            await self.close(code=protocol.CLOSE_LINK_LOST)
        except DatabaseError:
            log_event("ws.error", room=self.room, user=self.user, level=logging.WARNING, error="database")
            await self.close(code=protocol.CLOSE_SERVER_FAILED)
        except Exception:
            log_event("ws.error", room=self.room, user=self.user, level=logging.ERROR, exc_info=True)
            await self.close(code=protocol.CLOSE_SERVER_FAILED)

    async def accept(self, subprotocol=None, headers=None):
        await super().accept(subprotocol, headers)
        self.direct = direct_writer(self.asgi_send)
        self.connection = daphne_protocol(self.asgi_send)

    async def close(self, code=None, reason=None):
        """Close the socket; a handshake closed with an application code is accepted first, so the client sees the code."""
        if self.closed:
            return
        if code is not None and not self.accepted:
            # Closing a handshake answers HTTP 403, which clients take for "not allowed".
            await self.accept()
        await super().close(code=code, reason=reason)

    async def connect(self):
        self.user = self.scope["user"]
        slug = self.scope["url_route"]["kwargs"]["slug"]
        if not self.user.is_authenticated:
            await self.refuse(slug, protocol.FORBIDDEN, protocol.CLOSE_SESSION_ENDED, "Log in to chat.")
            return
        presence = get_process_presence()
        if presence.socket_count(self.user.username) >= settings.CHAT_MAX_SOCKETS_PER_USER:
            await self.refuse(
                slug, protocol.TOO_MANY_SOCKETS, protocol.CLOSE_TOO_MANY_SOCKETS,
                f"You have {settings.CHAT_MAX_SOCKETS_PER_USER} sockets open already; close a tab and retry.",
            )
            return
        try:
            after = _query_after(self.scope)
            self.room, membership = await db(services.room_join)(slug=slug, user=self.user)
        except (ValueError, ValidationError) as error:
            await self.refuse(slug, protocol.INVALID, protocol.CLOSE_INVALID, _detail(error))
            return
        except PermissionDenied as error:
            await self.refuse(slug, protocol.FORBIDDEN, protocol.CLOSE_REMOVED, str(error))
            return
        except ObjectDoesNotExist:
            await self.refuse(slug, protocol.NOT_FOUND, protocol.CLOSE_NOT_FOUND, "There is no such room.")
            return
        self.session_key = self.scope["session"].session_key
        # A plain int: the hub compares it for every member of every frame.
        self.user_id = self.user.pk
        # Join before reading so that nothing committed in between is missed;
        # live frames already covered by the welcome are dropped in room_frame.
        # release() undoes each step taken, whatever fails after it.
        self.backlog = []
        try:
            # A layer or Redis that stopped answering (paused) would hold the
            # handshake until daphne drops it without a code: say "retry" first.
            async with asyncio.timeout(LAYER_SECONDS):
                await get_hub().join(self.room.pk, self)
                self.presence = presence
                came_online = await presence.add(self.room.pk, self.user.username)
        except TimeoutError:
            raise LinkLost(f"no answer from the channel layer or presence within {LAYER_SECONDS} s") from None
        if came_online:
            await room_send(self.room.pk, protocol.join_frame(self.user.username), skip_user=self.user.pk)
        messages, has_more = await db(selectors.message_list)(
            room=self.room, after=after, limit=protocol.DEFAULT_PAGE if after is None else protocol.MAX_PAGE
        )
        await self.accept()
        welcome, shown = protocol.welcome_frame(
            room=self.room, user=self.user, messages=messages, has_more=has_more,
            online=await presence.store.online(self.room.pk), last_read_seq=membership.last_read_seq,
            build=build_id(), resumed=after is not None, max_bytes=settings.CHAT_MAX_FRAME_BYTES,
        )
        # The welcome may carry fewer messages than were read: live frames after its last one still come.
        self.seen_seq = shown[-1].seq if shown else (after or 0)
        await self.send(text_data=welcome)
        while self.backlog:
            await self.forward(self.backlog.pop(0))
        self.backlog = None
        if self.closed:
            return
        self.watch_session(0)
        log_event("ws.connect", room=self.room, user=self.user, after=after, direct=self.direct is not None)

    async def refuse(self, slug, code, close_code, detail):
        """Refuse a socket with a reason the page can show: accept, send an error frame, close."""
        log_event("ws.refused", room=slug, user=self.user, reason=code)
        await self.accept()
        await self.send_error(code, detail)
        await self.close(code=close_code)

    async def close_with(self, code):
        """Close the socket with `code`, stopping room frames first so that none follow the close."""
        await get_hub().leave(self.room.pk, self)
        await self.close(code=code)

    async def disconnect(self, code):
        if self.room is not None:
            log_event("ws.disconnect", room=self.room, user=self.user, code=code)
        await self.release()

    async def release(self):
        """Give back what this socket holds (timers, hub membership, presence, socket count), once."""
        if self.released:
            return
        self.released = self.closed = True
        for pending in (self.session_timer, self.session_check):
            if pending is not None:
                pending.cancel()
        if self.room is None:
            return
        await get_hub().leave(self.room.pk, self)
        if self.presence is not None and await self.presence.remove(self.room.pk, self.user.username):
            await room_send(self.room.pk, protocol.leave_frame(self.user.username), skip_user=self.user.pk)

    def drop_if_peer_closed(self):
        """Drop the connection of a client that closed while daphne waits to flush bytes it will never read."""
        if self.connection is not None and abort_if_peer_closed(self.connection):
            log_event("ws.peer_closed", room=self.room, user=self.user, level=logging.DEBUG)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            frame = protocol.parse_client_frame(text_data, settings.CHAT_MAX_FRAME_BYTES)
        except protocol.ProtocolError as error:
            await self.send_error(error.code, error.detail, error.client_id)
            return
        client_id = getattr(frame, "client_id", None)
        try:
            await self.handlers[type(frame)](self, frame)
        except ObjectDoesNotExist:
            await self.send_error(protocol.NOT_FOUND, "No such message in this room.", client_id)
        except PermissionDenied as error:
            await self.send_error(protocol.FORBIDDEN, str(error), client_id)
        except LimitExceeded as error:
            await self.send_error(protocol.RATE_LIMITED, error.detail, client_id, error.retry_after)
            if error.count > error.flood_count:
                log_event("ws.flood", room=self.room, user=self.user, count=error.count)
                await self.close_with(protocol.CLOSE_POLICY)
        except DatabaseError as error:
            # The breaker has logged a known outage once; only other failures are worth a line each.
            level = logging.DEBUG if isinstance(error, DatabaseUnavailable) else logging.WARNING
            log_event("ws.error", room=self.room, user=self.user, level=level, error="database")
            detail = "The server could not store or read that; it may not be saved. Try again."
            await self.send_error(protocol.UNAVAILABLE, detail, client_id)

    async def send_error(self, code, detail, client_id=None, retry_after=None):
        await self.send(text_data=protocol.error_frame(code, detail, client_id, retry_after))

    def count_event(self, name, detail, flood_factor=None):
        """Count one event of this user against a limit, blocking (Redis); raise LimitExceeded when over it."""
        limit = Limit.from_setting(name)
        try:
            limit.check(f"user:{self.user.pk}", detail)
        except LimitExceeded as error:
            # Past flood_factor times the limit, the socket is closed, not only answered.
            error.flood_count = limit.count * flood_factor if flood_factor else float("inf")
            raise

    def counted_change(self, change):
        """Return `change` (a message edit or delete) counted against the user's change limit first, in its thread."""
        def call(**kwargs):
            self.count_event("change", "You are changing messages too fast; nothing was changed.",
                             settings.CHAT_FLOOD_FACTOR)
            return change(**kwargs)
        return call

    async def on_send(self, frame):
        detail = "You are sending messages too fast; nothing was sent."
        count = functools.partial(self.count_event, "message", detail, settings.CHAT_FLOOD_FACTOR)
        message, created = await get_send_queue(db).put(
            count, room=self.room, author=self.user, body=frame.body, client_id=frame.client_id
        )
        if not created:
            await self.send(text_data=protocol.message_frame(message))

    async def on_history(self, frame):
        messages, has_more = await db(selectors.message_list)(
            room=self.room, before=frame.before, after=frame.after, limit=frame.limit
        )
        await self.send(text_data=protocol.history_frame(
            messages, has_more, forward=frame.after is not None, max_bytes=settings.CHAT_MAX_FRAME_BYTES
        ))

    async def on_edit(self, frame):
        await db(self.counted_change(services.message_edit))(
            room=self.room, actor=self.user, message_id=frame.id, body=frame.body
        )

    async def on_delete(self, frame):
        await db(self.counted_change(services.message_delete))(room=self.room, actor=self.user, message_id=frame.id)

    async def on_typing(self, frame):
        await sync_to_async(self.count_event, thread_sensitive=False)("typing", "Typing notices are sent too often.")
        await room_send(self.room.pk, protocol.typing_frame(self.user.username), skip_user=self.user.pk)

    async def on_read(self, frame):
        await db(services.membership_read)(room=self.room, user=self.user, seq=frame.seq)

    async def on_ping(self, frame):
        await self.send(text_data=protocol.pong_frame())

    handlers = {
        protocol.Send: on_send,
        protocol.History: on_history,
        protocol.Edit: on_edit,
        protocol.Delete: on_delete,
        protocol.Typing: on_typing,
        protocol.Read: on_read,
        protocol.Ping: on_ping,
    }

    def watch_session(self, delay):
        """Look at the login session `delay` seconds from now."""
        self.session_check = None
        self.session_timer = asyncio.get_running_loop().call_later(delay, self._start_session_check)

    def _start_session_check(self):
        self.session_check = asyncio.create_task(self.check_session())

    async def check_session(self):
        """Close the socket with 4401 if its login session has ended, else look again when it expires."""
        try:
            expiry = await db(selectors.session_expiry)(self.session_key)
        except DatabaseError:
            log_event("ws.error", room=self.room, user=self.user, level=logging.WARNING, error="database")
            self.watch_session(SESSION_RETRY_SECONDS)
            return
        if expiry is None:
            await self.session_revoked({"session_key": self.session_key})
            return
        # Sessions can be extended meanwhile, so look again at the expiry time then.
        self.watch_session(max((expiry - timezone.now()).total_seconds(), 0) + SESSION_GRACE_SECONDS)

    async def room_frame(self, event):
        """Take a room's encoded frame from the hub, holding it back until the welcome is sent."""
        if self.backlog is not None:
            self.backlog.append(event)
        else:
            await self.forward(event)

    async def forward(self, event):
        """Send a room's encoded frame, skipping duplicates of the welcome and the user's own frames."""
        if event.get("skip_user") == self.user_id:
            return
        if event.get("seq") is not None and event["seq"] <= self.seen_seq:
            return
        await self.send_encoded(event)

    async def user_frame(self, event):
        """Forward an encoded frame meant for this user wherever they are."""
        await self.send_encoded(event)

    async def send_encoded(self, event):
        """Send a frame the hub encoded: its prebuilt bytes straight to the connection when allowed, else by ASGI."""
        if self.closed:
            return
        frame = event.get("frame")
        if frame is None or self.direct is None or not self.direct.write(frame):
            await self.send(text_data=event["text"])

    async def room_removed(self, event):
        """Close this socket when its user was removed from its room."""
        if event["room_id"] == self.room.pk:
            log_event("ws.removed", room=self.room, user=self.user)
            await self.close_with(protocol.CLOSE_REMOVED)

    async def session_revoked(self, event):
        """Close this socket when its login session ended (logout, expiry) or its user was deactivated."""
        if event.get("session_key") in (None, self.session_key):
            log_event("ws.session_ended", room=self.room, user=self.user)
            await self.close_with(protocol.CLOSE_SESSION_ENDED)


def _detail(error):
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)


def _query_after(scope):
    """Return the `after` seq of the socket URL or None; raise ValueError when malformed."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after")
    if not values:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", values[-1]):
        raise ValueError("'after' must be a non-negative integer.")
    return int(values[-1])
