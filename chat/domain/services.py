"""Writes: every change to rooms, members and messages, each broadcast after it commits.

Each function checks access and input, writes, and sends the resulting frames.
Refusals raise PermissionDenied (not allowed), ObjectDoesNotExist (no such
thing for this user), ValidationError (bad input) or LimitExceeded (too
often); nothing is changed then.
"""
import contextlib
import re

import emoji as emoji_data
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.db.models.functions import Lower, Now
from django.utils import timezone

from chat.domain import attachments, events, selectors, sequences
from chat.domain.sequences import Muted, RoomArchived  # noqa: F401 (refusals are named from here)
from chat.domain.mentions import mentioned_members, mentioned_usernames
from chat.domain.models import (
    MAX_NAME_LENGTH, MAX_TOPIC_LENGTH, Membership, Message, Mute, Reaction, Room, validate_room_slug,
)
from chat.platform.limits import Limit
from chat.platform.prepared import ID, TEXT, Prepared

DIRECT_SLUG = re.compile(r"dm-[0-9]+-[0-9]+")


@transaction.atomic
def room_create(*, slug, user, name=None, private=False):
    """Create the room `slug` with `user` as its first member; a room that exists already is joined, as by room_join."""
    validate_room_slug(slug)
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        if DIRECT_SLUG.fullmatch(slug):
            raise ValidationError("Names like dm-1-2 are kept for direct messages.", code="reserved")
        Limit.from_setting("room_creation").check(f"user:{user.pk}", "You have created too many rooms lately.")
        room, created = Room.objects.get_or_create(
            slug=slug, defaults={"name": name or slug, "created_by": user, "is_private": private}
        )
        if created:
            events.room_added(user, room)
            return room, Membership.objects.create(room=room, user=user)
    return _room_join(room, user)


# Compiled once (chat.platform.prepared): a room_join is paid by every socket's subscribe.
_MUTE_UNTIL = Mute.objects.filter(room=OuterRef("room_id"), user=OuterRef("user_id"), until__gt=Now()).values("until")
_MEMBERSHIP_WITH_MUTE = Prepared(lambda slug, user_id: Membership.objects.filter(room__slug=slug, user_id=user_id)
                                 .select_related("room").annotate(muted_until=Subquery(_MUTE_UNTIL[:1]))[:1],
                                 slug=TEXT, user_id=ID)


def room_join(*, slug, user):
    """Return (room, membership) of an existing room, making `user` a member of it when it is public.

    The membership's `muted_until` says when the user's mute in the room ends (None: they may send).
    """
    validate_room_slug(slug)
    # Every reconnect joins again: a member costs one read (their mute read with it), and no write transaction
    # (SQLite's lock).
    for membership in _MEMBERSHIP_WITH_MUTE(slug=slug, user_id=user.pk):
        return membership.room, membership
    with transaction.atomic():
        room, membership = _room_join(Room.objects.get(slug=slug), user)
    # A mute outlives a membership: a muted user who left and came back is muted still.
    membership.muted_until = sequences.mute_until(room_id=room.pk, user_id=user.pk)
    return room, membership


def _room_join(room, user):
    if room.is_private:
        membership = Membership.objects.filter(room=room, user=user).first()
        if membership is None:
            raise PermissionDenied("This room is private.")
        return room, membership
    membership, created = Membership.objects.get_or_create(room=room, user=user)
    if created:
        membership_announce(user, room)
    return room, membership


def membership_announce(user, room, *, added_by=None):
    """Tell a new member's sockets that the room joined their sidebar, with what they have not read of it."""
    # An archived room stays out of room lists, so a member who joins it has nothing to add to theirs.
    if not room.is_archived:
        unread = selectors.room_unread_count(room=room, user=user, after=0)
        events.room_added(user, room, unread=unread, added_by=added_by)


def room_open(*, slug, user, name=None, private=False):
    """Create or join a room, as room_create does; kept for callers not yet moved to room_create or room_join."""
    return room_create(slug=slug, user=user, name=name, private=private)


@transaction.atomic
def room_open_direct(*, user, username):
    """Return the private two-person room of `user` and `username`, creating it once."""
    other = get_user_model().objects.get(username=username, is_active=True)
    low, high = sorted([user, other], key=lambda u: u.pk)
    room, created = Room.objects.get_or_create(
        slug=selectors.direct_slug(low, high),
        defaults={"name": f"{low.username} & {high.username}", "is_private": True, "is_direct": True},
    )
    for member in {low, high}:
        if Membership.objects.get_or_create(room=room, user=member)[1]:
            events.room_added(member, room)
    return room


def room_slug_from_name(name):
    """Return the slug a typed room name opens, or raise ValidationError."""
    slug = "-".join(name.strip().lower().split())
    validate_room_slug(slug)
    return slug


def room_creator_check(room, actor, what="members"):
    """Raise PermissionDenied unless `room` is private (not a DM) and `actor` created it: only they manage its `what`."""
    if not room.is_private or room.is_direct:
        raise PermissionDenied(f"Only private rooms have {what} to manage.")
    if room.created_by_id != actor.pk:
        raise PermissionDenied(f"Only the room's creator manages its {what}.")


@transaction.atomic
def membership_add(*, room, actor, username):
    """Add the user named `username` to a private room; only its creator may."""
    room_creator_check(room, actor)
    user = get_user_model().objects.get(username=username, is_active=True)
    membership, created = Membership.objects.get_or_create(room=room, user=user)
    if created:
        membership_announce(user, room, added_by=actor)
    return membership


@transaction.atomic
def membership_remove(*, room, actor, username):
    """Remove a member from a private room and close their sockets to it; only its creator may."""
    room_creator_check(room, actor)
    membership = Membership.objects.select_related("user").get(room=room, user__username=username)
    if membership.user_id == room.created_by_id:
        raise PermissionDenied("The creator cannot be removed from their room.")
    membership.delete()
    events.room_removed(membership.user_id, room)


@transaction.atomic
def room_update(*, room, actor, name=None, topic=None):
    """Rename a room or set its topic; members may in a public room, only its creator in a private one."""
    if room.is_direct:
        raise ValidationError("A direct message has no name or topic to change.", code="direct")
    if room.is_private and room.created_by_id != actor.pk:
        raise PermissionDenied("Only the room's creator may change it.")
    _check_member(room, actor, "Only members of the room may change it.")
    changes = {}
    if name is not None:
        changes["name"] = _one_line(name, "name", MAX_NAME_LENGTH, required=True)
    if topic is not None:
        changes["topic"] = _one_line(topic, "topic", MAX_TOPIC_LENGTH, required=False)
    room = Room.objects.select_for_update().get(pk=room.pk)
    if all(getattr(room, field) == value for field, value in changes.items()):
        return room
    for field, value in changes.items():
        setattr(room, field, value)
    room.changed_cseq = sequences.next_cseq(room.pk)
    room.save(update_fields=[*changes, "changed_cseq"])
    events.room_changed(room)
    return room


@transaction.atomic
def room_archive(*, room, actor, archived=True):
    """Archive a room (read-only, out of room lists) or unarchive it; its creator or staff may, never in a DM."""
    if room.is_direct:
        raise ValidationError("A direct message cannot be archived.", code="direct")
    if room.created_by_id != actor.pk and not actor.is_staff:
        raise PermissionDenied("Only the room's creator or staff may archive it.")
    room = Room.objects.select_for_update().get(pk=room.pk)
    if room.is_archived == archived:
        return room
    room.archived_at = timezone.now() if archived else None
    room.changed_cseq = sequences.next_cseq(room.pk, archived=True)
    room.save(update_fields=["archived_at", "changed_cseq"])
    events.room_changed(room)
    if not archived:
        # Room lists left it out while archived: it comes back to each member's as a room added.
        for membership in room.memberships.select_related("user"):
            events.room_added(membership.user, room)
    return room


def _check_member(room, user, refusal):
    if not Membership.objects.filter(room=room, user=user).exists():
        raise PermissionDenied(refusal)


def _one_line(value, field, max_length, *, required):
    """Return `value` trimmed, or raise ValidationError when it is missing, too long or more than one line."""
    value = value.strip() if isinstance(value, str) else ""
    if required and not value:
        raise ValidationError(f"A room's {field} cannot be empty.", code="empty")
    if len(value) > max_length or any(ch in value for ch in "\r\n\x00"):
        raise ValidationError(f"A room's {field} is one line of at most {max_length} characters.", code="invalid")
    return value


def room_leave(*, room, user):
    """Take the user out of a room's members (a private room then needs an invitation back); tell their sockets."""
    if room.is_direct:
        raise ValidationError("A direct message cannot be left.", code="direct")
    if room.is_private and room.created_by_id == user.pk:
        raise PermissionDenied("The creator cannot leave their private room.")
    if Membership.objects.filter(room=room, user=user).delete()[0]:
        events.room_removed(user.pk, room)


def membership_read(*, room, user, seq):
    """Move the user's read marker forward to `seq` (never back, never past the last message)."""
    last_seq = Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)
    target = min(seq, last_seq)
    if Membership.objects.filter(room=room, user=user, last_read_seq__lt=target).update(last_read_seq=target):
        unread = selectors.room_unread_count(room=room, user=user, after=target)
        events.room_read(user.pk, room, last_read_seq=target, unread=unread)


def message_create(*, room, author, body, client_id=None):
    """Store a message with the room's next seq and broadcast it; return (message, created).

    A repeated `client_id` from the same author in the same room stores nothing
    and returns the original message, so that clients can retry safely.
    """
    # No look-up first: a repeat is rare, and the unique constraint finds it.
    try:
        [message] = message_create_many([{"room": room, "author": author, "body": body, "client_id": client_id}])
    except IntegrityError:
        # This client_id was stored before (a retry): the insert, seq included, rolled back.
        existing = client_id and message_by_client_id(room, author, client_id)
        if not existing:
            raise
        return existing, False
    return message, True


def message_create_many(sends):
    """Store several messages at once, each with its room's next seq, and broadcast each; return them.

    `sends` are dicts of message_create's arguments. A refusal of any one
    stores none of them: IntegrityError for a client_id repeat, DataError for
    text the database will not take (and, on PostgreSQL, for an archived room or
    a muted author); RoomArchived or Muted for the one message.
    """
    if not sends:
        return []
    now = timezone.now()
    messages = [Message(**send, created_at=now) for send in sends]
    _store_messages(messages)
    for message in messages:
        events.message_created(message)
        message_mentions_notify(message)
    return messages


def _store_messages(messages):
    """Insert messages with their rooms' next seqs and cseqs; each room row stays locked until commit: no gaps."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            for message in messages:
                message.seq, message.cseq = sequences.next_seq(message.room, message.created_at, message.author_id)
                message.save(force_insert=True)
        return
    # PostgreSQL does both writes in one statement, which commits on its own:
    # one round trip where a transaction needs four (BEGIN, UPDATE, INSERT,
    # COMMIT), and a quarter of the CPU. Inside a caller's transaction, a
    # savepoint keeps a refused insert from breaking it.
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        with connection.cursor() as cursor:
            if len(messages) == 1:
                # This statement takes PostgreSQL a third less time than the one for many.
                [message] = messages
                cursor.execute(_INSERT_WITH_NEXT_SEQ, [
                    message.created_at, message.room_id, message.room_id, message.author_id, message.created_at,
                    message.author_id, message.body, message.client_id,
                ])
                message.pk, message.seq, message.cseq = sequences.unless_refused(
                    cursor.fetchone(), message.room, message.author_id
                )
                return
            columns = [[getattr(m, name) for m in messages] for name in ("room_id", "author_id", "body", "client_id")]
            cursor.execute(_INSERT_MANY_WITH_NEXT_SEQS, [*columns, messages[0].created_at, messages[0].created_at])
            stored = {(room_id, seq): (pk, cseq) for pk, room_id, seq, cseq in cursor.fetchall()}
    # Each room's seqs (and cseqs) went to its messages in list order, from its lowest.
    next_seq = {}
    for room_id, seq in sorted(stored):
        next_seq.setdefault(room_id, seq)
    for message in messages:
        message.seq = next_seq[message.room_id]
        next_seq[message.room_id] += 1
        message.pk, message.cseq = stored[message.room_id, message.seq]


_MESSAGE_COLUMNS = ", ".join(
    Message._meta.get_field(name).column
    for name in ("room", "author", "seq", "cseq", "created_at", "body", "client_id", "is_deleted")
)
_INSERT_WITH_NEXT_SEQ = (
    f"WITH room AS (UPDATE {Room._meta.db_table} SET last_seq = last_seq + 1, last_cseq = last_cseq + 1,"
    f" last_message_at = %s WHERE id = %s AND archived_at IS NULL{sequences.NOT_MUTED}"
    " RETURNING id, last_seq, last_cseq, last_message_at)"
    f" INSERT INTO {Message._meta.db_table} ({_MESSAGE_COLUMNS})"
    " SELECT id, %s, last_seq, last_cseq, last_message_at, %s, %s, false FROM room RETURNING id, seq, cseq"
)

# The batch's rooms are locked in id order, so that two batches never wait
# for each other's rooms in a cycle (a deadlock); each room's seqs and cseqs
# go to its messages in the order of the arrays. An archived room among them,
# or an author muted in one, fails the whole statement (division by zero, a
# DataError) so that nothing is stored and the batch is retried message by
# message, where those messages are refused alone.
_INSERT_MANY_WITH_NEXT_SEQS = (
    "WITH new AS (SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[])"
    " WITH ORDINALITY AS new(room_id, author_id, body, client_id, position)),"
    " counts AS (SELECT room_id, count(*) AS added FROM new GROUP BY room_id),"
    f" locked AS (SELECT id FROM {Room._meta.db_table} WHERE id IN (SELECT room_id FROM counts)"
    " AND 1 / (archived_at IS NULL)::int = 1"
    f" AND 1 / (NOT EXISTS (SELECT 1 FROM new JOIN {Mute._meta.db_table} mute ON mute.room_id = new.room_id"
    f" AND mute.user_id = new.author_id WHERE new.room_id = {Room._meta.db_table}.id AND mute.until > %s))::int = 1"
    " ORDER BY id FOR UPDATE),"
    f" room AS (UPDATE {Room._meta.db_table} r SET last_seq = r.last_seq + counts.added,"
    " last_cseq = r.last_cseq + counts.added, last_message_at = %s"
    " FROM counts, locked WHERE r.id = counts.room_id AND locked.id = r.id"
    " RETURNING r.id, r.last_seq - counts.added AS before, r.last_cseq - counts.added AS before_cseq,"
    " r.last_message_at)"
    f" INSERT INTO {Message._meta.db_table} ({_MESSAGE_COLUMNS})"
    " SELECT new.room_id, new.author_id, room.before + row_number() OVER w, room.before_cseq + row_number() OVER w,"
    " room.last_message_at, new.body, new.client_id, false"
    " FROM new JOIN room ON room.id = new.room_id"
    " WINDOW w AS (PARTITION BY new.room_id ORDER BY new.position) RETURNING id, room_id, seq, cseq"
)


def message_mentions_notify(message):
    """Tell the members a message mentions by name (but its author) that it does."""
    names = mentioned_usernames(message.body)
    if not names:
        return
    # The author stays among the candidates: "@BOB" by Bob, with a bob in the room, is ambiguous.
    candidates = dict(
        Membership.objects.filter(room=message.room)
        .alias(lowered=Lower("user__username"))
        .filter(Q(user__username__in=names) | Q(lowered__in={name.lower() for name in names}))
        .values_list("user__username", "user_id")
    )
    for user_id in {candidates[username] for username in mentioned_members(names, candidates)} - {message.author_id}:
        events.user_mentioned(user_id, message)


def message_by_client_id(room, author, client_id):
    """Return the author's message in the room sent with this client_id, or None."""
    return Message.objects.select_related("author", "room").filter(room=room, author=author, client_id=client_id).first()


def _message_for_change(room, message_id):
    return Message.objects.select_for_update().select_related("author", "room").get(
        room=room, pk=message_id, is_deleted=False
    )


@transaction.atomic
def message_edit(*, room, actor, message_id, body):
    """Change the body of a message; only its author may."""
    message = _message_for_change(room, message_id)
    if message.author_id != actor.pk:
        raise PermissionDenied("Only the author may edit a message.")
    message.body = body
    message.edited_at = timezone.now()
    message.cseq = sequences.next_cseq(room.pk)
    message.save(update_fields=["body", "edited_at", "cseq"])
    events.message_edited(message)
    events.previews_fetch_on_commit(message)
    return message


@transaction.atomic
def message_delete(*, room, actor, message_id):
    """Delete a message, keeping its row so that seqs stay gap-free; its author or staff may."""
    message = _message_for_change(room, message_id)
    if message.author_id != actor.pk and not actor.is_staff:
        raise PermissionDenied("Only the author or staff may delete a message.")
    message.is_deleted = True
    message.cseq = sequences.next_cseq(room.pk)
    message.save(update_fields=["is_deleted", "cseq"])
    if message.attachments:
        attachments.message_attachments_delete(message)
    events.message_deleted(message)
    return message


# A message shows at most this many kinds of emoji, and names this many of the users behind each.
MAX_REACTION_KINDS = 20
MAX_REACTION_NAMES = 50


def validate_emoji(value):
    """Raise ValidationError unless `value` is one Unicode emoji (modifiers and joiners included)."""
    if not isinstance(value, str) or not emoji_data.is_emoji(value):
        raise ValidationError("A reaction is one emoji.", code="invalid_emoji")


@transaction.atomic
def reaction_add(*, room, actor, message_id, emoji):
    """Add the user's emoji to a message, once; return the message (unchanged when they had reacted so already)."""
    validate_emoji(emoji)
    _check_member(room, actor, "Only members of the room may react.")
    message = _message_for_change(room, message_id)
    kinds = {reaction["emoji"] for reaction in message.reactions or ()}
    if emoji not in kinds and len(kinds) >= MAX_REACTION_KINDS:
        raise ValidationError(f"A message takes at most {MAX_REACTION_KINDS} kinds of reaction.", code="too_many")
    _, created = Reaction.objects.get_or_create(message=message, user=actor, emoji=emoji)
    if created:
        _reactions_changed(message)
    return message


@transaction.atomic
def reaction_remove(*, room, actor, message_id, emoji):
    """Take the user's emoji off a message; return the message (unchanged when there was none)."""
    validate_emoji(emoji)
    message = _message_for_change(room, message_id)
    deleted, _ = Reaction.objects.filter(message=message, user=actor, emoji=emoji).delete()
    if deleted:
        _reactions_changed(message)
    return message


def _reactions_changed(message):
    """Rebuild a locked message's reaction summary, give it the room's next change number and announce it."""
    summary = {}
    for kind, username in message.reaction_set.order_by("created_at", "id").values_list("emoji", "user__username"):
        summary.setdefault(kind, []).append(username)
    message.reactions = [
        {"emoji": kind, "count": len(names), "users": names[:MAX_REACTION_NAMES]} for kind, names in summary.items()
    ]
    message.cseq = sequences.next_cseq(message.room_id)
    message.save(update_fields=["reactions", "cseq"])
    events.message_reactions(message)
