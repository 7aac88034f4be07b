"""Reads: rooms and messages as the pages and sockets see them."""
import dataclasses
import functools

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat.domain import events
from chat.domain.models import Membership, Message, Room, validate_room_slug
from chat.platform.dbconnections import read_snapshot
from chat.platform.prepared import ID, NUMBER, Prepared

# The messages a room shows (and counts unread): all but replies kept in their thread.
IN_ROOM = Q(parent__isnull=True) | Q(also_in_room=True)
# Pages of history and of the change feed: the size when none is asked for, and the most one read returns.
DEFAULT_PAGE = 50
MAX_PAGE = 100


def room_get_for_user(*, slug, user):
    """Return (room, the user's membership or None) without writing; PermissionDenied for others' private rooms."""
    validate_room_slug(slug)
    room = Room.objects.get(slug=slug)
    membership = Membership.objects.filter(room=room, user=user).first()
    if membership is None and room.is_private:
        raise PermissionDenied("This room is private.")
    return room, membership


def direct_slug(user, other):
    """Return the slug of the direct-message room of two users, the same in both orders."""
    low, high = sorted([user.pk, other.pk])
    return f"dm-{low}-{high}"


def room_get_direct(*, user, username):
    """Return the direct-message room of `user` and the active user `username`, or None before it is opened."""
    other = get_user_model().objects.get(username=username, is_active=True)
    return Room.objects.filter(slug=direct_slug(user, other), is_direct=True).first()


def _room_list():
    # A count per room over the seqs above the marker only (the room-and-seq index), where a join of every
    # message of every room would read whole histories at each connect.
    unread = (
        Message.objects.filter(IN_ROOM, room=OuterRef("room"), seq__gt=OuterRef("last_read_seq"), is_deleted=False)
        .exclude(author=OuterRef("user"))
        .order_by()
        .values("room")
        .annotate(count=Count("*"))
        .values("count")
    )
    return (
        Membership.objects.filter(room__archived_at__isnull=True)
        .select_related("room")
        .annotate(unread=Coalesce(Subquery(unread), 0))
        .order_by(F("room__last_message_at").desc(nulls_last=True), "room__slug")
    )


# Built once: resolving the unread subquery was half of what the hello's room list cost (bench/, py-spy).
_ROOM_LIST = _room_list()
# The reads of every socket's hello and subscribe, compiled once (chat.platform.prepared).
_ROOM_LIST_FIRST = Prepared(lambda user_id, limit: _ROOM_LIST.filter(user_id=user_id)[:limit], user_id=ID)
_ROOM_IDS = Prepared(lambda user_id: Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True),
                     user_id=ID)


def room_list_for_user(user):
    """Return the user's memberships but archived rooms, most recently active room first, each with its `unread` count."""
    return _ROOM_LIST.filter(user=user)


def room_unread_count(*, room, user, after):
    """Return how many of a room's messages after seq `after` are unread for `user`: others', not deleted."""
    return Message.objects.filter(IN_ROOM, room=room, seq__gt=after, is_deleted=False).exclude(author=user).count()


def room_summaries_for_user(user, limit):
    """Return (the sidebar summaries of the user's `limit` most recently active rooms, how many rooms they have)."""
    memberships = _ROOM_LIST_FIRST(user_id=user.pk, limit=limit)
    summaries = [events.room_summary(m.room, user, unread=m.unread) for m in memberships]
    count = len(summaries) if len(summaries) < limit else Membership.objects.filter(user=user, room__archived_at__isnull=True).count()
    return summaries, count


def room_list_archived(user):
    """Return the archived rooms the user is a member of, most recently archived first."""
    return Room.objects.filter(memberships__user=user, archived_at__isnull=False).order_by("-archived_at", "slug")


def room_ids_for_user(user):
    """Return the ids of every room the user is a member of."""
    return _ROOM_IDS(user_id=user.pk)


def room_list_public(*, exclude_user=None):
    """Return the public rooms but archived ones, most recently active first, with their message counts."""
    rooms = Room.objects.filter(is_private=False, archived_at__isnull=True)
    if exclude_user is not None:
        rooms = rooms.exclude(memberships__user=exclude_user)
    return rooms.annotate(message_count=Count("messages", filter=Q(messages__is_deleted=False))).order_by(
        F("last_message_at").desc(nulls_last=True), "slug"
    )


def room_member_names(room):
    """Return the usernames of a room's members, sorted."""
    return list(room.memberships.order_by("user__username").values_list("user__username", flat=True))


def room_member_search(room, prefix, limit):
    """Return up to `limit` usernames of a room's members that start with `prefix` (any case), sorted."""
    members = room.memberships.filter(user__username__istartswith=prefix)
    return list(members.order_by("user__username").values_list("user__username", flat=True)[:limit])


def session_expiry(session_key):
    """Return when a login session expires, or None when it is gone, expired or logged out."""
    sessions = Session.objects.filter(session_key=session_key, expire_date__gt=timezone.now())
    return sessions.values_list("expire_date", flat=True).first()


def message_list(*, room, before=None, after=None, limit=DEFAULT_PAGE, thread=None):
    """Return (messages oldest first, has_more) for one page of a room's history, or of a thread's replies.

    With `after`, the page starts just after that seq and `has_more` says newer
    ones follow; otherwise it ends just before `before` (or at the latest) and
    `has_more` says older ones exist. With `thread` (a message id), the page is of that thread's replies.
    """
    if before is None and after is None and thread is None:
        page = _LATEST_MESSAGES(room_id=room.pk, limit=limit)
    else:
        page = list(_message_page(room.pk, before=before, after=after, limit=limit, thread=thread))
    if after is not None:
        return page[:limit], len(page) > limit
    return page[:limit][::-1], len(page) > limit


def _message_page(room_id, *, before=None, after=None, limit, thread=None):
    # One more than the page: whether it exists is `has_more`.
    messages = Message.objects.filter(room_id=room_id, is_deleted=False).select_related("author", "room")
    messages = messages.filter(IN_ROOM) if thread is None else messages.filter(parent_id=thread)
    if after is not None:
        return messages.filter(seq__gt=after).order_by("seq")[: limit + 1]
    if before is not None:
        messages = messages.filter(seq__lt=before)
    return messages.order_by("-seq")[: limit + 1]


# A room page's first view, the one every subscribe reads.
_LATEST_MESSAGES = Prepared(lambda room_id, limit: _message_page(room_id, limit=limit), room_id=ID)


def message_thread_of(room, seq):
    """Return {id, seq} of the parent of the reply `seq` when the reply shows in its thread only, else None."""
    parent = Message.objects.filter(room=room, seq=seq, also_in_room=False, parent__isnull=False).values(
        "parent_id", "parent__seq"
    ).first()
    return {"id": parent["parent_id"], "seq": parent["parent__seq"]} if parent else None


@dataclasses.dataclass(frozen=True)
class RoomChange:
    """A room's name, topic and archived state as they are now, in the change feed at the cseq of their latest change."""

    cseq: int
    name: str
    topic: str
    archived: bool


def change_list(*, room, after, limit=DEFAULT_PAGE):
    """Return (the changes after cseq `after` in cseq order: messages as they are now and a RoomChange, has_more)."""
    with read_snapshot():
        return _changes_after(room, after, limit, _room_state(room))


def _changes_after(room, after, limit, state):
    last_cseq, changed_cseq, name, topic, archived_at = state
    page = list(_change_page(room.pk, after, limit, last_cseq))
    if changed_cseq > after:
        room_change = RoomChange(changed_cseq, name, topic, archived_at is not None)
        page = sorted([*page, room_change], key=lambda change: change.cseq)
    return page[:limit], len(page) > limit


# Change pages kept in each process. In a reconnect storm every client of a room asks for the same pages: 1,000
# clients resuming 150 missed messages read and built them 1,000 times (two fifths of the surviving daphne's samples).
# A page of 100 short messages holds about 180 KiB (tracemalloc), so these take about 6 MB, more for long bodies.
CHANGE_PAGES_KEPT = 32


@functools.lru_cache(maxsize=CHANGE_PAGES_KEPT)
def _change_page(room_id, after, limit, last_cseq):
    # Read in the snapshot where the room's last cseq was `last_cseq`, which is only the key: every change bumps a
    # message to the room's next cseq, so in any snapshot at that cseq the page after `after` is the same.
    return tuple(_CHANGES(room_id=room_id, after=after, limit=limit))


def room_last_cseq(room):
    """Return the room's last allocated cseq as the database holds it now."""
    return _room_state(room)[0]


# Every resume reads these (chat.platform.prepared). Deleted messages stay in: a client that held one learns here
# that it is gone.
_CHANGES = Prepared(
    lambda room_id, after, limit: Message.objects.filter(room_id=room_id, cseq__gt=after)
    .select_related("author", "room").order_by("cseq")[: limit + 1],
    room_id=ID, after=NUMBER,
)
_ROOM_STATE = Prepared(
    lambda room_id: Room.objects.filter(pk=room_id).values_list(
        "last_cseq", "changed_cseq", "name", "topic", "archived_at"
    ),
    room_id=ID,
)


def _room_state(room):
    """Return the room's (last_cseq, changed_cseq, name, topic, archived_at) as the database holds them now."""
    state = _ROOM_STATE(room_id=room.pk)
    if not state:
        raise Room.DoesNotExist("The room is gone.")
    return state[0]


def room_view(*, room, after=None, after_seq=None, limit=DEFAULT_PAGE):
    """Return (cseq, items, has_more) read in one snapshot: the latest messages, with `after` the changes since.

    `after_seq` (protocol v1's resume) gives the messages after that seq instead.

    `cseq` is the room's last change in that snapshot, so that a live event
    at or below it is already reflected, and every one above it is not. The
    room's name, topic and archived state are read again in the same snapshot: a change
    committed after `room` was loaded and at or below `cseq` has no live
    event left to bring it.
    """
    with read_snapshot():
        state = _room_state(room)
        room.last_cseq, _, room.name, room.topic, room.archived_at = state
        cseq = room.last_cseq
        if after is not None:
            items, has_more = _changes_after(room, after, limit, state)
        else:
            items, has_more = message_list(room=room, after=after_seq, limit=limit)
    return cseq, items, has_more
