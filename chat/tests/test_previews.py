"""Link previews: what a page gives, the cache, storing and removing them as changes, and the images' re-encoding."""
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from PIL import Image as PILImage

from chat.domain import events, images, pagemeta, previews, selectors, services
from chat.domain.models import LinkPreview, Message, Room
from chat.tests.pagesite import allowed_site, guarded  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.usefixtures("guarded")]


def test_a_page_gives_open_graph_first_then_its_title():
    html = (
        '<head><title>Title</title><meta name="description" content="Plain"><meta property="og:title" content=" OG '
        ' title "><meta property="og:image" content="img/a.png"></head><body><meta property="og:title" content="x">'
    )
    assert pagemeta.page_meta(html, "https://site.test/dir/page") == {
        "title": "OG title", "description": "Plain", "image_url": "https://site.test/dir/img/a.png",
    }
    fallback = pagemeta.page_meta("<title>Only &amp; this</title><meta property='og:image' content='javascript:x'>",
                                  "https://site.test/")
    assert fallback == {"title": "Only & this", "description": "", "image_url": ""}
    long = pagemeta.page_meta(f"<title>{'word ' * 100}</title>", "https://site.test/")["title"]
    assert len(long) == pagemeta.MAX_TITLE and long.endswith("…")


def test_the_first_three_links_get_previews_in_order_once_each():
    body = "a https://one.test/ b [two](http://two.test/x) `https://code.test/` https://one.test/ c.com d.com e.com"
    assert previews.preview_urls(body) == ("https://one.test/", "http://two.test/x", "http://c.com")
    assert previews.preview_urls("no links here") == ()


def test_a_preview_is_built_from_open_graph_with_the_image_re_encoded(allowed_site):
    preview = previews.preview_fetch(allowed_site.base + "/page")
    assert (preview["title"], preview["description"]) == ("The OG title", "What the page says")
    image = preview["image"]
    assert (image.width, image.height, image.content_type) == (400, 300, "image/png")
    assert image.data != allowed_site.picture
    assert PILImage.open(io.BytesIO(image.data)).size == (400, 300)


def test_a_page_without_open_graph_is_previewed_by_its_title(allowed_site):
    preview = previews.preview_fetch(allowed_site.base + "/title-only")
    assert preview == {"url": allowed_site.base + "/title-only", "title": "Only a title", "description": "", "image": None}


def test_a_refused_link_has_no_preview(allowed_site, settings):
    settings.CHAT_PREVIEW_ALLOWED_NETWORKS = []
    assert previews.preview_fetch(allowed_site.base + "/page") is None
    assert previews.preview_fetch(allowed_site.base + "/json") is None


def test_a_popular_link_is_fetched_once_for_many_messages(allowed_site):
    before = allowed_site.hits["/popular"]
    body = f"see {allowed_site.base}/popular"
    first, second = previews.previews_fetch(body), previews.previews_fetch(body + " again")
    assert first == second and first[0]["title"] == "The OG title"
    assert allowed_site.hits["/popular"] - before == 1


@pytest.fixture
def message(make_user):
    alice = make_user("alice")
    room, _ = services.room_create(slug="lobby", user=alice)
    message, _ = services.message_create(room=room, author=alice, body="https://a.test/ and https://b.test/")
    return message


def fetched(url, image=None):
    return {"url": url, "title": f"Title of {url}", "description": "", "image": image}


def test_previews_are_added_as_the_rooms_next_change_and_replayed_by_the_change_feed(message, sent):
    picture = images.image_reencode(_png(), max_side=50)
    after = message.cseq
    previews.previews_add(message_id=message.id, previews=[fetched("https://a.test/", picture), fetched("https://b.test/")])
    stored = Message.objects.get(pk=message.id)
    assert stored.cseq == after + 1
    [first_id] = LinkPreview.objects.filter(url="https://a.test/").values_list("id", flat=True)
    assert stored.previews == [
        {"url": "https://a.test/", "title": "Title of https://a.test/", "description": "",
         "image": f"/chat/lobby/previews/{first_id}/image"},
        {"url": "https://b.test/", "title": "Title of https://b.test/", "description": "", "image": None},
    ]
    assert sent[-1] == (events.MESSAGE_PREVIEWS, {"id": message.id, "seq": message.seq, "cseq": after + 1,
                                                   "previews": stored.previews})
    [change], _ = selectors.change_list(room=message.room, after=after)
    assert events.message_data(change)["previews"] == stored.previews
    assert previews.preview_image(room=message.room, preview_id=first_id) == (picture.data, picture.content_type)


def _png():
    out = io.BytesIO()
    PILImage.new("RGB", (100, 80), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


def test_only_the_author_removes_a_preview_and_only_one_there_is(message, make_user):
    previews.previews_add(message_id=message.id, previews=[fetched("https://a.test/"), fetched("https://b.test/")])
    before = Message.objects.get(pk=message.id)
    with pytest.raises(PermissionDenied, match="Only the author"):
        previews.preview_remove(room=message.room, actor=make_user("bob"), message_id=message.id, url="https://a.test/")
    with pytest.raises(ValidationError, match="no preview of that link"):
        previews.preview_remove(room=message.room, actor=message.author, message_id=message.id, url="https://c.test/")
    unchanged = Message.objects.get(pk=message.id)
    assert (unchanged.cseq, unchanged.previews) == (before.cseq, before.previews)
    previews.preview_remove(room=message.room, actor=message.author, message_id=message.id, url="https://a.test/")
    after = Message.objects.get(pk=message.id)
    assert after.cseq == before.cseq + 1 and [p["url"] for p in after.previews] == ["https://b.test/"]


def test_an_edit_drops_the_previews_of_links_it_took_out_and_a_removed_one_stays_removed(message):
    previews.previews_add(message_id=message.id, previews=[fetched("https://a.test/"), fetched("https://b.test/")])
    previews.preview_remove(room=message.room, actor=message.author, message_id=message.id, url="https://b.test/")
    services.message_edit(room=message.room, actor=message.author, message_id=message.id,
                          body="now https://c.test/ and https://b.test/")
    before = Message.objects.get(pk=message.id).cseq
    # Fetched for the body as it was: a.test's preview is stale, b.test's was removed, c.test's is new.
    changed = previews.previews_add(message_id=message.id, previews=[
        fetched("https://a.test/"), fetched("https://b.test/"), fetched("https://c.test/"),
    ])
    assert changed.cseq == before + 1
    assert [p["url"] for p in Message.objects.get(pk=message.id).previews] == ["https://c.test/"]
    assert previews.previews_add(message_id=message.id, previews=[fetched("https://c.test/")]) is None
    with pytest.raises(ValidationError):
        previews.preview_remove(room=message.room, actor=message.author, message_id=message.id, url="https://b.test/")


def test_a_deleted_message_or_an_archived_room_takes_no_previews(message):
    services.message_delete(room=message.room, actor=message.author, message_id=message.id)
    assert previews.previews_add(message_id=message.id, previews=[fetched("https://a.test/")]) is None
    other, _ = services.message_create(room=message.room, author=message.author, body="https://a.test/")
    Room.objects.filter(pk=message.room_id).update(archived_at="2026-12-06T00:00:00Z")
    assert previews.previews_add(message_id=other.id, previews=[fetched("https://a.test/")]) is None
    assert not LinkPreview.objects.exists()


def test_a_new_or_edited_message_with_links_starts_its_previews_after_commit_when_enabled(make_user, settings, monkeypatch):
    from chat.realtime import broadcast

    started = []
    monkeypatch.setattr(broadcast, "previews_fetch_on_commit", lambda *args: started.append(args))
    alice = make_user("alice")
    room, _ = services.room_create(slug="lobby", user=alice)
    settings.CHAT_PREVIEWS_ENABLED = True
    linked, _ = services.message_create(room=room, author=alice, body="see https://a.test/")
    services.message_create(room=room, author=alice, body="no link")
    services.message_edit(room=room, actor=alice, message_id=linked.id, body="now https://c.test/")
    settings.CHAT_PREVIEWS_ENABLED = False
    services.message_create(room=room, author=alice, body="https://b.test/")
    assert started == [(linked.id, "see https://a.test/"), (linked.id, "now https://c.test/")]


def test_image_reencode_keeps_transparency_as_png():
    out = io.BytesIO()
    PILImage.new("RGBA", (20, 10), (0, 0, 0, 0)).save(out, "PNG")
    image = images.image_reencode(out.getvalue())
    assert (image.width, image.height, image.content_type) == (20, 10, "image/png")
