"""Keep the SQLite connection of the sockets' database thread open from one call to the next.

Under ASGI, Django closes a thread's connection after every call
(CONN_MAX_AGE 0): its threads come and go, and a persistent connection of a
finished thread would linger. The sockets' calls on SQLite all run in
asgiref's one sync thread, which lives as long as the process, and opening
the file again for each call (its pragmas, its functions registered) was a
quarter of that thread's time in a ramp of handshakes (bench/, py-spy).
"""
import functools

from django.db import connection


def kept_connection(func):
    """Return `func` run on a connection its thread keeps open afterwards (Django closes it still when unusable)."""
    @functools.wraps(func)  # its database calls are timed under its name
    def call(*args, **kwargs):
        connection.ensure_connection()
        # What CONN_MAX_AGE None gives every connection, for this thread's alone.
        connection.close_at = None
        return func(*args, **kwargs)
    return call
