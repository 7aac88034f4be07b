"""Keep the SQLite connection of the sockets' database thread open from one call to the next; read in one snapshot.

Under ASGI, Django closes a thread's connection after every call
(CONN_MAX_AGE 0): its threads come and go, and a persistent connection of a
finished thread would linger. The sockets' calls on SQLite all run in
asgiref's one sync thread, which lives as long as the process, and opening
the file again for each call (its pragmas, its functions registered) was a
quarter of that thread's time in a ramp of handshakes (bench/, py-spy).
"""
import contextlib
import functools

from django.db import connection, transaction


def kept_connection(func):
    """Return `func` run on a connection its thread keeps open afterwards (Django closes it still when unusable)."""
    @functools.wraps(func)  # its database calls are timed under its name
    def call(*args, **kwargs):
        connection.ensure_connection()
        # What CONN_MAX_AGE None gives every connection, for this thread's alone.
        connection.close_at = None
        return func(*args, **kwargs)
    return call


@contextlib.contextmanager
def read_snapshot():
    """Run the reads inside in one snapshot of the database, without holding back the chat's writes meanwhile."""
    if connection.in_atomic_block:
        # The caller's transaction is the snapshot.
        yield
        return
    if connection.vendor == "sqlite":
        # atomic() would BEGIN IMMEDIATE (the settings' transaction_mode), taking the write lock that every
        # message's insert waits for; a deferred transaction only reads, and WAL lets writers commit beside it.
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Under read committed each query would see what committed since the one before: a message, say, and
            # not its room's new last_seq.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
