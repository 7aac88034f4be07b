"""The room's numbers: each message's seq and each change's cseq, allocated under the room's row lock, gap-free.

An archived room allocates none: the check is in the statement that takes the lock, so that nothing slips in
after an archive commits.
"""
from django.core.exceptions import PermissionDenied
from django.db import connection

from chat.domain.models import Room


class RoomArchived(PermissionDenied):
    """The room is archived: it takes no messages and no changes until it is unarchived."""

    def __init__(self):
        super().__init__("This room is archived: it is read-only.")


def next_seq(room, now):
    """Allocate the room's next seq and cseq, locking its row until commit; return both."""
    # One round trip with RETURNING (SQLite 3.35+), where the ORM needs an UPDATE and a SELECT.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Room._meta.db_table} SET last_seq = last_seq + 1, last_cseq = last_cseq + 1,"
            " last_message_at = %s WHERE id = %s AND archived_at IS NULL RETURNING last_seq, last_cseq",
            [connection.ops.adapt_datetimefield_value(now), room.pk],
        )
        return unless_archived(cursor.fetchone())


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
