"""Create benchmark users with logged-in sessions in the database DATABASE_URL names, fast.

Run in a subprocess with the project's environment; prints a JSON list of
session keys, one per user, in order:

    DATABASE_URL=... python -m bench.accounts 1000 b1u
"""
import json
import os
import sys
from datetime import timedelta

import django


def accounts_create(count, prefix):
    """Create `count` users named <prefix><i> and a login session for each; return the session keys."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    # One unusable password for all: hashing a real one per user would take minutes.
    password = make_password(None)
    model = get_user_model()
    with transaction.atomic():
        users = model.objects.bulk_create(
            [model(username=f"{prefix}{i}", password=password) for i in range(count)], batch_size=1000
        )
        store, expires = SessionStore(), timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
        auth_hash = users[0].get_session_auth_hash() if users else ""
        backend = settings.AUTHENTICATION_BACKENDS[0]
        sessions = [
            Session(
                session_key=get_random_string(32, VALID_KEY_CHARS),
                session_data=store.encode({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend,
                                           HASH_SESSION_KEY: auth_hash}),
                expire_date=expires,
            )
            for user in users
        ]
        Session.objects.bulk_create(sessions, batch_size=1000)
    return [session.session_key for session in sessions]


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    django.setup()
    print(json.dumps(accounts_create(int(sys.argv[1]), sys.argv[2])))
