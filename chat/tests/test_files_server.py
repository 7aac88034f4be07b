"""Uploads and file downloads through a real daphne: who may fetch what, and how hostile files come back inert."""
import asyncio
import json
import socket
import urllib.parse

import pytest

from harness.servers import WebClient, daphne_serving, frame_of, manage, project_env, rooms_create, users_create
from chat.tests import hostile_files

pytestmark = [pytest.mark.timeout(120)]
PRIVATE = "files-private"
PUBLIC = "files-public"


@pytest.fixture(scope="module")
def env(live_database, tmp_path_factory):
    """Return the environment of the daphne and of the shell that looks at its database."""
    media = tmp_path_factory.mktemp("media")
    env = project_env(
        DATABASE_URL=live_database, ALLOWED_HOSTS="127.0.0.1", MEDIA_ROOT=media, CHAT_UPLOAD_MAX_BYTES=2_000_000,
    )
    users_create(["fay", "fin", "fox"], env=env)
    rooms_create([PRIVATE], by="fay", private=True, env=env)
    rooms_create([PUBLIC], by="fay", env=env)
    member_add(env, PRIVATE, "fin")
    return env


def member_add(env, slug, username):
    manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from chat.domain.models import Membership, Room\n"
        f"Membership.objects.get_or_create(room=Room.objects.get(slug={slug!r}),"
        f" user=get_user_model().objects.get(username={username!r}))\n"
    ), env=env)


def stored(env):
    """Return [(name, content_type, message id)] of every attachment, and the files under MEDIA_ROOT."""
    code = (
        "import json, pathlib\n"
        "from django.conf import settings\n"
        "from chat.domain.models import Attachment\n"
        "rows = list(Attachment.objects.order_by('pk').values_list('name', 'content_type', 'message'))\n"
        "files = sorted(str(p.relative_to(settings.MEDIA_ROOT)) for p in pathlib.Path(settings.MEDIA_ROOT).rglob('*')"
        " if p.is_file())\n"
        "print(json.dumps([rows, files]))\n"
    )
    rows, files = json.loads(manage("shell", "-c", code, env=env).strip().splitlines()[-1])
    return [tuple(row) for row in rows], files


@pytest.fixture(scope="module")
def server(tmp_path_factory, env):
    """Start daphne; yield its base URL."""
    with daphne_serving(tmp_path_factory.mktemp("files"), env=env) as url:
        yield url


@pytest.fixture(scope="module")
def clients(server):
    return {name: WebClient(server).login(name) for name in ("fay", "fin", "fox")}


async def send_with(client, slug, ids, body=""):
    """Send a v2 message with attachments `ids`; return the message frame's message, as another socket gets it."""
    async with client.socket() as socket_:
        await frame_of(socket_, "hello")
        await socket_.send(json.dumps({"type": "subscribe", "room": slug}))
        await frame_of(socket_, "subscribed")
        await socket_.send(json.dumps({"type": "send", "room": slug, "body": body, "attachments": ids,
                                       "request_id": 1}))
        frame = await frame_of(socket_, "message", "error")
    assert frame["type"] == "message", frame
    return frame["message"]


async def test_a_member_downloads_a_sent_file_and_a_non_member_cannot(clients):
    fay, fin, fox = clients["fay"], clients["fin"], clients["fox"]
    status, answer = fay.upload(f"/chat/{PRIVATE}/uploads/", "report 2026.pdf", b"%PDF-1.4\nsecret", "text/html")
    assert status == 201, answer
    assert {key: answer[key] for key in ("name", "size", "content_type", "width", "thumbnail_url")} == {
        "name": "report_2026.pdf", "size": 15, "content_type": "application/pdf", "width": None, "thumbnail_url": None,
    }
    # Before it is sent, it is its uploader's alone.
    assert fin.fetch(answer["url"])[0] == 404
    message = await send_with(fay, PRIVATE, [answer["id"]])
    assert message["body"] == "" and message["attachments"] == [answer]
    status, headers, body = fin.fetch(answer["url"])
    assert status == 200 and body == b"%PDF-1.4\nsecret"
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == 'attachment; filename="report_2026.pdf"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert "private" in headers["Cache-Control"]
    for outsider in (fox, WebClient(fay.base_url)):
        status, _, body = outsider.fetch(answer["url"])
        assert status == 404 and b"secret" not in body
    # Another name for the same id is no way in either.
    assert fin.fetch(f"/files/{answer['id']}/other.pdf")[0] == 404


def test_a_non_member_cannot_upload_to_a_private_room(clients, env):
    status, answer = clients["fox"].upload(f"/chat/{PRIVATE}/uploads/", "x.txt", b"hi")
    assert status == 404 and answer["error"] == "not_found"
    status, answer = clients["fox"].upload(f"/chat/{PUBLIC}/uploads/", "x.txt", b"hi")
    assert status == 403 and answer["detail"] == "Only members of the room may upload to it."


def test_an_upload_without_the_csrf_token_is_refused(clients):
    fay = clients["fay"]
    body = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhi\r\n--x--\r\n'
    status, _, answer = fay.fetch(f"/chat/{PUBLIC}/uploads/", body, {"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 403 and b"CSRF" in answer


@pytest.mark.parametrize("filename, data, refusal", [
    ("bomb.png", hostile_files.png_bomb(), "The image is refused: image is larger than 40 megapixels."),
    ("half.jpg", hostile_files.cut_off(hostile_files.jpeg(300, 300)), "The image is refused: the image is broken or cut off."),
    ("tool.exe", b"MZ\x90\x00" + bytes(200), "Files of this type (application/x-msdownload) are not allowed."),
    ("big.txt", b"a" * 2_000_001, "The file is larger than 1.91 MB."),
])
def test_hostile_uploads_are_refused_with_the_reason(clients, filename, data, refusal):
    status, answer = clients["fay"].upload(f"/chat/{PUBLIC}/uploads/", filename, data, "image/png")
    assert status in (400, 413) and answer["detail"] == refusal


async def test_html_svg_and_polyglots_come_back_inert(clients):
    fay, fin = clients["fay"], clients["fin"]
    uploads = {}
    for filename, data in (("page.html", hostile_files.HTML), ("logo.svg", hostile_files.SVG),
                           ("cat.png", hostile_files.polyglot())):
        status, uploads[filename] = fay.upload(f"/chat/{PRIVATE}/uploads/", filename, data, "text/html")
        assert status == 201, uploads[filename]
    await send_with(fay, PRIVATE, [answer["id"] for answer in uploads.values()], body="three files")
    for filename in ("page.html", "logo.svg"):
        status, headers, body = fin.fetch(uploads[filename]["url"])
        assert status == 200 and b"<script>" in body  # the file itself, only ever as text to save
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["Content-Disposition"].startswith("attachment;")
        assert headers["X-Content-Type-Options"] == "nosniff"
    picture = uploads["cat.png"]
    assert (picture["width"], picture["height"], picture["content_type"]) == (64, 48, "image/png")
    for url in (picture["url"], picture["thumbnail_url"]):
        status, headers, body = fin.fetch(url)
        assert status == 200 and body.startswith(b"\x89PNG") and b"<script" not in body and b"html" not in body
        assert headers["Content-Type"] == "image/png" and headers["Content-Disposition"].startswith("inline;")


def test_a_traversing_name_with_control_characters_is_made_safe(clients, env):
    status, answer = clients["fay"].upload(f"/chat/{PUBLIC}/uploads/", "../../../etc/pass\x1bwd\x7f.txt", b"hi")
    assert status == 201 and answer["name"] == "passwd.txt"
    assert answer["url"] == f"/files/{answer['id']}/passwd.txt"
    _, files = stored(env)
    assert all(path.startswith("attachments/") and "passwd" not in path for path in files)


def test_an_upload_cut_off_half_way_stores_nothing(clients, env, server):
    fay = clients["fay"]
    before = stored(env)
    boundary = "cut"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.txt"\r\n\r\n'.encode()
            + b"x" * 200_000 + f"\r\n--{boundary}--\r\n".encode())
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in fay.cookies)
    head = (
        f"POST /chat/{PUBLIC}/uploads/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nCookie: {cookies}\r\n"
        f"X-CSRFToken: {fay.cookie('csrftoken')}\r\nOrigin: {server}\r\n\r\n"
    ).encode()
    port = urllib.parse.urlsplit(server).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(head + body[: len(body) // 2])
    # A whole upload after it is stored: the cut one, ahead of it on the same server, left nothing behind.
    status, answer = fay.upload(f"/chat/{PUBLIC}/uploads/", "whole.txt", b"whole")
    assert status == 201
    rows, files = stored(env)
    assert rows == before[0] + [("whole.txt", "text/plain", None)]
    assert len(files) == len(before[1]) + 1


async def test_a_message_cannot_take_someone_elses_upload(clients):
    fay, fin = clients["fay"], clients["fin"]
    _, theirs = fay.upload(f"/chat/{PRIVATE}/uploads/", "mine.txt", b"mine")
    async with fin.socket() as socket_:
        await frame_of(socket_, "hello")
        await socket_.send(json.dumps({"type": "subscribe", "room": PRIVATE}))
        await frame_of(socket_, "subscribed")
        await socket_.send(json.dumps({"type": "send", "room": PRIVATE, "body": "", "attachments": [theirs["id"]],
                                       "client_id": "steal", "request_id": 7}))
        error = await frame_of(socket_, "error", "message")
        await socket_.send(json.dumps({"type": "send", "room": PRIVATE, "body": "", "request_id": 8}))
        empty = await frame_of(socket_, "error", "message")
        await asyncio.sleep(0)
    assert error["type"] == "error" and error["code"] == "invalid" and error["request_id"] == 7
    assert error["detail"] == "Attach only files you uploaded to this room." and error["client_id"] == "steal"
    assert empty["type"] == "error" and empty["code"] == "empty"


@pytest.fixture(scope="module")
def remote(tmp_path_factory, env):
    """Start a daphne whose storage is remote (chat/tests/remote_storage.py); yield its base URL."""
    remote_env = {**env, "CHAT_FILES_STORAGE": "chat.tests.remote_storage.SignedStorage", "CHAT_FILES_URL_EXPIRY": "120"}
    with daphne_serving(tmp_path_factory.mktemp("remote"), env=remote_env) as url:
        yield url


async def test_remote_storage_redirects_a_member_to_a_signed_expiring_url(remote):
    fay, fin, fox = (WebClient(remote).login(name) for name in ("fay", "fin", "fox"))
    status, answer = fay.upload(f"/chat/{PRIVATE}/uploads/", "notes.txt", b"remote notes")
    assert status == 201, answer
    await send_with(fay, PRIVATE, [answer["id"]])
    status, headers, _ = fin.fetch(answer["url"])
    assert status == 302 and headers["Cache-Control"] == "private, no-store"
    location = urllib.parse.urlsplit(headers["Location"])
    query = urllib.parse.parse_qs(location.query)
    assert location.netloc == "files.example.test" and location.path.startswith("/attachments/")
    assert query == {
        "expire": ["120"], "ResponseContentType": ["text/plain; charset=utf-8"],
        "ResponseContentDisposition": ['attachment; filename="notes.txt"'],
    }
    assert fox.fetch(answer["url"])[0] == 404
