"""The websocket wire format: parse and validate client frames, build server frames.

docs/protocol.md describes every frame here; keep the two in step.
"""
import json
import re
from dataclasses import dataclass

from chat.domain import events
from chat.domain.models import MAX_BODY_LENGTH, MAX_CLIENT_ID_LENGTH
from chat.domain.selectors import DEFAULT_PAGE, MAX_PAGE

VERSION = 1
MAX_FRAME_BYTES = 64 * 1024

INVALID = "invalid"
EMPTY = "empty"
TOO_LONG = "too_long"
UNAVAILABLE = "unavailable"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
RATE_LIMITED = "rate_limited"
MUTED = "muted"
TOO_MANY_SOCKETS = "too_many_sockets"
# Protocol v2 (chat/realtime/frames.py): a room-scoped request for a room the socket has not subscribed to,
# and a subscribe past frames.MAX_SUBSCRIPTIONS.
NOT_SUBSCRIBED = "not_subscribed"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"

# Close codes sent by the server: all in 4000-4999, because autobahn refuses
# an application's 1008, 1011 and 1012 (it raises, and the socket is lost).
# Retryable: reconnect after a jittered backoff and resume.
# The user went on sending past CHAT_FLOOD_FACTOR times a limit. It stands for 1008.
CLOSE_POLICY = 4008
# The server failed, or lost its broadcast link (the channel layer). They stand for 1011 and 1012.
CLOSE_SERVER_FAILED = 4011
CLOSE_LINK_LOST = 4012
# Too many handshakes at once, or from one address: back off and retry. It stands for 1013.
CLOSE_BUSY = 4013
# Final: the page must not reconnect.
# The socket URL is malformed (slug, ?after=).
CLOSE_INVALID = 4400
# Not logged in, or the login session ended.
CLOSE_SESSION_ENDED = 4401
# Not allowed in the room (private), or removed from it.
CLOSE_REMOVED = 4403
# No such room.
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429


class ProtocolError(Exception):
    """A client frame that breaks the protocol; answered with an error frame."""

    def __init__(self, code, detail, client_id=None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id
        # What the error frame echoes of a frame that did not parse (protocol v2: request_id, room, client_id).
        self.echo = {}


@dataclass(frozen=True)
class Send:
    body: str
    client_id: str | None = None


@dataclass(frozen=True)
class History:
    before: int | None = None
    after: int | None = None
    limit: int = DEFAULT_PAGE


@dataclass(frozen=True)
class Edit:
    id: int
    body: str


@dataclass(frozen=True)
class Delete:
    id: int


@dataclass(frozen=True)
class Typing:
    pass


@dataclass(frozen=True)
class Read:
    seq: int


@dataclass(frozen=True)
class Ping:
    pass


def _is_int(value):
    # bool is a subclass of int, but `true` is not a sequence number.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_text(value, field):
    """Refuse text the database cannot store: NUL bytes and lone surrogates."""
    if "\x00" in value:
        raise ProtocolError(INVALID, f"'{field}' must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(INVALID, f"'{field}' is not valid Unicode text.") from None


def parse_client_id(value):
    """Return a valid optional client id, or raise ProtocolError."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CLIENT_ID_LENGTH:
        raise ProtocolError(INVALID, f"'client_id' must be a string of 1 to {MAX_CLIENT_ID_LENGTH} characters.")
    _check_text(value, "client_id")
    return value


def parse_body(value):
    """Return a valid message body, or raise ProtocolError."""
    if not isinstance(value, str):
        raise ProtocolError(INVALID, "'body' must be a string.")
    if not value.strip():
        raise ProtocolError(EMPTY, "The message is empty.")
    if len(value) > MAX_BODY_LENGTH:
        raise ProtocolError(TOO_LONG, f"The message is longer than {MAX_BODY_LENGTH} characters.")
    _check_text(value, "body")
    return value


def parse_seq(value, field):
    """Return a valid sequence number (or id), or raise ProtocolError."""
    if not _is_int(value) or value < 0 or value > 2**63 - 1:
        raise ProtocolError(INVALID, f"'{field}' must be a non-negative integer.")
    return value


def _parse_send(data):
    client_id = parse_client_id(data.get("client_id"))
    try:
        return Send(body=parse_body(data.get("body")), client_id=client_id)
    except ProtocolError as error:
        # Let the page match the refusal to its local echo.
        error.client_id = client_id
        raise


def _parse_limit(data):
    limit = data.get("limit", DEFAULT_PAGE)
    if not _is_int(limit) or not 1 <= limit <= MAX_PAGE:
        raise ProtocolError(INVALID, f"'limit' must be an integer from 1 to {MAX_PAGE}.")
    return limit


def _parse_history(data):
    before, after = data.get("before"), data.get("after")
    if (before is None) == (after is None):
        raise ProtocolError(INVALID, "'history' needs exactly one of 'before' or 'after'.")
    limit = _parse_limit(data)
    if before is not None:
        return History(before=parse_seq(before, "before"), limit=limit)
    return History(after=parse_seq(after, "after"), limit=limit)


def _parse_edit(data):
    return Edit(id=parse_seq(data.get("id"), "id"), body=parse_body(data.get("body")))


def parse_history_query(query):
    """Return the History page a URL query asks for (?before= or ?after=, ?limit=), or raise ProtocolError."""
    data = {}
    for field in ("before", "after", "limit"):
        value = query.get(field)
        if value is None:
            continue
        if not re.fullmatch(r"[0-9]{1,19}", value):
            raise ProtocolError(INVALID, f"'{field}' must be a non-negative integer.")
        data[field] = int(value)
    if "before" not in data and "after" not in data:
        return History(limit=_parse_limit(data))  # the latest page
    return _parse_history(data)


PARSERS = {
    "send": _parse_send,
    "history": _parse_history,
    "edit": _parse_edit,
    "delete": lambda data: Delete(id=parse_seq(data.get("id"), "id")),
    "typing": lambda data: Typing(),
    "read": lambda data: Read(seq=parse_seq(data.get("seq"), "seq")),
    "ping": lambda data: Ping(),
}


def parse_client_frame(text, max_bytes=MAX_FRAME_BYTES):
    """Return the typed frame for one client text frame, or raise ProtocolError."""
    if text is None:
        raise ProtocolError(INVALID, "Frames must be JSON text, not binary.")
    # A character takes 1 to 4 bytes in UTF-8: encode only when the length is in doubt.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes):
        raise ProtocolError(TOO_LONG, f"Frames are limited to {max_bytes} bytes.")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(INVALID, "The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError(INVALID, "The frame must be a JSON object.")
    frame_type = data.get("type")
    parser = PARSERS.get(frame_type) if isinstance(frame_type, str) else None
    if parser is None:
        raise ProtocolError(INVALID, f"Unknown frame type {frame_type!r}.")
    return parser(data)


def encode(frame):
    """Return the JSON text of one server frame."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


# Every server frame, v1 (a dict built with "type" first) and v2 (msgspec writes the tag first), starts so.
_TYPE_PREFIX = '{"type":"'


def frame_type(text):
    """Return the `type` of a server frame's JSON text from its first member, or "other" (for the metrics)."""
    if not text or not text.startswith(_TYPE_PREFIX):
        return "other"
    end = text.find('"', len(_TYPE_PREFIX), 64)
    return text[len(_TYPE_PREFIX):end] if end > len(_TYPE_PREFIX) else "other"


# The wire form of a stored message is the domain's plain data of it.
message_data = events.message_data


def encode_event(kind, data):
    """Return the v1 frame of a domain event (chat.domain.events), or None when v1 has no such frame."""
    if kind == events.NOTIFICATION:
        # v1 notifies of mentions only; it has no field to say why.
        if data["reason"] != "mention":
            return None
        return encode({"type": kind, "room": data["room"], "message": data["message"]})
    if kind not in V1_EVENTS:
        return None
    if kind == events.MESSAGE and data["message"]["parent"] is not None and not data["message"]["also_in_room"]:
        return None  # version 1 shows a room's own messages: a reply kept in its thread is a hole it skips
    return encode({"type": kind, **data})


V1_EVENTS = {events.MESSAGE, events.MESSAGE_EDITED, events.MESSAGE_DELETED, events.TYPING, events.JOIN, events.LEAVE}


def fit(text, field, parts, *, keep, max_bytes):
    """Return (frame `text` with as many whole encoded `parts` as fit in `max_bytes` of UTF-8 in its empty list `field`, their indexes).

    The parts are oldest first; `keep` says which end of them stays when they
    do not all fit ("newest" for a page back in time, "oldest" for a page
    forward), and then the frame's `has_more` becomes true: the client asks for the rest.
    """
    # "true" is shorter than "false": the flag may flip within the budget.
    budget = max_bytes - len(text.encode("utf-8"))
    sizes = [len(part) if part.isascii() else len(part.encode("utf-8")) for part in parts]
    order = range(len(parts) - 1, -1, -1) if keep == "newest" else range(len(parts))
    chosen, cut = [], False
    for i in order:
        budget -= sizes[i] + 1
        if budget < 0:
            cut = True
            break
        chosen.append(i)
    chosen.sort()
    # Strings in JSON escape their quotes, so these patterns only match the frame's own fields.
    text = text.replace(f'"{field}":[]', f'"{field}":[{",".join(parts[i] for i in chosen)}]', 1)
    if cut:
        text = text.replace('"has_more":false', '"has_more":true', 1)
    return text, chosen


def _with_messages(head, messages, *, has_more, keep, max_bytes):
    """Return (the JSON text of frame `head` with as many whole `messages` as fit in `max_bytes`, those messages)."""
    text = encode({**head, "messages": [], "has_more": has_more})
    text, chosen = fit(text, "messages", [encode(message_data(m)) for m in messages], keep=keep, max_bytes=max_bytes)
    return text, [messages[i] for i in chosen]


def fit_names(names, max_bytes):
    """Return the first of the sorted `names` whose JSON fits in `max_bytes`."""
    # Nearly always they all fit: one encoding of the list, instead of one per name (a room of 1,000 online).
    if len(encode(names).encode("utf-8")) <= max_bytes:
        return list(names)
    fitted, size = [], 2
    for name in names:
        size += len(encode(name).encode("utf-8")) + 1
        if size > max_bytes:
            break
        fitted.append(name)
    return fitted


def welcome_frame(*, room, user, messages, has_more, online, last_read_seq, build, resumed,
                  max_bytes=MAX_FRAME_BYTES):
    """Return (the frame a socket receives when it opens, within `max_bytes`; the messages it carries).

    A resumed socket's messages are the oldest after its seq, a fresh one's the
    latest; the online list takes at most a quarter of the frame (`online_count` says how many).
    """
    online_shown = fit_names(online, max_bytes // 4)
    head = {
        "type": "welcome",
        "version": VERSION,
        "build": build,
        "room": {"slug": room.slug, "name": room.name, "private": room.is_private},
        "user": {"id": user.id, "username": user.username},
        "online": online_shown,
        "online_count": len(online),
        "last_read_seq": last_read_seq,
    }
    keep = "oldest" if resumed else "newest"
    return _with_messages(head, messages, has_more=has_more, keep=keep, max_bytes=max_bytes)


def message_frame(message):
    """Build the frame that carries one new message."""
    return encode({"type": "message", "message": message_data(message)})


def history_frame(messages, has_more, *, forward=False, max_bytes=MAX_FRAME_BYTES):
    """Build the answer to a history request within `max_bytes`: a page `forward` (after a seq) keeps its oldest."""
    text, _ = _with_messages(
        {"type": "history"}, messages, has_more=has_more, keep="oldest" if forward else "newest", max_bytes=max_bytes
    )
    return text


def pong_frame():
    """Build the answer to a client's ping."""
    return encode({"type": "pong"})


def error_frame(code, detail, client_id=None, retry_after=None, until=None):
    """Build an error frame, echoing the client id of the frame it answers."""
    frame = {"type": "error", "code": code, "detail": detail}
    for name, value in (("client_id", client_id), ("retry_after", retry_after), ("until", until)):
        if value is not None:
            frame[name] = value
    return encode(frame)
