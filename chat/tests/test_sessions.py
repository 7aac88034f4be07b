"""The sockets' login session: looked up once in the handshake, looked at again only when it may have ended."""
import datetime

import pytest
from django.utils import timezone

from chat.realtime.sessions import DatabaseSocketSession, session_first_look
from chat.tests.conftest import logged_in_client


@pytest.fixture
def session(make_user, settings):
    key = logged_in_client(make_user("alice")).cookies[settings.SESSION_COOKIE_NAME].value
    session = DatabaseSocketSession(key)
    assert session["_auth_user_id"]  # reads the row the page wrote, in one query
    return session


def test_a_live_session_is_looked_at_again_when_it_expires(session, settings):
    assert session.looked_up_at is not None
    seconds = session_first_look(session, lambda since: False)
    assert settings.SESSION_COOKIE_AGE - 5 < seconds <= settings.SESSION_COOKIE_AGE


@pytest.mark.parametrize("heard", [True, None], ids=["heard-ended", "not-known"])
def test_a_session_heard_to_end_or_not_known_to_hold_is_looked_at_once(session, heard):
    asked = []
    assert session_first_look(session, lambda since: asked.append(since) or heard) == 0
    assert asked == [session.looked_up_at]


def test_a_session_of_no_row_is_looked_at_once(db):
    session = DatabaseSocketSession("no-such-key")
    assert session.get("_auth_user_id") is None and session.expire_date is None
    assert session_first_look(session, lambda since: False) == 0


def test_an_expired_session_is_looked_at_once(session):
    session.expire_date = timezone.now() - datetime.timedelta(seconds=1)
    assert session_first_look(session, lambda since: False) == 0
