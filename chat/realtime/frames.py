"""Protocol v2's frames, each defined once: the parser, the encoder and the JSON Schema all come from these types.

msgspec is the one library that gives all three from a plain class (a
tagged Struct per frame): a strict decoder that names the bad field, an
encoder several times faster than json, and a JSON Schema of the same
definitions, with nothing written twice. docs/protocol.md describes every
frame here; chat/tests/test_frames.py checks that it lists them all.
"""
import dataclasses
from typing import Annotated, Literal

import msgspec

from chat.domain import selectors
from chat.domain.models import (
    MAX_CLIENT_ID_LENGTH, MAX_EMOJI_LENGTH, MAX_MESSAGE_ATTACHMENTS, MAX_NAME_LENGTH, MAX_TOPIC_LENGTH, SLUG_PATTERN,
)
from chat.realtime import protocol
from chat.realtime.protocol import ProtocolError

VERSION = 2
# Subscriptions one socket may hold at once: a tab shows a few rooms, never hundreds.
MAX_SUBSCRIPTIONS = 50
MAX_REQUEST_ID_LENGTH = 64

Slug = Annotated[str, msgspec.Meta(pattern=SLUG_PATTERN, description="a room's slug")]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=protocol.MAX_PAGE)]
RequestId = str | int | None
Body = Annotated[str, msgspec.Meta(extra_json_schema={"minLength": 1, "maxLength": protocol.MAX_BODY_LENGTH})]
# A send's body, which may be empty when it carries attachments.
SendBody = Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": protocol.MAX_BODY_LENGTH})]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CLIENT_ID_LENGTH)] | None
Emoji = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_EMOJI_LENGTH, description="one Unicode emoji")]


class ClientFrame(msgspec.Struct, tag_field="type", kw_only=True):
    """A frame a client sends; any may carry a request_id, which every answer and error for it echoes."""

    request_id: RequestId = None

    def __post_init__(self):
        if isinstance(self.request_id, str) and not 1 <= len(self.request_id) <= MAX_REQUEST_ID_LENGTH:
            raise ProtocolError(protocol.INVALID, f"'request_id' must be 1 to {MAX_REQUEST_ID_LENGTH} characters.")


class Subscribe(ClientFrame, tag="subscribe"):
    room: Slug
    after: Seq | None = None  # a change number (cseq): replay every change since


class Unsubscribe(ClientFrame, tag="unsubscribe"):
    room: Slug


class Send(ClientFrame, tag="send"):
    room: Slug
    body: SendBody
    client_id: ClientId = None
    # A reply in the thread of this message id; also_in_room shows it in the room too.
    thread: Seq | None = None
    also_in_room: bool = False
    # Ids of the sender's own uploads to this room (POST /chat/<slug>/uploads/); with any, the body may be empty.
    attachments: Annotated[list[Seq], msgspec.Meta(max_length=MAX_MESSAGE_ATTACHMENTS)] = []

    def __post_init__(self):
        super().__post_init__()
        if self.client_id is not None:
            protocol.parse_client_id(self.client_id)
        try:
            if self.body.strip() or not self.attachments:
                protocol.parse_body(self.body)
        except ProtocolError as error:
            error.client_id = self.client_id
            raise


class History(ClientFrame, tag="history"):
    room: Slug
    before: Seq | None = None
    after: Seq | None = None
    limit: Limit = protocol.DEFAULT_PAGE
    thread: Seq | None = None  # the replies of this message's thread instead of the room's messages

    def __post_init__(self):
        super().__post_init__()
        if (self.before is None) == (self.after is None):
            raise ProtocolError(protocol.INVALID, "'history' needs exactly one of 'before' or 'after'.")


class Changes(ClientFrame, tag="changes"):
    room: Slug
    after: Seq
    limit: Limit = protocol.MAX_PAGE


class Edit(ClientFrame, tag="edit"):
    room: Slug
    id: Seq
    body: Body

    def __post_init__(self):
        super().__post_init__()
        protocol.parse_body(self.body)


class Delete(ClientFrame, tag="delete"):
    room: Slug
    id: Seq


class RoomUpdate(ClientFrame, tag="room_update"):
    room: Slug
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)] | None = None
    topic: Annotated[str, msgspec.Meta(max_length=MAX_TOPIC_LENGTH)] | None = None


class React(ClientFrame, tag="react"):
    room: Slug
    id: Seq
    emoji: Emoji


class Unreact(ClientFrame, tag="unreact"):
    room: Slug
    id: Seq
    emoji: Emoji


class Typing(ClientFrame, tag="typing"):
    room: Slug


class Read(ClientFrame, tag="read"):
    room: Slug
    seq: Seq


class Follow(ClientFrame, tag="follow"):
    room: Slug
    id: Seq
    follow: bool = True


class Report(ClientFrame, tag="report"):
    """A member's report of a message to staff (chat.domain.moderation)."""

    room: Slug
    id: Seq
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOPIC_LENGTH)]


class PreviewRemove(ClientFrame, tag="preview_remove"):
    room: Slug
    id: Seq
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=protocol.MAX_BODY_LENGTH)]


class Ping(ClientFrame, tag="ping"):
    pass


CLIENT_FRAMES = (
    Subscribe, Unsubscribe, Send, History, Changes, Edit, Delete, React, Unreact, RoomUpdate, Typing, Read, Follow,
    Report, PreviewRemove, Ping,
)


class _Echo(msgspec.Struct):
    """What an error names of a frame that did not parse: its request, room and client ids, when well formed."""

    request_id: msgspec.Raw = msgspec.Raw(b"null")
    room: msgspec.Raw = msgspec.Raw(b"null")
    client_id: msgspec.Raw = msgspec.Raw(b"null")


def _union(types):
    union = types[0]
    for kind in types[1:]:
        union = union | kind
    return union


_decoder = msgspec.json.Decoder(_union(CLIENT_FRAMES))


def parse(text, max_bytes=protocol.MAX_FRAME_BYTES):
    """Return the typed frame for one client text frame, or raise ProtocolError carrying what to echo."""
    if text is None:
        raise ProtocolError(protocol.INVALID, "Frames must be JSON text, not binary.")
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes):
        raise ProtocolError(protocol.TOO_LONG, f"Frames are limited to {max_bytes} bytes.")
    try:
        return _decoder.decode(text)
    except ProtocolError as error:
        error.echo = _echo(text)
        raise
    except msgspec.ValidationError as failure:
        detail = str(failure)
        if "missing required field `type`" in detail or "`$.type`" in detail:
            detail = "Unknown or missing frame type."
        error = ProtocolError(protocol.INVALID, detail)
        error.echo = _echo(text)
        raise error from None
    except (msgspec.DecodeError, RecursionError):
        raise ProtocolError(protocol.INVALID, "The frame is not valid JSON.") from None


def _echo(text):
    try:
        echo = msgspec.json.decode(text, type=_Echo)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return {}
    found = {}
    for field, kind in (("request_id", RequestId), ("room", Slug), ("client_id", ClientId)):
        try:
            value = msgspec.json.decode(getattr(echo, field), type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if value is not None and not (isinstance(value, str) and not 1 <= len(value) <= MAX_REQUEST_ID_LENGTH):
            found[field] = value
    return found


# Server frames. Room-scoped ones name their room by slug.

class Reactions(msgspec.Struct):
    """One emoji on a message: how many reacted with it, and the first of them by name."""

    emoji: str
    count: int
    users: list[str]


class Attachment(msgspec.Struct):
    """A file in a message; width, height and thumbnail_url for images only (docs/protocol.md, Attachment object)."""

    id: int
    name: str
    size: int
    content_type: str
    width: int | None
    height: int | None
    url: str
    thumbnail_url: str | None


class Preview(msgspec.Struct):
    """The preview of one of a message's links, as the server fetched it; image is the thumbnail's URL on this site."""

    url: str
    title: str
    description: str
    image: str | None


class Message(msgspec.Struct):
    """A stored message, as every frame carries it (docs/protocol.md, Message object)."""

    id: int
    seq: int
    cseq: int
    room: str
    author: str
    body: str
    html: str
    created_at: str
    edited_at: str | None
    client_id: str | None
    reactions: list[Reactions]
    previews: list[Preview]
    # The thread this message is a reply in (its parent's id), or None; also_in_room: a reply shown in the room too.
    parent: int | None
    also_in_room: bool
    # A parent's thread: how many replies, and when the last came.
    reply_count: int
    last_reply_at: str | None
    attachments: list[Attachment]


class Deleted(msgspec.Struct, tag_field="type", tag="message_deleted"):
    """A message that was deleted: the client drops it."""

    id: int
    seq: int
    cseq: int


class Upsert(msgspec.Struct, tag_field="type", tag="message"):
    """A message as it is now (new or edited): the client adds it or replaces its copy."""

    message: Message


class RoomChange(msgspec.Struct, tag_field="type", tag="room_changed"):
    """The room's name, topic and archived state as they are now: the client shows them."""

    name: str
    topic: str
    archived: bool
    cseq: int


Change = Upsert | Deleted | RoomChange


class User(msgspec.Struct):
    id: int
    username: str


class RoomSummary(msgspec.Struct):
    """One of the user's rooms in the sidebar."""

    room: str
    title: str
    private: bool
    direct: bool
    unread: int
    last_seq: int
    last_message_at: str | None


class ServerFrame(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """A frame the server sends."""


class Hello(ServerFrame, tag="hello"):
    version: int
    build: str
    user: User
    rooms: list[RoomSummary]
    rooms_count: int


class Subscribed(ServerFrame, tag="subscribed"):
    room: str
    name: str
    topic: str
    private: bool
    direct: bool
    archived: bool
    online: list[str]
    online_count: int
    last_read_seq: int
    # The change number this view is current to: subscribe again or ask `changes` after it.
    cseq: int
    resumed: bool
    # A fresh view: the latest messages. A resumed one: every change since `after`.
    messages: list[Message]
    changes: list[Change]
    has_more: bool
    request_id: RequestId = None
    # When the user's mute in the room ends; absent when they may send.
    muted_until: str | None = None


class Unsubscribed(ServerFrame, tag="unsubscribed"):
    room: str
    reason: Literal["requested", "removed"]
    request_id: RequestId = None


class _RoomMessage(ServerFrame):
    room: str
    message: Message


class MessageNew(_RoomMessage, tag="message"):
    """A new message."""


class MessageEdited(_RoomMessage, tag="message_edited"):
    """A message whose author changed it."""


class _MessageChange(ServerFrame):
    room: str
    id: int
    seq: int
    cseq: int


class MessageReactions(_MessageChange, tag="message_reactions"):
    """A message whose reactions changed: the whole new summary."""

    reactions: list[Reactions]


class MessagePreviews(_MessageChange, tag="message_previews"):
    """A message whose link previews changed (fetched, or removed by its author): the whole new list."""

    previews: list[Preview]


class MessageDeleted(_MessageChange, tag="message_deleted"):
    """A message that was deleted."""


class RoomChanged(ServerFrame, tag="room_changed"):
    """The room's name, topic or archived state changed: all three as they are now."""

    room: str
    name: str
    topic: str
    archived: bool
    cseq: int


class _RoomUser(ServerFrame):
    room: str
    user: str


class TypingNotice(_RoomUser, tag="typing"):
    """A user is typing in the room."""


class Presence(ServerFrame, tag="presence"):
    """Users who came online in the room (a first subscription began) or went offline (their last one ended)."""

    room: str
    online: list[str]
    offline: list[str]


class HistoryPage(ServerFrame, tag="history"):
    room: str
    messages: list[Message]
    has_more: bool
    request_id: RequestId = None
    thread: int | None = None
    following: bool | None = None  # with thread: whether the user is told of its new replies


class ChangesPage(ServerFrame, tag="changes"):
    room: str
    # Before the changes, so that fit_changes finds the frame's own cseq first.
    cseq: int
    changes: list[Change]
    has_more: bool
    request_id: RequestId = None


class Notification(ServerFrame, tag="notification"):
    room: str
    reason: Literal["mention", "direct", "thread"]
    message: Message


class RoomActivity(ServerFrame, tag="room_activity"):
    """A new message in one of the user's rooms: enough for the sidebar, not the message."""

    room: str
    seq: int
    author: str
    last_message_at: str | None


class RoomRead(ServerFrame, tag="room_read"):
    room: str
    last_read_seq: int
    unread: int


class RoomAdded(ServerFrame, tag="room_added"):
    room: RoomSummary
    # Who added the user to a private room; absent when they joined or created it themselves.
    added_by: str | None = None


class RoomRemoved(ServerFrame, tag="room_removed"):
    room: str


class RoomMuted(ServerFrame, tag="room_muted"):
    room: str
    # When the mute ends; null: it was lifted.
    until: str | None


class Error(ServerFrame, tag="error"):
    code: str
    detail: str
    request_id: RequestId = None
    room: str | None = None
    client_id: str | None = None
    retry_after: float | None = None
    # `muted`: when the mute ends.
    until: str | None = None


class Ack(ServerFrame, tag="ack"):
    """The answer to a request that carried a request_id and has no other answer: it is done."""

    request_id: RequestId
    room: str | None = None
    # A send's stored message (its live `message` frame follows or came already).
    id: int | None = None
    seq: int | None = None
    cseq: int | None = None


class Pong(ServerFrame, tag="pong"):
    request_id: RequestId = None


SERVER_FRAMES = (
    Hello, Subscribed, Unsubscribed, MessageNew, MessageEdited, MessageDeleted, MessageReactions, MessagePreviews,
    RoomChanged, TypingNotice, Presence, HistoryPage, ChangesPage, Notification, RoomActivity, RoomRead, RoomAdded,
    RoomRemoved, RoomMuted, Ack, Error, Pong,
)
_server_frame = _union(SERVER_FRAMES)

_encoder = msgspec.json.Encoder()


def encode(frame):
    """Return the JSON text of one server frame."""
    return _encoder.encode(frame).decode()


def encode_event(kind, slug, data):
    """Return the v2 frame of a domain event (chat.domain.events); `slug` names the room of a room event, None for a user's."""
    frame = {"type": kind, **data}
    if slug is not None:
        frame["room"] = slug
    return encode(msgspec.convert(frame, _server_frame))


def encode_parts(items):
    """Return each of `items` (plain data) as JSON text, for a frame's list that protocol.fit fills."""
    return [_encoder.encode(item).decode() for item in items]


def change_data(message):
    """Return a message's latest change as a change-feed entry: the message as it is now, or its deletion.

    A selectors.RoomChange among them is the room's name and topic.
    """
    if isinstance(message, selectors.RoomChange):
        return {"type": "room_changed", **dataclasses.asdict(message)}
    if message.is_deleted:
        return {"type": "message_deleted", "id": message.id, "seq": message.seq, "cseq": message.cseq}
    return {"type": "message", "message": protocol.message_data(message)}


def fit_changes(text, changes, *, cseq, after, has_more, max_bytes):
    """Return (frame `text` with as many of `changes` as fit, the cseq the frame is then current to).

    `text` is encoded with `cseq`, the highest it can be current to (a
    snapshot's, or the last change's), ahead of its empty `changes` list: the
    frame says the lower cseq of its last change instead when it is cut short.
    """
    parts = encode_parts(map(change_data, changes))
    text, shown = protocol.fit(text, "changes", parts, keep="oldest", max_bytes=max_bytes)
    if len(shown) == len(changes) and not has_more:
        return text, cseq
    covered = changes[shown[-1]].cseq if shown else after
    # A number no longer than the one it replaces: the frame stays within max_bytes.
    return text.replace(f'"cseq":{cseq},', f'"cseq":{covered},', 1), covered


def schema():
    """Return the JSON Schema of every client and server frame."""
    (client, server), definitions = msgspec.json.schema_components(
        [_union(CLIENT_FRAMES), _union(SERVER_FRAMES)], ref_template="#/$defs/{name}"
    )
    return {"$defs": definitions, "client": client, "server": server}


def tag(frame_type):
    """Return the `type` a frame class is sent with."""
    return frame_type.__struct_config__.tag
