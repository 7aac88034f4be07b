"""A small website on a real local socket for the link-preview tests: pages, redirects, and misbehaving answers."""
import collections
import contextlib
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

PAGE = (
    b'<html><head><title>Plain title</title><meta property="og:title" content="The OG title">'
    b'<meta property="og:description" content="What the page says">'
    b'<meta property="og:image" content="/picture.png"></head><body><p>Hello</p></body></html>'
)
TITLE_ONLY = b"<html><head><title>  Only a\n title </title></head><body>x</body></html>"


def picture_png():
    """Return a PNG larger than a thumbnail, so that the re-encoding shows in its size."""
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


class Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host):
        super().__init__((host, 0), Handler)
        self.hits = collections.Counter()
        self.picture = picture_png()

    def handle_error(self, request, client_address):
        pass  # a client that gave up (the point of several tests) breaks the pipe: not worth a traceback

    @property
    def base(self):
        return f"http://{self.server_address[0]}:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body, content_type="text/html; charset=utf-8", status=200, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location):
        self.answer(b"", status=302, headers=[("Location", location)])

    def do_GET(self):
        path, _, query = self.path.partition("?")
        self.server.hits[path] += 1
        port = self.server.server_address[1]
        if path in ("/page", "/popular"):
            self.answer(PAGE)
        elif path == "/title-only":
            self.answer(TITLE_ONLY, "application/xhtml+xml")
        elif path == "/picture.png":
            self.answer(self.server.picture, "image/png")
        elif path == "/to-loopback":
            self.redirect(f"http://127.0.0.1:{port}/page")
        elif path == "/to-metadata":
            self.redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/to-page":
            self.redirect("/page")
        elif path == "/loop":
            self.redirect(f"/loop?{int(query or 0) + 1}")
        elif path == "/slow":
            time.sleep(3)
            self.answer(PAGE)
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        elif path == "/huge":
            # No Content-Length: only counting the bytes as they come can stop it.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(PAGE[:-14] + b"x" * (3 * 1024 * 1024))
        elif path == "/json":
            self.answer(b'{"title": "not html"}', "application/json")
        else:
            self.answer(b"no such page", "text/plain", status=404)


@contextlib.contextmanager
def site(host="127.0.0.1"):
    """Serve the site on `host` and a free port in a thread; yield it, and stop it whatever happens."""
    server = Site(host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def allowed_site():
    """A site on 127.0.0.2, the one address `guarded` allows; 127.0.0.1 stays refused."""
    with site("127.0.0.2") as server:
        yield server


@pytest.fixture
def guarded(settings):
    """Allow previews to fetch from 127.0.0.2 only, quickly; nothing cached from another test."""
    from django.core.cache import cache

    settings.CHAT_PREVIEW_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    settings.CHAT_PREVIEW_TIMEOUT = 1.0
    settings.CHAT_PREVIEW_MAX_BYTES = 1024 * 1024
    cache.clear()
    yield
    cache.clear()
