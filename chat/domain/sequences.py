"""The room's numbers: each message's seq and each change's cseq, allocated under the room's row lock, gap-free.

An archived room allocates none, nor does a room to an author muted in it: the checks are in the statement that
takes the lock, so that nothing slips in after an archive or a mute commits, and a send costs no query more.
"""
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from chat.domain.models import Mute, Room

# The condition of a message insert's room update: the author is not muted in the room (room id, author id, now).
NOT_MUTED = f" AND NOT EXISTS (SELECT 1 FROM {Mute._meta.db_table} WHERE room_id = %s AND user_id = %s AND until > %s)"


class RoomArchived(PermissionDenied):
    """The room is archived: it takes no messages and no changes until it is unarchived."""

    def __init__(self):
        super().__init__("This room is archived: it is read-only.")


class Muted(PermissionDenied):
    """The author is muted in the room until `until` (chat.domain.moderation): nothing was stored."""

    def __init__(self, room, until):
        self.room, self.until = room, until
        super().__init__(f"You are muted in #{room.slug} until {until:%Y-%m-%d %H:%M} UTC; nothing was sent.")


def next_seq(room, now, author_id):
    """Allocate the room's next seq and cseq for a message of `author_id`, locking its row until commit; return both."""
    # One round trip with RETURNING (SQLite 3.35+), where the ORM needs an UPDATE and a SELECT.
    now = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Room._meta.db_table} SET last_seq = last_seq + 1, last_cseq = last_cseq + 1,"
            f" last_message_at = %s WHERE id = %s AND archived_at IS NULL{NOT_MUTED} RETURNING last_seq, last_cseq",
            [now, room.pk, room.pk, author_id, now],
        )
        return unless_refused(cursor.fetchone(), room, author_id)


def next_cseq(room_id, *, archived=False):
    """Allocate the room's next cseq, locking its row until commit; RoomArchived if archived, unless `archived`."""
    # The check is in the statement that locks the row: an archive committed a moment before cannot slip by.
    guard = "" if archived else " AND archived_at IS NULL"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Room._meta.db_table} SET last_cseq = last_cseq + 1 WHERE id = %s{guard} RETURNING last_cseq",
            [room_id],
        )
        return unless_archived(cursor.fetchone())[0]


def unless_archived(row):
    """Return the row a guarded room update returned; RoomArchived when it found no open room."""
    if row is None:
        raise RoomArchived()
    return row


def unless_refused(row, room, author_id):
    """Return the row a message insert's room update returned; Muted or RoomArchived when it found none."""
    if row is None:
        until = mute_until(room_id=room.pk, user_id=author_id)
        if until is not None:
            raise Muted(room, until)
    return unless_archived(row)


def mute_until(*, room_id, user_id):
    """Return when the user's mute in the room ends, or None when they may send."""
    mutes = Mute.objects.filter(room_id=room_id, user_id=user_id, until__gt=timezone.now())
    return mutes.values_list("until", flat=True).first()
