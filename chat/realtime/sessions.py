"""Give each websocket its login session, without channels' session check on every frame sent."""
import time
from importlib import import_module

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db.models.functions import Now
from django.utils import timezone

from chat.platform.prepared import TEXT, Prepared

DATABASE_ENGINE = "django.contrib.sessions.backends.db"
# Django's own lookup, compiled once (chat.platform.prepared): every handshake reads its session.
_LIVE_SESSION = Prepared(
    lambda session_key: Session.objects.filter(session_key=session_key, expire_date__gt=Now()), session_key=TEXT
)


class DatabaseSocketSession(db.SessionStore):
    """Django's database session, remembering when it was looked up and the expiry its row gave."""

    looked_up_at = expire_date = None  # monotonic; aware datetime
    # Django signs a session's data with its class's name: this one reads the rows the pages write.
    key_salt = db.SessionStore().key_salt

    def _get_session_from_db(self):
        # Stamped before the query: a logout committed after this may or may not be in the row read.
        self.looked_up_at = time.monotonic()
        rows = _LIVE_SESSION(session_key=self.session_key)
        if not rows:
            self._session_key = None  # as Django's lookup does: a new session, were this one saved
            self.expire_date = None
            return None
        self.expire_date = rows[0].expire_date
        return rows[0]


def session_first_look(session, ended_since):
    """Return in how many seconds a socket should look at its session, 0 for at once (not known to hold).

    `ended_since(looked_up_at)` says whether the session was heard to end since
    then (None: not known); a session heard of as live needs no look before it expires.
    """
    if getattr(session, "expire_date", None) is None or ended_since(session.looked_up_at) is not False:
        return 0
    return max((session.expire_date - timezone.now()).total_seconds(), 0)


def session_forget(session):
    """Drop what a socket's session read (its data, its row's expiry): the socket needs only its key from now on."""
    # About 0.7 KiB a socket, kept for hours. A later read of the session loads it again.
    for name in ("_session_cache", "looked_up_at", "expire_date"):
        session.__dict__.pop(name, None)


class SocketSessionMiddleware:
    """Put the session named by the request's cookie in the scope, leaving send alone.

    channels' SessionMiddleware wraps send to save the session and set its
    cookie on HTTP responses. A websocket sends no HTTP response after its
    handshake, so that wrapper only cost a session lookup on every frame: about
    a sixth of the GIL of a server delivering to a room of 1,000 (bench/).
    """

    def __init__(self, inner):
        self.inner = inner
        if settings.SESSION_ENGINE == DATABASE_ENGINE:
            self.session_store = DatabaseSocketSession
        else:
            self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        session = self.session_store(scope["cookies"].get(settings.SESSION_COOKIE_NAME))
        return await self.inner(dict(scope, session=session), receive, send)


def SocketAuthMiddlewareStack(inner):
    """Return channels' AuthMiddlewareStack for websockets: cookies, the session, then the user."""
    return CookieMiddleware(SocketSessionMiddleware(AuthMiddleware(inner)))
