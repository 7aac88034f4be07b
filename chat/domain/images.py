"""Raster images re-encoded with Pillow: whatever rode along in the original (a script, an HTML page) is left behind.

Shared by uploads (chat.domain.attachments) and link previews. image_reencode is
synchronous and CPU-bound: callers run it in a worker thread, never on the event loop.
"""
import io
from dataclasses import dataclass

import PIL.Image
import PIL.ImageOps
from django.conf import settings

# Formats decoded at all; anything else (SVG, PSD, TIFF, EPS ...) is refused before it is read.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
# What each is written back as: GIF becomes PNG (first frame only), the rest stay what they were.
_OUTPUT = {"PNG": "PNG", "JPEG": "JPEG", "GIF": "PNG", "WEBP": "WEBP"}
_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# The types of FORMATS: what image_reencode takes in.
DECODED_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class ImageRefused(ValueError):
    """An image that is not decoded: the message says why (too many pixels, not a raster image, broken)."""


@dataclass(frozen=True)
class Image:
    data: bytes
    width: int
    height: int
    content_type: str


def image_reencode(data: bytes, *, max_side: int | None = None, max_pixels: int | None = None) -> Image:
    """Return `data` decoded and written anew (at most `max_side` on its longer side); raise ImageRefused if not."""
    # Read when called, not when imported, so that a changed setting (a test's override) holds.
    max_pixels = settings.CHAT_IMAGE_MAX_PIXELS if max_pixels is None else max_pixels
    try:
        source = PIL.Image.open(io.BytesIO(data), formats=FORMATS)
    except PIL.Image.DecompressionBombError as error:
        raise ImageRefused(f"image is larger than {max_pixels / 1e6:g} megapixels") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRefused("not an image this server decodes (PNG, JPEG, GIF or WebP)") from error
    with source:
        # Checked from the header, before a single pixel is decompressed: a bomb is a small file with huge sides.
        if source.width * source.height > max_pixels:
            raise ImageRefused(f"image is larger than {max_pixels / 1e6:g} megapixels")
        output = _OUTPUT[source.format]
        try:
            source.load()
            image = PIL.ImageOps.exif_transpose(source)
        except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
            raise ImageRefused("the image is broken or cut off") from error
        if max_side is not None:
            image.thumbnail((max_side, max_side))
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        if output == "JPEG" or not has_alpha:
            image = image.convert("RGB")
        else:
            image = image.convert("RGBA")
        buffer = io.BytesIO()
        # No metadata is carried over: EXIF (location), ICC and text chunks stay behind with any payload.
        image.save(buffer, format=output, **({"quality": 85} if output in ("JPEG", "WEBP") else {"optimize": True}))
        return Image(data=buffer.getvalue(), width=image.width, height=image.height, content_type=_CONTENT_TYPES[output])
