"""Create benchmark users with logged-in sessions in the database DATABASE_URL names, fast; or their memberships.

Run in a subprocess with the project's environment; prints a JSON list of
session keys, one per user, in order:

    DATABASE_URL=... python -m bench.accounts 1000 b1u

or makes user <prefix><i> a member of the i-th room slug of a JSON list read from stdin:

    echo '["room_0", "room_0"]' | DATABASE_URL=... python -m bench.accounts members b1u
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


def memberships_create(prefix, slugs):
    """Make user <prefix><i> a member of the existing room slugs[i], for each i, in one transaction."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from chat.domain.models import Membership, Room

    rooms = Room.objects.in_bulk(set(slugs), field_name="slug")
    users = get_user_model().objects.in_bulk([f"{prefix}{i}" for i in range(len(slugs))], field_name="username")
    with transaction.atomic():
        Membership.objects.bulk_create(
            [Membership(room=rooms[slug], user=users[f"{prefix}{i}"]) for i, slug in enumerate(slugs)],
            batch_size=1000, ignore_conflicts=True,
        )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    django.setup()
    if sys.argv[1] == "members":
        memberships_create(sys.argv[2], json.load(sys.stdin))
    else:
        print(json.dumps(accounts_create(int(sys.argv[1]), sys.argv[2])))
