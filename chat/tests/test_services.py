"""Writes: room opening and message storage, seq allocation and idempotency."""
import pytest
from django.core.exceptions import ValidationError

from chat import services
from chat.models import Membership, Message, Room


@pytest.fixture
def alice(make_user):
    return make_user("alice")


def test_room_open_creates_a_public_room_once_and_joins(alice, make_user):
    room = services.room_open(slug="lobby", user=alice)
    again = services.room_open(slug="lobby", user=make_user("bob"))
    assert again.pk == room.pk and not room.is_private and room.name == "lobby"
    assert Room.objects.count() == 1
    assert Membership.objects.filter(room=room).count() == 2


@pytest.mark.parametrize("slug", ["", "Lobby", "a b", "x" * 51, "dé", "a/b", "a.b"])
def test_room_open_refuses_invalid_slugs(alice, slug):
    with pytest.raises(ValidationError):
        services.room_open(slug=slug, user=alice)
    assert not Room.objects.exists()


@pytest.mark.parametrize("name,slug", [("Design Team", "design-team"), ("  ops_2 ", "ops_2"), ("x" * 50, "x" * 50)])
def test_room_slug_from_name(name, slug):
    assert services.room_slug_from_name(name) == slug


@pytest.mark.parametrize("name", ["", "   ", "café", "x" * 51, "a!"])
def test_room_slug_from_name_refuses(name):
    with pytest.raises(ValidationError):
        services.room_slug_from_name(name)


def test_message_create_allocates_gap_free_seq_per_room(alice, django_capture_on_commit_callbacks):
    lobby = services.room_open(slug="lobby", user=alice)
    other = services.room_open(slug="other", user=alice)
    with django_capture_on_commit_callbacks() as callbacks:
        seqs = [services.message_create(room=room, author=alice, body="x")[0].seq for room in (lobby, other, lobby)]
    assert seqs == [1, 1, 2]
    assert len(callbacks) == 3
    lobby.refresh_from_db()
    assert lobby.last_seq == 2 and lobby.last_message_at is not None


def test_message_create_with_a_known_client_id_returns_the_original(alice, django_capture_on_commit_callbacks):
    room = services.room_open(slug="lobby", user=alice)
    with django_capture_on_commit_callbacks() as callbacks:
        first, created = services.message_create(room=room, author=alice, body="hello", client_id="c1")
        again, created_again = services.message_create(room=room, author=alice, body="changed", client_id="c1")
    assert created and not created_again
    assert again.pk == first.pk and again.body == "hello"
    assert Message.objects.count() == 1 and len(callbacks) == 1
    room.refresh_from_db()
    assert room.last_seq == 1


@pytest.mark.django_db(transaction=True)
def test_broadcast_waits_for_commit(make_user):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.db import transaction

    from chat.broadcast import room_group

    alice = make_user("alice")
    room = services.room_open(slug="lobby", user=alice)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room_group(room.pk), channel)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.message_create(room=room, author=alice, body="rolled back")
            raise RuntimeError
    services.message_create(room=room, author=alice, body="kept")
    event = async_to_sync(layer.receive)(channel)
    assert event["seq"] == 1 and '"body":"kept"' in event["text"]
    assert Message.objects.get().body == "kept"
