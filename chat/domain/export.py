"""Export the chat as JSON lines and import them into an empty database, both streaming (docs/export.md).

An export is one snapshot of the database, read a chunk at a time; an import
stores all of a file or, at its first bad line, nothing.
"""
import contextlib
import datetime
import json
from itertools import islice

from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from chat.domain.models import Attachment, Membership, Message, Reaction, Room, ThreadFollow
from chat.platform.dbconnections import read_snapshot

FORMAT = "chat-export"
VERSION = 3
# Rows per database round trip while exporting: few round trips, little held at once.
CHUNK_SIZE = 2000
# Rows the import holds before it stores them, one bulk insert per table.
BATCH_SIZE = 2000


class InvalidLine(ValueError):
    """A line of an export that cannot be imported; the import then stores nothing."""

    def __init__(self, number, problem, *, last=None):
        where = f"line {number}" if last in (None, number) else f"lines {number} to {last}"
        super().__init__(f"{where}: {problem}")
        self.number = number


class ImportRefused(Exception):
    """The database has rooms or messages already: an import goes only into an empty one."""


def _count(value):
    if type(value) is not int or value < 0:
        raise ValueError("a whole number, 0 or more")
    return value


def _identifier(value):
    if type(value) is not int or value < 1:
        raise ValueError("a whole number above 0")
    return value


def _boolean(value):
    if type(value) is not bool:
        raise ValueError("true or false")
    return value


def _string(value):
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _moment(value):
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None or moment.tzinfo is None:
        raise ValueError("a date and time with its UTC offset")
    return moment


def _summary(value):
    if value is not None and not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
        raise ValueError("a list of reaction objects, or null")
    return value


def _nullable(read):
    return lambda value: None if value is None else read(value)


# Each line type's fields in the order they are written: (key, the ORM path it is read from, its reader).
# Users, rooms and messages keep their ids, which leave the database: a direct room's slug holds its users' ids
# (dm-3-7), an invite link its room's, and a page open across a restore edits and reacts by message id.
FIELDS = {
    "user": (
        ("id", "id", _identifier), ("username", "username", _string), ("password", "password", _string),
        ("email", "email", _string), ("first_name", "first_name", _string), ("last_name", "last_name", _string),
        ("is_active", "is_active", _boolean), ("is_staff", "is_staff", _boolean),
        ("is_superuser", "is_superuser", _boolean), ("date_joined", "date_joined", _moment),
        ("last_login", "last_login", _nullable(_moment)),
    ),
    "room": (
        ("id", "id", _identifier), ("slug", "slug", _string), ("name", "name", _string),
        ("is_private", "is_private", _boolean), ("is_direct", "is_direct", _boolean),
        ("created_by", "created_by__username", _nullable(_string)), ("created_at", "created_at", _moment),
        ("last_seq", "last_seq", _count), ("last_cseq", "last_cseq", _count),
        ("last_message_at", "last_message_at", _nullable(_moment)), ("topic", "topic", _string),
        ("changed_cseq", "changed_cseq", _count), ("archived_at", "archived_at", _nullable(_moment)),
        ("invite_key", "invite_key", _string),
    ),
    "membership": (
        ("room", "room__slug", _string), ("user", "user__username", _string),
        ("joined_at", "joined_at", _moment), ("last_read_seq", "last_read_seq", _count),
    ),
    "message": (
        ("id", "id", _identifier), ("room", "room__slug", _string), ("seq", "seq", _count), ("cseq", "cseq", _count),
        ("author", "author__username", _string), ("body", "body", _string), ("created_at", "created_at", _moment),
        ("edited_at", "edited_at", _nullable(_moment)), ("client_id", "client_id", _nullable(_string)),
        ("is_deleted", "is_deleted", _boolean), ("reactions", "reactions", _summary),
        # A reply names its thread's parent by seq (in the same room, and always lower: it came first).
        ("parent", "parent__seq", _nullable(_count)), ("also_in_room", "also_in_room", _boolean),
        ("reply_count", "reply_count", _count), ("last_reply_at", "last_reply_at", _nullable(_moment)),
        ("attachments", "attachments", _summary),
    ),
    "reaction": (
        ("room", "message__room__slug", _string), ("seq", "message__seq", _count),
        ("user", "user__username", _string), ("emoji", "emoji", _string), ("created_at", "created_at", _moment),
    ),
    "follow": (
        ("room", "message__room__slug", _string), ("seq", "message__seq", _count), ("user", "user__username", _string),
    ),
    # A sent file: where the storage holds it, never its bytes (the storage is backed up on its own).
    "attachment": (
        ("id", "id", _identifier), ("room", "message__room__slug", _string), ("seq", "message__seq", _count),
        ("uploader", "uploader__username", _string), ("name", "name", _string),
        ("content_type", "content_type", _string), ("size", "size", _count), ("path", "path", _string),
        ("width", "width", _nullable(_count)), ("height", "height", _nullable(_count)),
        ("thumbnail_path", "thumbnail_path", _string), ("created_at", "created_at", _moment),
    ),
}
# The rows that hang on one message, written after its line: (type, model, order).
MESSAGE_ROWS = (
    ("reaction", Reaction, ("message_id", "created_at", "id")), ("follow", ThreadFollow, ("message_id", "id")),
    ("attachment", Attachment, ("message_id", "id")),
)


def export_lines(*, chunk_size=CHUNK_SIZE):
    """Yield the database as lines of JSON, each ending in a newline, from one snapshot read a chunk at a time."""
    counts = dict.fromkeys(FIELDS, 0)
    with read_snapshot():
        yield _encode({"type": "format", "format": FORMAT, "version": VERSION})
        tables = {
            "user": get_user_model().objects.order_by("id"),
            "room": Room.objects.order_by("id"),
            "membership": Membership.objects.order_by("room_id", "user_id"),
        }
        for kind, queryset in tables.items():
            for values in _values(queryset, kind).iterator(chunk_size=chunk_size):
                counts[kind] += 1
                yield _line(kind, values)
        messages = _values(Message.objects.order_by("room_id", "seq"), "message").iterator(chunk_size=chunk_size)
        while chunk := list(islice(messages, chunk_size)):
            # One query per type for a chunk, so that each reaction and follow line follows its message's.
            hanging = {}
            for kind, model, order in MESSAGE_ROWS:
                of_chunk = model.objects.filter(message_id__in=[message["id"] for message in chunk]).order_by(*order)
                for values in _values(of_chunk, kind, "message_id"):
                    hanging.setdefault(values["message_id"], []).append((kind, values))
            for message in chunk:
                counts["message"] += 1
                yield _line("message", message)
                for kind, values in hanging.get(message["id"], ()):
                    counts[kind] += 1
                    yield _line(kind, values)
        yield _encode({"type": "end", "counts": counts})


def counts_text(counts):
    """Return the count of each type, as the commands report them."""
    return ", ".join(f"{kind}s: {count}" for kind, count in counts.items())


def _values(queryset, kind, *extra):
    return queryset.values(*extra, *(path for _, path, _ in FIELDS[kind]))


def _line(kind, values):
    line = {"type": kind}
    for key, path, _ in FIELDS[kind]:
        value = values[path]
        line[key] = value.isoformat() if isinstance(value, datetime.datetime) else value
    return _encode(line)


def _encode(line):
    # ASCII (other characters escaped) reaches any stdout, pipe or terminal unchanged.
    return json.dumps(line, separators=(",", ":")) + "\n"


def import_lines(lines, *, batch_size=BATCH_SIZE):
    """Store an export's lines (str or bytes) in a database without rooms or messages; return the count per type."""
    with transaction.atomic(), _timestamps_as_given():
        if Room.objects.exists() or Message.objects.exists():
            raise ImportRefused(
                "The database has rooms or messages already: chat_import loads only into an empty one."
            )
        loader = _Loader(batch_size)
        for number, text in enumerate(lines, 1):
            loader.take(number, text)
        loader.finish()
    return loader.counts


@contextlib.contextmanager
def _timestamps_as_given():
    """Insert the creation times the lines give, instead of the time of the import."""
    # auto_now_add replaces any given value on insert, bulk_create's included, and an update afterwards would
    # write every row twice. Nothing else in this process inserts these rows meanwhile: the import runs alone.
    fields = [
        field for model in (Room, Membership, Message, Reaction, Attachment) for field in model._meta.concrete_fields
        if getattr(field, "auto_now_add", False)
    ]
    for field in fields:
        field.auto_now_add = False
    try:
        yield
    finally:
        for field in fields:
            field.auto_now_add = True


class _Loader:
    """Check each line of an export and store its rows in batches, in the order their references need."""

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.counts = dict.fromkeys(FIELDS, 0)
        self.pending = {kind: [] for kind in FIELDS}
        self.held = 0
        # Held in memory for the whole import: the users and rooms (with the last seq seen in each), never messages.
        self.users = {}
        self.user_ids = set()
        self.rooms = {}
        self.seqs = {}
        # The ids of the held messages, and of the last one stored, by (room id, seq): what reaction lines name.
        self.messages = {}
        self.number = 0
        self.first_held = 2  # the format line holds no row
        self.ended = False
        self.take_kind = {
            "user": self._user, "room": self._room, "membership": self._membership,
            "message": self._message, "reaction": self._reaction, "follow": self._follow,
            "attachment": self._attachment,
        }

    def take(self, number, text):
        """Check one line and hold its row; store the rows held once there are a batch of them."""
        self.number = number
        try:
            line = json.loads(text)
        except ValueError as error:
            raise InvalidLine(number, f"not JSON ({error})") from None
        if not isinstance(line, dict):
            raise InvalidLine(number, "not a JSON object")
        kind = line.get("type")
        if self.ended:
            raise InvalidLine(number, "a line after the end line")
        if number == 1 or kind == "format":
            self._format(number, line)
        elif kind == "end":
            self._end(number, line)
        elif kind in self.take_kind:
            self.take_kind[kind](number, self._read(number, kind, line))
            self.counts[kind] += 1
            self.held += 1
            if self.held >= self.batch_size:
                self._store()
        else:
            known = ", ".join(["format", *FIELDS, "end"])
            raise InvalidLine(number, f"unknown type {kind!r} (this chat_import reads {known})")

    def finish(self):
        """Store what is held, once the end line has been read; reset the id sequences past the kept ids."""
        if self.number == 0:
            raise InvalidLine(1, "the file is empty")
        if not self.ended:
            raise InvalidLine(self.number + 1, "the file ends before its end line: it was cut short")
        self._store()
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), [get_user_model(), Room, Message, Attachment]):
                cursor.execute(statement)

    def _format(self, number, line):
        if number != 1:
            raise InvalidLine(number, "a second format line")
        if line.get("type") != "format" or line.get("format") != FORMAT:
            raise InvalidLine(number, f'not a chat export: its first line is not {{"type": "format", "format": "{FORMAT}"}}')
        if type(line.get("version")) is not int or line["version"] != VERSION:
            raise InvalidLine(number, f"format version {line.get('version')!r}: this chat_import reads version {VERSION}")

    def _end(self, number, line):
        if line.get("counts") != self.counts:
            raise InvalidLine(number, f"the end line counts {line.get('counts')}, the lines before it hold {self.counts}")
        self.ended = True

    def _read(self, number, kind, line):
        """Return a line's values, read and checked; InvalidLine for a missing, unknown or ill-typed field."""
        unknown = sorted(set(line) - {"type"} - {key for key, _, _ in FIELDS[kind]})
        if unknown:
            raise InvalidLine(number, f"unknown field {unknown[0]!r} in a {kind} line")
        values = {}
        for key, _, read in FIELDS[kind]:
            if key not in line:
                raise InvalidLine(number, f"a {kind} line needs {key!r}")
            try:
                values[key] = read(line[key])
            except ValueError as error:
                raise InvalidLine(number, f"{key!r} must be {error}, not {json.dumps(line[key])[:60]}") from None
        return values

    def _user_id(self, number, username):
        if username not in self.users:
            raise InvalidLine(number, f"unknown user {username!r} (no user line before this one names it)")
        return self.users[username]

    def _room_of(self, number, slug):
        if slug not in self.rooms:
            raise InvalidLine(number, f"unknown room {slug!r} (no room line before this one names it)")
        return self.rooms[slug]

    def _user(self, number, values):
        User = get_user_model()
        username, pk = values["username"], values["id"]
        if username in self.users or pk in self.user_ids:
            raise InvalidLine(number, f"user {username!r} or id {pk} comes twice")
        taken = User.objects.filter(Q(pk=pk) | Q(username=username)).values_list("username", flat=True).first()
        if taken is not None:
            raise InvalidLine(number, f"user {username!r} (id {pk}) clashes with the database's user {taken!r}")
        self.users[username] = pk
        self.user_ids.add(pk)
        self.pending["user"].append(User(**values))

    def _room(self, number, values):
        if values["slug"] in self.rooms or values["id"] in self.seqs:
            raise InvalidLine(number, f"room {values['slug']!r} or id {values['id']} comes twice")
        creator = values.pop("created_by")
        room = Room(**values, created_by_id=None if creator is None else self._user_id(number, creator))
        self.rooms[room.slug] = room
        self.seqs[room.pk] = 0
        self.pending["room"].append(room)

    def _membership(self, number, values):
        room = self._room_of(number, values.pop("room"))
        if values["last_read_seq"] > room.last_seq:
            raise InvalidLine(number, f"last_read_seq {values['last_read_seq']} is past the room's last_seq")
        user_id = self._user_id(number, values.pop("user"))
        self.pending["membership"].append(Membership(**values, room_id=room.pk, user_id=user_id))

    def _message(self, number, values):
        room = self._room_of(number, values.pop("room"))
        seq, cseq = values["seq"], values["cseq"]
        if not self.seqs[room.pk] < seq <= room.last_seq:
            raise InvalidLine(number, f"seq {seq} is not between the room's previous message ({self.seqs[room.pk]})"
                                      f" and its last_seq ({room.last_seq})")
        if not 0 < cseq <= room.last_cseq:
            raise InvalidLine(number, f"cseq {cseq} is not between 1 and the room's last_cseq ({room.last_cseq})")
        self.seqs[room.pk] = seq
        author_id = self._user_id(number, values.pop("author"))
        parent_seq = values.pop("parent")
        parent_id = None if parent_seq is None else self._message_id(number, room, parent_seq, "a reply in the thread of")
        message = Message(**values, room_id=room.pk, author_id=author_id, parent_id=parent_id)
        self.messages[room.pk, seq] = message.pk
        self.pending["message"].append(message)

    def _message_id(self, number, room, seq, what):
        message_id = self.messages.get((room.pk, seq))
        if message_id is None:
            # Stored by an earlier batch: found through the room and seq index.
            message_id = Message.objects.filter(room_id=room.pk, seq=seq).values_list("pk", flat=True).first()
        if message_id is None:
            raise InvalidLine(number, f"{what} {room.slug}#{seq}, which no message line before it holds")
        return message_id

    def _reaction(self, number, values):
        room = self._room_of(number, values.pop("room"))
        message_id = self._message_id(number, room, values.pop("seq"), "a reaction to")
        user_id = self._user_id(number, values.pop("user"))
        self.pending["reaction"].append(Reaction(**values, message_id=message_id, user_id=user_id))

    def _follow(self, number, values):
        room = self._room_of(number, values.pop("room"))
        message_id = self._message_id(number, room, values.pop("seq"), "a follow of")
        user_id = self._user_id(number, values.pop("user"))
        self.pending["follow"].append(ThreadFollow(message_id=message_id, user_id=user_id))

    def _attachment(self, number, values):
        room = self._room_of(number, values.pop("room"))
        message_id = self._message_id(number, room, values.pop("seq"), "a file of")
        uploader_id = self._user_id(number, values.pop("uploader"))
        self.pending["attachment"].append(
            Attachment(**values, room_id=room.pk, message_id=message_id, uploader_id=uploader_id)
        )

    def _store(self):
        """Insert the rows held, table by table in the order of their references; InvalidLine if one is refused."""
        try:
            with transaction.atomic():
                for rows in self.pending.values():
                    if rows:
                        type(rows[0]).objects.bulk_create(rows)
        except DatabaseError as error:
            raise InvalidLine(self.first_held, f"the database refused a row of these: {error}", last=self.number) from None
        last = next(reversed(self.messages), None)
        self.messages = {} if last is None else {last: self.messages[last]}
        self.pending = {kind: [] for kind in FIELDS}
        self.held = 0
        self.first_held = self.number + 1
