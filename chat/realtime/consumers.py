"""The chat sockets: authenticate, show rooms, translate frames to services and events back (v2, and v1 over it)."""
import asyncio
import functools
import logging
import re
import time
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

from chat.domain import attachments, events, moderation, previews, selectors, services, threads
from chat.domain.models import validate_room_slug
from chat.platform import metrics
from chat.platform.dbhealth import DatabaseUnavailable, get_breaker
from chat.platform.dbconnections import kept_connection
from chat.platform.limits import Limit, LimitExceeded
from chat.platform.logs import log_event
from chat.realtime import frames, protocol
from chat.realtime.batches import get_send_queue
from chat.realtime.broadcast import room_send, sending_on_loop
from chat.realtime.build import build_id
from chat.realtime.connections import abort_if_peer_closed, daphne_protocol
from chat.realtime.hub import ASGI, DIRECT, LinkLost, get_hub
from chat.realtime.presence import get_process_presence
from chat.realtime.sessions import session_first_look, session_forget
from chat.realtime.wire import direct_writer, text_frame

logger = logging.getLogger(__name__)

# Past a session's expiry time, wait this long before looking, so that it has surely passed.
SESSION_GRACE_SECONDS = 0.5
# When the database cannot say whether a session still holds, ask again this much later.
SESSION_RETRY_SECONDS = 30
# A handshake's subscription and presence entry take milliseconds; well inside daphne's 5 s connect timeout.
LAYER_SECONDS = 2.0
# Rooms the hello lists at most (the most recently active first); `rooms_count` gives the total.
HELLO_ROOMS = 200


def db(func):
    """Wrap an ORM function for the event loop, in parallel threads where the database allows it."""
    # SQLite has one writer at a time, so its calls share one thread. Other
    # databases get up to CHAT_DATABASE_THREADS threads, each with its own
    # connection, so that round trips overlap instead of queueing behind each
    # other; the event loop makes each commit's sends.
    # The engine is read from the settings: touching `connection` here, in the
    # socket's task, would give every socket a database wrapper of its own (3 KiB each).
    if settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] == "django.db.backends.sqlite3":
        call = database_sync_to_async(kept_connection(func))
    else:
        # A database over the network can stop answering: its calls then fail
        # (DatabaseUnavailable) after CHAT_DATABASE_CALL_TIMEOUT, and at once while it is known down.
        call = get_breaker().guard(
            func, executor=_database_threads(), timeout=settings.CHAT_DATABASE_CALL_TIMEOUT
        )
    return sending_on_loop(metrics.timed(metrics.DATABASE_SECONDS[func.__name__], call))


@functools.cache
def _database_threads():
    return ThreadPoolExecutor(settings.CHAT_DATABASE_THREADS, thread_name_prefix="chat-db")


def encoded(event, version, slug):
    """Return (text, wire frame) of a layer event for protocol `version`, built once per event for all sockets."""
    cache = event.setdefault("encoded", {})
    if version not in cache:
        if version == 1:
            text = protocol.encode_event(event["kind"], event["data"])
        else:
            text = frames.encode_event(event["kind"], slug, event["data"])
        cache[version] = (text, text_frame(text) if text is not None else None)
    return cache[version]


class Subscription:
    """One room a socket shows: what its first view covered, and the room's events that wait for that view."""

    # Slots, not a dict: one per socket and room, kept for the socket's life.
    __slots__ = ("room", "last_read_seq", "backlog", "cseq", "seen_seq", "present", "muted_until")

    def __init__(self, room, last_read_seq):
        self.present = False  # counted in the room's presence
        self.muted_until = None  # when the user's mute in the room ends, as of the view
        self.room = room
        self.last_read_seq = last_read_seq
        # Room events that arrive before the view is sent wait here, in order.
        self.backlog = []
        # Live events at or below these are in the view already (cseq: any change; seq: v1's messages).
        self.cseq = self.seen_seq = None


class ChatConsumer(AsyncWebsocketConsumer):
    """Protocol v2 (/ws/): one socket per tab, carrying the user's events and any rooms it subscribes to."""

    version = frames.VERSION
    # No layer channel per socket: the process's hub delivers room and user events.
    channel_layer_alias = None
    user = None
    # The one room of a v1 socket, for its log lines.
    room = None
    # The next look at the login session: a timer between looks, a task only
    # during one (a task sleeping for hours would cost each socket 1.4 KiB).
    session_timer = session_check = None
    # The process presence that counts this socket, once it does (and must uncount it).
    presence = None
    # Writes the hub's prebuilt frames straight to the connection, under daphne.
    direct = None
    # daphne's websocket protocol of this socket, when served by daphne.
    connection = None
    accepted = closed = released = attached = False
    # How the handshake ended ("accepted", "refused"), and the code the server closed with, for the metrics.
    handshake = close_code = None
    # User events that arrive before the socket's first frame is sent wait here.
    pending = None

    async def __call__(self, scope, receive, send):
        # Whatever ends this socket (a disconnect, an exception, cancellation),
        # its hub membership, presence and socket count go exactly once.
        self.asgi_send = send
        self.subscriptions = {}  # room id -> Subscription
        self.slugs = {}  # slug -> room id
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
        elif kind == "websocket.send":
            metrics.FRAMES_SENT[protocol.frame_type(message.get("text"))].inc()

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
        self.close_code = code
        if code is not None and not self.accepted:
            # Closing a handshake answers HTTP 403, which clients take for "not allowed".
            await self.accept()
        await super().close(code=code, reason=reason)

    async def connect(self):
        if not await self.open_socket():
            return
        # Watch before reading, so that no activity after the read is missed;
        # the page drops activity its summaries already count (by seq).
        room_ids = await db(selectors.room_ids_for_user)(self.user)
        get_hub().watch(self, room_ids)
        summaries, count = await db(selectors.room_summaries_for_user)(self.user, HELLO_ROOMS)
        await self.accept()
        rooms = frames.encode_parts(summaries)
        hello = frames.encode(frames.Hello(
            version=frames.VERSION, build=build_id(), user=frames.User(id=self.user.id, username=self.user.username),
            rooms=[], rooms_count=count,
        ))
        # The sidebar takes at most half a frame; `rooms_count` says how many there are.
        hello, _ = protocol.fit(hello, "rooms", rooms, keep="oldest", max_bytes=settings.CHAT_MAX_FRAME_BYTES // 2)
        await self.send(text_data=hello)
        await self.opened()
        log_event("ws.connect", user=self.user, version=self.version, direct=self.direct is not None)

    async def open_socket(self):
        """Authenticate, count and attach the socket; return False when it was refused."""
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            await self.refuse(protocol.FORBIDDEN, protocol.CLOSE_SESSION_ENDED, "Log in to chat.")
            return False
        presence = get_process_presence()
        if presence.socket_count(self.user.username) >= settings.CHAT_MAX_SOCKETS_PER_USER:
            metrics.LIMIT_REFUSALS["sockets"].inc()
            await self.refuse(
                protocol.TOO_MANY_SOCKETS, protocol.CLOSE_TOO_MANY_SOCKETS,
                f"You have {settings.CHAT_MAX_SOCKETS_PER_USER} sockets open already; close a tab and retry.",
            )
            return False
        self.session_key = self.scope["session"].session_key
        # A plain int: the hub compares it for every member of every frame.
        self.user_id = self.user.pk
        self.presence = presence
        presence.socket_opened(self.user.username)
        self.pending = []
        # A layer or Redis that stopped answering (paused) would hold the
        # handshake until daphne drops it without a code: say "retry" first.
        await self.within_layer_time(get_hub().attach(self))
        self.attached = True
        return True

    async def opened(self):
        """Send the user events that waited for the socket's first frame, then watch the login session."""
        self.handshake = "accepted"
        metrics.socket_opened()
        waiting, self.pending = self.pending, None
        for handler, event in waiting:
            await handler(event)
        if not self.closed:
            # Looked at in the handshake already: again when it expires, unless the hub heard it end since.
            ended = functools.partial(get_hub().session_ended_since, self.user_id, self.session_key)
            delay = session_first_look(self.scope["session"], ended)
            session_forget(self.scope["session"])
            self.watch_session(delay + SESSION_GRACE_SECONDS if delay else 0)

    async def within_layer_time(self, call):
        """Await a layer or presence call, raising LinkLost (4012) when it takes over LAYER_SECONDS."""
        try:
            async with asyncio.timeout(LAYER_SECONDS):
                return await call
        except TimeoutError:
            raise LinkLost(f"no answer from the channel layer or presence within {LAYER_SECONDS} s") from None

    async def refuse(self, code, close_code, detail):
        """Refuse a socket with a reason the page can show: accept, send an error frame, close."""
        log_event("ws.refused", user=self.user, reason=code)
        self.handshake = "refused"
        metrics.handshake("refused", code)
        await self.accept()
        await self.send_error(code, detail)
        await self.close(code=close_code)

    async def subscribe(self, slug, *, after=None, after_seq=None, request_id=None):
        """Show the socket a room: join it here, count the user present, send its first view; return the Subscription.

        Raise ValidationError, PermissionDenied or ObjectDoesNotExist as room_join does.
        """
        room, membership = await db(services.room_join)(slug=slug, user=self.user)
        sub = self.subscriptions.get(room.pk)
        if sub is None:
            sub = self.subscriptions[room.pk] = Subscription(room, membership.last_read_seq)
            self.slugs[room.slug] = room.pk
            # Join before reading so that nothing committed in between is missed;
            # live events already covered by the view are dropped in forward().
            await self.within_layer_time(get_hub().join(room.pk, self))
            # Counted here at once, even when the store does not answer: remove() then uncounts it.
            sub.present = True
            if await self.within_layer_time(self.presence.add(room.pk, self.user.username)):
                self.presence.announce(room.pk, self.user.username)
        else:
            # A fresh view of a room shown already: it shows the room as read for it (a new name, archived),
            # and the room's events wait for it again.
            sub.room = room
            if sub.backlog is None:
                sub.backlog = []
        sub.muted_until = membership.muted_until
        limit = protocol.DEFAULT_PAGE if after is None and after_seq is None else protocol.MAX_PAGE
        cseq, items, has_more = await db(selectors.room_view)(room=room, after=after, after_seq=after_seq, limit=limit)
        if self.subscriptions.get(room.pk) is not sub:
            return None  # removed or unsubscribed meanwhile
        online = await self.within_layer_time(self.presence.store.online(room.pk))
        if not self.accepted:  # a v1 handshake: accepted once its room is known
            await self.accept()
        await self.send(text_data=self.view_frame(
            sub, cseq=cseq, items=items, has_more=has_more, online=online, after=after, after_seq=after_seq,
            request_id=request_id,
        ))
        while sub.backlog:
            await self.forward(sub, sub.backlog.pop(0))
        sub.backlog = None
        return sub

    def view_frame(self, sub, *, cseq, items, has_more, online, after, after_seq, request_id):
        """Return the `subscribed` frame of a room's first view, noting in `sub` what it covers."""
        room, max_bytes = sub.room, settings.CHAT_MAX_FRAME_BYTES
        online_shown = protocol.fit_names(online, max_bytes // 4)
        resumed = after is not None
        text = frames.encode(frames.Subscribed(
            room=room.slug, name=room.title_for(self.user), topic=room.topic, private=room.is_private,
            direct=room.is_direct, archived=room.is_archived,
            online=online_shown, online_count=len(online), last_read_seq=sub.last_read_seq, cseq=cseq,
            resumed=resumed, messages=[], changes=[], has_more=has_more, request_id=request_id,
            muted_until=events.timestamp(sub.muted_until),
        ))
        if not resumed:
            parts = frames.encode_parts(protocol.message_data(m) for m in items)
            text, _ = protocol.fit(text, "messages", parts, keep="newest", max_bytes=max_bytes)
            sub.cseq = cseq
            return text
        text, sub.cseq = frames.fit_changes(
            text, items, cseq=cseq, after=after, has_more=has_more, max_bytes=max_bytes
        )
        return text

    async def unsubscribe(self, sub, reason, request_id=None):
        """Stop showing the socket a room, telling it why."""
        await self.end(sub)
        await self.send(text_data=frames.encode(frames.Unsubscribed(
            room=sub.room.slug, reason=reason, request_id=request_id,
        )))

    async def end(self, sub):
        """Take the socket out of a room here and out of its presence, once."""
        room_id = sub.room.pk
        if self.subscriptions.get(room_id) is not sub:
            return
        del self.subscriptions[room_id]
        self.slugs.pop(sub.room.slug, None)
        await get_hub().leave(room_id, self)
        if sub.present and await self.presence.remove(room_id, self.user.username):
            self.presence.announce(room_id, self.user.username)

    async def close_with(self, code):
        """Close the socket with `code`, stopping room events first so that none follow the close."""
        for room_id in tuple(self.subscriptions):
            await get_hub().leave(room_id, self)
        await self.close(code=code)

    async def disconnect(self, code):
        if self.user is not None and self.attached:
            log_event("ws.disconnect", room=self.room, user=self.user, code=code, rooms=len(self.subscriptions))
        await self.release()

    async def release(self):
        """Give back what this socket holds (timers, rooms, presence, socket count), once."""
        if self.released:
            return
        self.released = self.closed = True
        metrics.socket_released(self.handshake, self.close_code)
        for pending in (self.session_timer, self.session_check):
            if pending is not None:
                pending.cancel()
        for sub in tuple(self.subscriptions.values()):
            await self.end(sub)
        if self.presence is not None:
            self.presence.socket_closed(self.user.username)
        await get_hub().detach(self)

    def drop_if_peer_closed(self):
        """Drop the connection of a client that closed while daphne waits to flush bytes it will never read."""
        if self.connection is not None and abort_if_peer_closed(self.connection):
            log_event("ws.peer_closed", room=self.room, user=self.user, level=logging.DEBUG)

    def parse(self, text):
        """Return the typed v2 frame of a client text frame, or raise ProtocolError."""
        return frames.parse(text, settings.CHAT_MAX_FRAME_BYTES)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            frame = self.parse(text_data)
        except protocol.ProtocolError as error:
            metrics.FRAMES_RECEIVED["invalid"].inc()
            echo = {"client_id": error.client_id, **error.echo}
            await self.send_error(error.code, error.detail, **echo)
            return
        metrics.FRAMES_RECEIVED[frames.tag(type(frame))].inc()
        echo = {"request_id": frame.request_id, "room": getattr(frame, "room", None),
                "client_id": getattr(frame, "client_id", None)}
        try:
            await self.handlers[type(frame)](self, frame)
        except protocol.ProtocolError as error:
            await self.send_error(error.code, error.detail, **echo)
        except ValidationError as error:
            await self.send_error(protocol.INVALID, _detail(error), **echo)
        except ObjectDoesNotExist:
            detail = "There is no such room." if isinstance(frame, frames.Subscribe) else "No such message in this room."
            await self.send_error(protocol.NOT_FOUND, detail, **echo)
        except moderation.Muted as error:
            await self.send_error(protocol.MUTED, str(error), until=events.timestamp(error.until), **echo)
        except PermissionDenied as error:
            await self.send_error(protocol.FORBIDDEN, str(error), **echo)
        except LimitExceeded as error:
            await self.send_error(protocol.RATE_LIMITED, error.detail, retry_after=error.retry_after, **echo)
            if error.count > error.flood_count:
                log_event("ws.flood", room=echo["room"], user=self.user, count=error.count)
                await self.close_with(protocol.CLOSE_POLICY)
        except DatabaseError as error:
            # The breaker has logged a known outage once; only other failures are worth a line each.
            level = logging.DEBUG if isinstance(error, DatabaseUnavailable) else logging.WARNING
            log_event("ws.error", room=echo["room"], user=self.user, level=level, error="database")
            detail = "The server could not store or read that; it may not be saved. Try again."
            await self.send_error(protocol.UNAVAILABLE, detail, **echo)

    async def send_error(
        self, code, detail, *, request_id=None, room=None, client_id=None, retry_after=None, until=None
    ):
        await self.send(text_data=frames.encode(frames.Error(
            code=code, detail=detail, request_id=request_id, room=room, client_id=client_id, retry_after=retry_after,
            until=until,
        )))

    async def send_ack(self, frame, message=None):
        """Tell the client a request with a request_id is done, when nothing else answers it."""
        if frame.request_id is None:
            return
        stored = {"id": message.id, "seq": message.seq, "cseq": message.cseq} if message is not None else {}
        await self.send(text_data=frames.encode(frames.Ack(
            request_id=frame.request_id, room=getattr(frame, "room", None), **stored,
        )))

    def shown(self, slug):
        """Return the subscription of the room `slug`, or raise ProtocolError when the socket has none."""
        sub = self.subscriptions.get(self.slugs.get(slug))
        if sub is None:
            raise protocol.ProtocolError(protocol.NOT_SUBSCRIBED, f"Subscribe to #{slug} first.")
        return sub

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
        return self.counted(change, "change", "You are changing messages too fast; nothing was changed.")

    def counted_reaction(self, change):
        """Return `change` (a reaction added or removed) counted against the user's reaction limit first."""
        return self.counted(change, "reaction", "You are reacting too fast; nothing was changed.")

    def counted(self, change, limit, detail):
        """Return `change` counted against the user's `limit` first, in the thread that runs it."""
        @functools.wraps(change)  # its database calls are timed under its name
        def call(**kwargs):
            self.count_event(limit, detail, settings.CHAT_FLOOD_FACTOR)
            return change(**kwargs)
        return call

    async def on_subscribe(self, frame):
        if self.slugs.get(frame.room) is None and len(self.subscriptions) >= frames.MAX_SUBSCRIPTIONS:
            raise protocol.ProtocolError(
                protocol.TOO_MANY_SUBSCRIPTIONS, f"A socket shows at most {frames.MAX_SUBSCRIPTIONS} rooms at once."
            )
        await self.subscribe(frame.room, after=frame.after, request_id=frame.request_id)

    async def on_unsubscribe(self, frame):
        await self.unsubscribe(self.shown(frame.room), "requested", frame.request_id)

    async def on_send(self, frame):
        started = time.perf_counter()
        sub = self.shown(frame.room)
        detail = "You are sending messages too fast; nothing was sent."
        count = functools.partial(self.count_event, "message", detail, settings.CHAT_FLOOD_FACTOR)
        if frame.attachments:
            message, created = await db(self.counted(attachments.message_send, "message", detail))(
                room=sub.room, author=self.user, body=frame.body, attachment_ids=frame.attachments,
                client_id=frame.client_id, parent_id=frame.thread, also_in_room=frame.also_in_room,
            )
        elif frame.thread is not None:
            message, created = await db(self.counted(threads.reply_create, "message", detail))(
                room=sub.room, author=self.user, parent_id=frame.thread, body=frame.body, client_id=frame.client_id,
                also_in_room=frame.also_in_room,
            )
        else:
            message, created = await get_send_queue(db).put(
                count, room=sub.room, author=self.user, body=frame.body, client_id=frame.client_id
            )
        if not created:
            # A resend of a stored message: its live frame went out the first time.
            await self.send_message(sub, message)
        await self.send_ack(frame, message)
        metrics.SEND_ACK_SECONDS.observe(time.perf_counter() - started)

    async def send_message(self, sub, message):
        await self.send(text_data=frames.encode_event(
            events.MESSAGE, sub.room.slug, {"message": protocol.message_data(message)}
        ))

    async def on_history(self, frame):
        sub = self.shown(frame.room)
        messages, has_more = await db(selectors.message_list)(
            room=sub.room, before=frame.before, after=frame.after, limit=frame.limit, thread=frame.thread
        )
        following = None
        if frame.thread is not None:
            following = await db(threads.thread_following)(message_id=frame.thread, user=self.user)
        await self.send(text_data=self.history_frame(sub, frame, messages, has_more, following))

    def history_frame(self, sub, frame, messages, has_more, following=None):
        text = frames.encode(frames.HistoryPage(
            room=sub.room.slug, messages=[], has_more=has_more, request_id=frame.request_id, thread=frame.thread,
            following=following,
        ))
        parts = frames.encode_parts(protocol.message_data(m) for m in messages)
        keep = "oldest" if frame.after is not None else "newest"
        return protocol.fit(text, "messages", parts, keep=keep, max_bytes=settings.CHAT_MAX_FRAME_BYTES)[0]

    async def on_changes(self, frame):
        sub = self.shown(frame.room)
        changes, has_more = await db(selectors.change_list)(room=sub.room, after=frame.after, limit=frame.limit)
        last = changes[-1].cseq if changes else frame.after
        text = frames.encode(frames.ChangesPage(
            room=sub.room.slug, cseq=last, changes=[], has_more=has_more, request_id=frame.request_id,
        ))
        text, _ = frames.fit_changes(
            text, changes, cseq=last, after=frame.after, has_more=has_more, max_bytes=settings.CHAT_MAX_FRAME_BYTES
        )
        await self.send(text_data=text)

    async def on_edit(self, frame):
        sub = self.shown(frame.room)
        await db(self.counted_change(services.message_edit))(
            room=sub.room, actor=self.user, message_id=frame.id, body=frame.body
        )
        await self.send_ack(frame)

    async def on_delete(self, frame):
        sub = self.shown(frame.room)
        await db(self.counted_change(services.message_delete))(room=sub.room, actor=self.user, message_id=frame.id)
        await self.send_ack(frame)

    async def on_room_update(self, frame):
        sub = self.shown(frame.room)
        await db(self.counted_change(services.room_update))(
            room=sub.room, actor=self.user, name=frame.name, topic=frame.topic
        )
        await self.send_ack(frame)

    async def on_react(self, frame):
        sub = self.shown(frame.room)
        react = services.reaction_add if isinstance(frame, frames.React) else services.reaction_remove
        await db(self.counted_reaction(react))(room=sub.room, actor=self.user, message_id=frame.id, emoji=frame.emoji)
        await self.send_ack(frame)

    async def on_preview_remove(self, frame):
        sub = self.shown(frame.room)
        remove = self.counted_change(previews.preview_remove)
        await db(remove)(room=sub.room, actor=self.user, message_id=frame.id, url=frame.url)
        await self.send_ack(frame)

    async def on_typing(self, frame):
        sub = self.shown(frame.room)
        await sync_to_async(self.count_event, thread_sensitive=False)("typing", "Typing notices are sent too often.")
        await room_send(sub.room.pk, events.TYPING, {"user": self.user.username}, skip_user=self.user.pk)
        await self.send_ack(frame)

    async def on_read(self, frame):
        sub = self.shown(frame.room)
        await db(services.membership_read)(room=sub.room, user=self.user, seq=frame.seq)
        await self.send_ack(frame)

    async def on_follow(self, frame):
        sub = self.shown(frame.room)
        await db(threads.thread_follow)(room=sub.room, user=self.user, message_id=frame.id, follow=frame.follow)
        await self.send_ack(frame)

    async def on_report(self, frame):
        sub = self.shown(frame.room)
        await db(self.counted(moderation.message_report, "change", "You are reporting too fast; nothing was sent."))(
            reporter=self.user, room=sub.room, message_id=frame.id, reason=frame.reason
        )
        await self.send_ack(frame)

    async def on_ping(self, frame):
        await self.send(text_data=frames.encode(frames.Pong(request_id=frame.request_id)))

    handlers = {
        frames.Subscribe: on_subscribe,
        frames.Unsubscribe: on_unsubscribe,
        frames.Send: on_send,
        frames.History: on_history,
        frames.Changes: on_changes,
        frames.Edit: on_edit,
        frames.Delete: on_delete,
        frames.React: on_react,
        frames.Unreact: on_react,
        frames.RoomUpdate: on_room_update,
        frames.Follow: on_follow,
        frames.Report: on_report,
        frames.PreviewRemove: on_preview_remove,
        frames.Typing: on_typing,
        frames.Read: on_read,
        frames.Ping: on_ping,
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
            log_event("ws.error", user=self.user, level=logging.WARNING, error="database")
            self.watch_session(SESSION_RETRY_SECONDS)
            return
        if expiry is None:
            await self.session_revoked({"session_key": self.session_key})
            return
        # Sessions can be extended meanwhile, so look again at the expiry time then.
        self.watch_session(max((expiry - timezone.now()).total_seconds(), 0) + SESSION_GRACE_SECONDS)

    async def room_event(self, event):
        """Take a room's domain event from the hub, holding it back until the room's view is sent."""
        sub = self.subscriptions.get(event["room"])
        if sub is None:
            return
        if sub.backlog is not None:
            sub.backlog.append(event)
            return None
        return await self.forward(sub, event)

    async def forward(self, sub, event):
        """Send a room's event, skipping what the room's view covered and the user's own typing and presence."""
        if event.get("skip_user") == self.user_id:
            return None
        if event["kind"] == events.PRESENCE and _names_only(event["data"], self.user.username):
            return None  # news of the socket's own user alone: their page knows
        if sub.cseq is not None and event.get("cseq") is not None and event["cseq"] <= sub.cseq:
            return None
        if sub.seen_seq is not None and event.get("seq") is not None and event["seq"] <= sub.seen_seq:
            return None
        return await self.send_encoded(*encoded(event, self.version, sub.room.slug))

    def held(self, handler, event):
        """Keep an event for `handler` until the socket's first frame is sent; return whether it was kept."""
        if self.pending is None:
            return False
        self.pending.append((handler, event))
        return True

    async def room_activity(self, event):
        """Forward a new message's summary in one of the user's rooms that the socket does not show, for the sidebar."""
        if self.held(self.room_activity, event):
            return
        if event["room"] in self.subscriptions:
            return None  # its message event says as much
        return await self.send_encoded(*encoded(event, self.version, None))

    async def user_event(self, event):
        """Forward a domain event meant for this user wherever they are, acting on additions and removals."""
        if self.held(self.user_event, event):
            return
        kind, data = event["kind"], event["data"]
        if kind == events.ROOM_ADDED:
            get_hub().watch(self, [data["room_id"]])
        elif kind == events.ROOM_REMOVED:
            get_hub().unwatch(self, [data["room_id"]])
            sub = self.subscriptions.get(data["room_id"])
            if sub is not None:
                log_event("ws.removed", room=sub.room, user=self.user)
                await self.removed(sub)
        return await self.send_encoded(*encoded(event, self.version, None))

    async def removed(self, sub):
        """End a subscription whose user was removed from the room."""
        await self.unsubscribe(sub, "removed")

    async def send_encoded(self, text, frame):
        """Send a frame the hub encoded: its prebuilt bytes straight to the connection when allowed, else by ASGI.

        Return the path it took (DIRECT or ASGI), or None when nothing was sent.
        """
        if self.closed or text is None:
            return None
        if frame is not None and self.direct is not None and self.direct.write(frame):
            return DIRECT
        await self.send(text_data=text)
        return ASGI

    async def session_revoked(self, event):
        """Close this socket when its login session ended (logout, expiry) or its user was deactivated."""
        if event.get("session_key") in (None, self.session_key):
            log_event("ws.session_ended", room=self.room, user=self.user)
            await self.close_with(protocol.CLOSE_SESSION_ENDED)


class RoomConsumer(ChatConsumer):
    """Protocol v1 (/ws/chat/<slug>/, deprecated): one room per socket, over the same machinery as v2."""

    version = protocol.VERSION

    async def connect(self):
        slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            after = _query_after(self.scope)
            validate_room_slug(slug)
        except (ValueError, ValidationError) as error:
            self.user = self.scope["user"]
            await self.refuse(protocol.INVALID, protocol.CLOSE_INVALID, _detail(error))
            return
        if not await self.open_socket():
            return
        try:
            sub = await self.subscribe(slug, after_seq=after)
        except ValidationError as error:
            await self.refuse(protocol.INVALID, protocol.CLOSE_INVALID, _detail(error))
            return
        except PermissionDenied as error:
            await self.refuse(protocol.FORBIDDEN, protocol.CLOSE_REMOVED, str(error))
            return
        except ObjectDoesNotExist:
            await self.refuse(protocol.NOT_FOUND, protocol.CLOSE_NOT_FOUND, "There is no such room.")
            return
        if sub is None or self.closed:
            return
        self.room = sub.room
        await self.opened()
        log_event("ws.connect", room=self.room, user=self.user, after=after, direct=self.direct is not None)

    def view_frame(self, sub, *, cseq, items, has_more, online, after, after_seq, request_id):
        welcome, shown = protocol.welcome_frame(
            room=sub.room, user=self.user, messages=items, has_more=has_more, online=online,
            last_read_seq=sub.last_read_seq, build=build_id(), resumed=after_seq is not None,
            max_bytes=settings.CHAT_MAX_FRAME_BYTES,
        )
        # The welcome may carry fewer messages than were read: live frames after its last one still come.
        sub.seen_seq = shown[-1].seq if shown else (after_seq or 0)
        # A fresh welcome is the room as of the snapshot; a resumed one holds new messages only.
        sub.cseq = cseq if after_seq is None else None
        return welcome

    def parse(self, text):
        frame = protocol.parse_client_frame(text, settings.CHAT_MAX_FRAME_BYTES)
        room = self.room.slug
        # v1 frames name no room: each is its v2 twin for the socket's one room.
        match frame:
            case protocol.Send():
                return frames.Send(room=room, body=frame.body, client_id=frame.client_id)
            case protocol.History():
                return frames.History(room=room, before=frame.before, after=frame.after, limit=frame.limit)
            case protocol.Edit():
                return frames.Edit(room=room, id=frame.id, body=frame.body)
            case protocol.Delete():
                return frames.Delete(room=room, id=frame.id)
            case protocol.Typing():
                return frames.Typing(room=room)
            case protocol.Read():
                return frames.Read(room=room, seq=frame.seq)
        return frames.Ping()

    async def send_error(
        self, code, detail, *, request_id=None, room=None, client_id=None, retry_after=None, until=None
    ):
        await self.send(text_data=protocol.error_frame(code, detail, client_id, retry_after, until))

    async def send_ack(self, frame, message=None):
        """Acknowledge nothing: v1 has no request ids."""

    async def send_message(self, sub, message):
        await self.send(text_data=protocol.message_frame(message))

    def history_frame(self, sub, frame, messages, has_more, following=None):
        return protocol.history_frame(
            messages, has_more, forward=frame.after is not None, max_bytes=settings.CHAT_MAX_FRAME_BYTES
        )

    async def on_follow(self, frame):
        sub = self.shown(frame.room)
        await db(threads.thread_follow)(room=sub.room, user=self.user, message_id=frame.id, follow=frame.follow)
        await self.send_ack(frame)

    async def on_ping(self, frame):
        await self.send(text_data=protocol.pong_frame())

    async def forward(self, sub, event):
        if event["kind"] != events.PRESENCE:
            return await super().forward(sub, event)
        # v1 has a frame per user who came or went, and none about the socket's own user.
        sent = None
        for kind, users in ((events.JOIN, event["data"]["online"]), (events.LEAVE, event["data"]["offline"])):
            for user in users:
                if user != self.user.username:
                    sent = await self.send_encoded(protocol.encode_event(kind, {"user": user}), None)
        return sent

    async def room_activity(self, event):
        """Ignore activity: v1 sockets watch no sidebar."""

    async def user_event(self, event):
        """Forward mentions; close with 4403 when the user was removed from the socket's room."""
        if self.held(self.user_event, event):
            return
        if event["kind"] == events.ROOM_REMOVED:
            if self.room is not None and event["data"]["room_id"] == self.room.pk:
                log_event("ws.removed", room=self.room, user=self.user)
                await self.close_with(protocol.CLOSE_REMOVED)
            return None
        return await self.send_encoded(*encoded(event, self.version, None))



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


def _names_only(presence, username):
    """Return whether a presence event's data names `username` and no one else."""
    # Lengths first: the event goes to every socket of the room, and most name others.
    online, offline = presence["online"], presence["offline"]
    return len(online) + len(offline) == 1 and username in (online or offline)
