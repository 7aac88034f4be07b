"""Attacks on the chat socket and pages, each test named after the attack it defeats."""
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.utils import timezone

from chat.tests.conftest import logged_in_client

pytestmark = [pytest.mark.django_db(transaction=True)]

SESSION_ENDED = {"type": "websocket.close", "code": 4401}


async def logged_in(make_user, username):
    user = await database_sync_to_async(make_user)(username)
    return user, await database_sync_to_async(logged_in_client)(user)


async def test_socket_of_a_session_logged_out_in_another_tab_is_closed(connect, make_user):
    alice, client = await logged_in(make_user, "alice")
    socket = await connect(alice, client=client)
    other_session = await connect(alice)
    assert (await database_sync_to_async(client.post)("/accounts/logout/")).status_code == 302
    assert await socket.receive_output(timeout=5) == SESSION_ENDED
    socket.connected = False
    # Only that session ended: the same user's other login keeps its socket.
    assert await other_session.receive_nothing(timeout=0.3)
    assert not (await connect(alice, client=client)).connected


async def test_socket_of_an_expired_session_is_closed(connect, make_user):
    alice, client = await logged_in(make_user, "alice")
    key = client.session.session_key
    await database_sync_to_async(Session.objects.filter(session_key=key).update)(
        expire_date=timezone.now() + timedelta(seconds=1)
    )
    socket = await connect(alice, client=client)
    assert await socket.receive_output(timeout=5) == SESSION_ENDED
    socket.connected = False
    assert not (await connect(alice, client=client)).connected


async def test_sockets_of_a_deactivated_user_are_closed(connect, make_user):
    alice, client = await logged_in(make_user, "alice")
    sockets = [await connect(alice, client=client), await connect(alice, slug="other")]

    @database_sync_to_async
    def deactivate():
        user = get_user_model().objects.get(pk=alice.pk)
        user.is_active = False
        user.save()

    await deactivate()
    for socket in sockets:
        assert await socket.receive_output(timeout=5) == SESSION_ENDED
        socket.connected = False
    assert not (await connect(alice, client=client)).connected
