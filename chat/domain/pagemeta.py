"""Read a page's preview from its HTML: Open Graph's title, description and image, else its <title> and description.

The stdlib's html.parser is enough for a page's meta tags: it never
fetches, runs or resolves anything, and copes with broken markup.
"""
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

MAX_TITLE = 200
MAX_DESCRIPTION = 300
# Properties read, the first found of each kind winning over the later ones in this order.
TITLES = ("og:title", "twitter:title")
DESCRIPTIONS = ("og:description", "twitter:description", "description")
IMAGES = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image")


class _MetaParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.meta = {}
        self.title = []
        self.in_title = False
        self.done = False

    def handle_starttag(self, tag, attrs):
        values = {name: value or "" for name, value in attrs}
        if tag == "meta":
            key = (values.get("property") or values.get("name") or "").strip().lower()
            if key and "content" in values:
                self.meta.setdefault(key, values["content"])
        elif tag == "title" and not self.title:
            self.in_title = True
        elif tag == "body":
            self.done = True  # meta tags belong in the head: the body is not read

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False

    def handle_data(self, data):
        if self.in_title:
            self.title.append(data)


def _clean(text, limit):
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _first(meta, keys):
    return next((meta[key] for key in keys if meta.get(key, "").strip()), "")


def page_meta(html, url):
    """Return {title, description, image_url} read from the HTML text of the page at `url` (image_url absolute or "")."""
    parser = _MetaParser()
    # Fed in slices so that the body, which can be most of the page, is left unread once it starts.
    for start in range(0, len(html), 16384):
        parser.feed(html[start:start + 16384])
        if parser.done:
            break
    meta = parser.meta
    image = _first(meta, IMAGES).strip()
    image_url = urljoin(url, image) if image else ""
    if urlsplit(image_url).scheme not in ("http", "https"):
        image_url = ""
    return {
        "title": _clean(_first(meta, TITLES) or "".join(parser.title), MAX_TITLE),
        "description": _clean(_first(meta, DESCRIPTIONS), MAX_DESCRIPTION),
        "image_url": image_url,
    }
