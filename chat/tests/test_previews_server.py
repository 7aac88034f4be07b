"""Link previews through a real daphne: fetched after the send, broadcast, replayed on resume, removed, served."""
import json
import urllib.error

import pytest

from chat.tests.pagesite import site
from chat.tests.test_hardening_server import names, serving
from chat.tests.test_v2_server import next_frame
from harness.servers import WebClient, project_env, rooms_create

pytestmark = [pytest.mark.timeout(120)]


def get(client, path):
    """Return (status, Content-Type, body bytes) of a GET by a logged-in WebClient."""
    try:
        with client.opener.open(client.base_url + path, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


async def test_a_link_gets_its_preview_live_on_resume_and_until_its_author_removes_or_edits_it_out(
    tmp_path, live_database
):
    alice, bob = names("alice", "bob")
    [room] = names("previews")
    env = {"CHAT_PREVIEWS_ENABLED": "1", "CHAT_PREVIEW_ALLOWED_NETWORKS": "127.0.0.1/32"}
    with site("127.0.0.1") as pages, serving(tmp_path, live_database, [alice, bob], **env) as (base, _, _):
        rooms_create([room], env=project_env(DATABASE_URL=live_database), by=alice, private=True)
        author = WebClient(base).login(alice)
        async with author.socket() as ws:
            await next_frame(ws, "hello")
            await ws.send(json.dumps({"type": "subscribe", "room": room}))
            seen = (await next_frame(ws, "subscribed"))["cseq"]
            for n in range(2):
                await ws.send(json.dumps({"type": "send", "room": room, "body": f"{n}: {pages.base}/popular"}))
                sent = (await next_frame(ws, "message"))["message"]
                assert sent["previews"] == []
                shown = await next_frame(ws, "message_previews")
                assert (shown["id"], shown["cseq"]) == (sent["id"], sent["cseq"] + 1)
                [preview] = shown["previews"]
                assert (preview["url"], preview["title"]) == (f"{pages.base}/popular", "The OG title")
            # Two messages, one fetch of the page (and one of its image): the cache served the second.
            assert (pages.hits["/popular"], pages.hits["/picture.png"]) == (1, 1)

        status, content_type, image = get(author, preview["image"])
        assert (status, content_type) == (200, "image/png") and image != pages.picture and image[:4] == b"\x89PNG"
        outsider = WebClient(base).login(bob)
        assert get(outsider, preview["image"])[0] == 404

        async with author.socket() as ws:
            await next_frame(ws, "hello")
            await ws.send(json.dumps({"type": "subscribe", "room": room, "after": seen}))
            resumed = await next_frame(ws, "subscribed")
            replayed = [change["message"] for change in resumed["changes"]]
            assert [m["previews"][0]["title"] for m in replayed] == ["The OG title"] * 2
            first = replayed[0]
            await ws.send(json.dumps({"type": "preview_remove", "room": room, "id": first["id"],
                                      "url": "https://elsewhere.test/", "request_id": 1}))
            refused = await next_frame(ws, "error")
            assert (refused["code"], refused["request_id"]) == ("invalid", 1)
            await ws.send(json.dumps({"type": "preview_remove", "room": room, "id": first["id"],
                                      "url": first["previews"][0]["url"], "request_id": 2}))
            removed = await next_frame(ws, "message_previews")
            assert (removed["id"], removed["previews"], removed["cseq"]) == (first["id"], [], resumed["cseq"] + 1)
            assert (await next_frame(ws, "ack"))["request_id"] == 2
            # An edit that takes the link out takes its preview too.
            second = replayed[1]
            await ws.send(json.dumps({"type": "edit", "room": room, "id": second["id"], "body": "no link now"}))
            edited = (await next_frame(ws, "message_edited"))["message"]
            dropped = await next_frame(ws, "message_previews")
            assert (dropped["id"], dropped["previews"], dropped["cseq"]) == (second["id"], [], edited["cseq"] + 1)
