"""The chat socket: authenticate, join the room, translate frames to services and back."""
import logging
import re
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError

from chat import protocol, selectors, services
from chat.broadcast import room_group

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):
    room = None

    async def connect(self):
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            await self.close()
            return
        try:
            after = _query_after(self.scope)
            self.room = await database_sync_to_async(services.room_open)(
                slug=self.scope["url_route"]["kwargs"]["slug"], user=self.user
            )
        except (ValueError, ValidationError, PermissionDenied):
            # Closing before accept refuses the handshake with HTTP 403.
            await self.close()
            return
        # Join before reading so that nothing committed in between is missed;
        # live frames already covered by the welcome are dropped in room_frame.
        await self.channel_layer.group_add(room_group(self.room.pk), self.channel_name)
        if after is None:
            messages, has_more = await database_sync_to_async(selectors.message_list)(room=self.room)
        else:
            messages, has_more = await database_sync_to_async(selectors.message_list)(
                room=self.room, after=after, limit=protocol.MAX_PAGE
            )
        self.seen_seq = messages[-1].seq if messages else (after or 0)
        await self.accept()
        await self.send(
            text_data=protocol.welcome_frame(room=self.room, user=self.user, messages=messages, has_more=has_more)
        )

    async def disconnect(self, code):
        if self.room is not None:
            await self.channel_layer.group_discard(room_group(self.room.pk), self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            frame = protocol.parse_client_frame(text_data)
        except protocol.ProtocolError as error:
            await self.send(text_data=protocol.error_frame(error.code, error.detail, error.client_id))
            return
        try:
            await self.handlers[type(frame)](self, frame)
        except DatabaseError:
            logger.exception("database error in room %s for user %s", self.room.slug, self.user.username)
            detail = "The server could not store or read that; nothing was saved. Try again."
            await self.send(text_data=protocol.error_frame(protocol.UNAVAILABLE, detail, getattr(frame, "client_id", None)))

    async def on_send(self, frame):
        message, created = await database_sync_to_async(services.message_create)(
            room=self.room, author=self.user, body=frame.body, client_id=frame.client_id
        )
        if not created:
            await self.send(text_data=protocol.message_frame(message))

    async def on_history(self, frame):
        messages, has_more = await database_sync_to_async(selectors.message_list)(
            room=self.room, before=frame.before, after=frame.after, limit=frame.limit
        )
        await self.send(text_data=protocol.history_frame(messages, has_more))

    handlers = {protocol.Send: on_send, protocol.History: on_history}

    async def room_frame(self, event):
        """Forward a room's encoded frame, skipping messages the welcome already carried."""
        if event.get("seq") is not None and event["seq"] <= self.seen_seq:
            return
        await self.send(text_data=event["text"])


def _query_after(scope):
    """Return the `after` seq of the socket URL or None; raise ValueError when malformed."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after")
    if not values:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", values[-1]):
        raise ValueError("'after' must be a non-negative integer.")
    return int(values[-1])
