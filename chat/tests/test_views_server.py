"""The pages through a real daphne: reading never writes, rooms and conversations open by POST, mentions ignore case."""
import itertools
import json
import re

import pytest

from harness.servers import WebClient, frame_of, manage, project_env, start_daphne, users_create

pytestmark = [pytest.mark.timeout(120)]
_rooms = itertools.count(1)


@pytest.fixture(scope="module")
def env(live_database):
    """Return the environment of the daphne and of the shell that looks at its database."""
    env = project_env(DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1")
    users_create(["vic", "val", "VeraX"], env=env)
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory, env):
    """Start daphne; yield its base URL."""
    daphne = start_daphne(tmp_path_factory.mktemp("views"), env=env)
    try:
        yield f"http://127.0.0.1:{daphne.port}"
    finally:
        daphne.stop()


@pytest.fixture
def room():
    """Return a room slug no other test uses."""
    return f"views-{next(_rooms)}"


def stored(env, slug, username):
    """Return what the database holds: whether room `slug` exists, its members, and `username`'s direct rooms."""
    code = (
        "import json\n"
        "from chat.domain.models import Membership, Room\n"
        "print(json.dumps({\n"
        f"    'room': Room.objects.filter(slug={slug!r}).exists(),\n"
        f"    'members': sorted(Membership.objects.filter(room__slug={slug!r}).values_list('user__username', flat=True)),\n"
        f"    'direct': sorted(Room.objects.filter(is_direct=True, memberships__user__username={username!r})"
        ".values_list('name', flat=True)),\n"
        "}))\n"
    )
    return json.loads(manage("shell", "-c", code, env=env).strip().splitlines()[-1])


def room_seed(env, slug, creator):
    """Create a public room with its creator as its only member, straight in the database."""
    manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain.models import Membership, Room\n"
        f"user = get_user_model().objects.get(username={creator!r})\n"
        f"Membership.objects.create(room=Room.objects.create(slug={slug!r}, name={slug!r}, created_by=user), user=user)\n"
    ), env=env)


def submit(client, path):
    """Load `path` and submit its form that posts back to it, as a browser does; return (status, body)."""
    _, page = client.request(path)
    form = re.search(rf'<form method="post" action="{re.escape(path)}".*?</form>', page, re.DOTALL).group(0)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    return client.request(path, {"csrfmiddlewaretoken": token}, {"Origin": client.base_url})


def test_get_requests_change_no_state(server, env, room):
    vic = WebClient(server).login("vic")
    room_seed(env, f"{room}-public", "val")
    # What a cross-site <img> or a typo can make a logged-in browser fetch.
    for path in [f"/chat/{room}/", f"/chat/{room}/messages/", "/dm/val/", f"/chat/{room}-public/",
                 f"/chat/{room}-public/messages/"]:
        vic.request(path)
    assert stored(env, room, "vic") == {"room": False, "members": [], "direct": []}
    assert stored(env, f"{room}-public", "vic")["members"] == ["val"]


def test_an_unknown_room_is_created_by_its_form_only(server, env, room):
    vic = WebClient(server).login("vic")
    status, page = vic.request(f"/chat/{room}/")
    assert status == 404 and f"Create #{room}?" in page
    # A cross-site form has no token.
    assert vic.request(f"/chat/{room}/", {}, {"Origin": "http://evil.example"})[0] == 403
    assert not stored(env, room, "vic")["room"]
    status, page = submit(vic, f"/chat/{room}/")
    assert status == 200 and '<script id="room-config"' in page
    assert stored(env, room, "vic")["members"] == ["vic"]


def test_a_dm_opens_by_post_only(server, env):
    vic = WebClient(server).login("vic")
    status, page = vic.request("/dm/VeraX/")
    assert status == 200 and "Message VeraX?" in page
    assert stored(env, "", "VeraX")["direct"] == []
    status, page = submit(vic, "/dm/VeraX/")
    assert status == 200 and '"name": "VeraX"' in page
    assert stored(env, "", "VeraX")["direct"] == ["vic & VeraX"]
    # Once the conversation exists, its link goes straight to it.
    status, page = vic.request("/dm/VeraX/")
    assert status == 200 and '"name": "VeraX"' in page


async def test_a_mention_in_another_case_notifies_the_member(server, env, room):
    val, vera = WebClient(server).login("val"), WebClient(server).login("VeraX")
    room_seed(env, room, "val")
    async with val.socket(room) as writer, vera.socket(room) as reader:
        await frame_of(writer, "welcome")
        await frame_of(reader, "welcome")
        await writer.send(json.dumps({"type": "send", "body": "@verax can you look?", "client_id": "m1"}))
        frame = await frame_of(reader, "notification")
    assert frame["message"]["body"] == "@verax can you look?" and frame["message"]["author"] == "val"
