"""Name this build of the page and protocol, so that an open page can tell that a deploy changed them."""
import hashlib
from functools import cache
from pathlib import Path

from django.conf import settings

from chat.realtime import protocol

# What an open page runs: its scripts, styles and templates, and the protocol it speaks.
SOURCES = ("static", "templates")


@cache
def build_id():
    """Return a short hash of the protocol version and every file the page is made of."""
    digest = hashlib.sha256(f"protocol {protocol.VERSION}".encode())
    for folder in SOURCES:
        root = Path(settings.BASE_DIR) / folder
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
