"""Link previews: the first links of a message, fetched by the server after it is stored, added as a change.

Fetching is slow and runs outside any transaction (chat.realtime.previews
schedules it once the message commits); storing is quick. A preview is
cached by URL for CHAT_PREVIEW_CACHE_SECONDS, so that a popular link is
fetched once per process and cache, not once per message.
"""
import hashlib
import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse

from chat.domain import events, images, markup, pagemeta, sequences
from chat.domain.models import LinkPreview, Message
from chat.platform import safefetch

MAX_PREVIEWS = 3
# A card's thumbnail: small enough to keep in the row, large enough for a 2x screen's card.
IMAGE_MAX_SIDE = 400
HTML_TYPES = ("text/html", "application/xhtml+xml")
CACHE_PREFIX = "chat:preview:"

logger = logging.getLogger(__name__)


def preview_urls(body):
    """Return the links of a body that get a preview: its first MAX_PREVIEWS http and https links."""
    return markup.links(body)[:MAX_PREVIEWS]


def preview_fetch(url):
    """Return the preview of `url` ({url, title, description, image}), cached; None when it has none. Blocks."""
    key = CACHE_PREFIX + hashlib.sha256(url.encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached or None
    try:
        preview = _preview_build(url)
    except safefetch.FetchRefused as refusal:
        # The host only: a link in a private room is the room's business, not the logs'.
        logger.info("No preview of a link to %s: %s", urlsplit(url).hostname, refusal)
        preview = None
    # A refusal is cached too: a link that cannot be previewed is not tried again for every message.
    cache.set(key, preview or {}, settings.CHAT_PREVIEW_CACHE_SECONDS)
    return preview


def _preview_build(url):
    page = safefetch.fetch(url, types=HTML_TYPES)
    try:
        text = page.body.decode(page.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = page.body.decode("utf-8", errors="replace")
    meta = pagemeta.page_meta(text, page.url)
    if not meta["title"] and not meta["description"]:
        return None
    image = None
    if meta["image_url"]:
        try:
            picture = safefetch.fetch(meta["image_url"], types=images.DECODED_TYPES)
            image = images.image_reencode(picture.body, max_side=IMAGE_MAX_SIDE)
        except (safefetch.FetchRefused, images.ImageRefused) as refusal:
            logger.info("No preview image for a link to %s: %s", urlsplit(url).hostname, refusal)
    return {"url": url, "title": meta["title"], "description": meta["description"], "image": image}


def previews_fetch(body):
    """Return the previews of a message body's links, fetched (or cached) one after the other. Blocks."""
    found = (preview_fetch(url) for url in preview_urls(body))
    return [preview for preview in found if preview]


@transaction.atomic
def previews_add(*, message_id, previews):
    """Bring a message's previews in line with its links as they are now and announce it; None when nothing changed.

    `previews` were fetched for the body as it was (an edit may have come
    since): those of links it no longer has are left out, and the stored
    previews of links an edit took out are dropped. A link whose preview its
    author removed keeps none.
    """
    message = Message.objects.select_for_update().select_related("room").filter(pk=message_id).first()
    if message is None or message.is_deleted or message.room.is_archived:
        return None
    links = preview_urls(message.body)
    stale, _ = message.link_previews.exclude(url__in=links).delete()
    known = set(message.link_previews.values_list("url", flat=True))
    added = [preview for preview in previews if preview["url"] in links and preview["url"] not in known]
    for preview in added:
        image = preview["image"]
        LinkPreview.objects.create(
            message=message, url=preview["url"], position=links.index(preview["url"]), title=preview["title"],
            description=preview["description"], image=image.data if image else None,
            image_type=image.content_type if image else "",
        )
    if not stale and not added:
        return None
    _previews_changed(message)
    return message


@transaction.atomic
def preview_remove(*, room, actor, message_id, url):
    """Take the preview of `url` off a message; only its author may, and only a preview it has."""
    message = Message.objects.select_for_update().select_related("room").get(
        room=room, pk=message_id, is_deleted=False,
    )
    if message.author_id != actor.pk:
        raise PermissionDenied("Only the author may remove a message's previews.")
    # The row stays, marked, so that an edit that keeps the link does not bring its preview back.
    removed = LinkPreview.objects.filter(message=message, url=url, removed=False).update(
        removed=True, image=None, image_type="",
    )
    if not removed:
        raise ValidationError("This message has no preview of that link.", code="no_preview")
    _previews_changed(message)
    return message


def preview_image(*, room, preview_id):
    """Return (bytes, content type) of a preview's image in `room`; ObjectDoesNotExist when it has none."""
    preview = LinkPreview.objects.only("image", "image_type").get(
        pk=preview_id, message__room=room, message__is_deleted=False, image__isnull=False,
    )
    return bytes(preview.image), preview.image_type


def _previews_changed(message):
    """Rebuild a locked message's preview summary, give it the room's next change number and announce it."""
    message.previews = [
        {
            "url": preview.url, "title": preview.title, "description": preview.description,
            "image": reverse("chat:preview_image", args=[message.room.slug, preview.pk]) if preview.image_type else None,
        }
        for preview in message.link_previews.filter(removed=False).order_by("position", "id").defer("image")
    ]
    message.cseq = sequences.next_cseq(message.room_id)
    message.save(update_fields=["previews", "cseq"])
    events.message_previews(message)
