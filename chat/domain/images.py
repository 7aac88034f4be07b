"""Re-encode untrusted images: decoded by Pillow within a pixel budget, written again as a fresh PNG or JPEG.

Nothing of the original file reaches a reader: not its metadata, not a
polyglot's other half, only the pixels, drawn again. Sync and CPU-bound:
callers run it in a worker thread.
"""
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

# Raster formats a browser shows; anything else (SVG, PDF, PSD...) is refused before it is decoded.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
JPEG_QUALITY = 85


class ImageRefused(ValueError):
    """The input is not an image this server will re-encode; the message says why."""


@dataclass(frozen=True)
class Image:
    data: bytes
    width: int
    height: int
    content_type: str


def image_reencode(data: bytes, *, max_side: int | None = None,
                   max_pixels: int = settings.CHAT_IMAGE_MAX_PIXELS) -> Image:
    """Return `data` decoded and re-encoded (scaled to `max_side` if given); ImageRefused for anything else."""
    try:
        with warnings.catch_warnings():
            # Pillow warns past half its own bomb limit and raises past it; ours is the only one that counts.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=FORMATS) as source:
                width, height = source.size
                if width * height > max_pixels:
                    raise ImageRefused(f"The image has more than {max_pixels} pixels.")
                source.load()
                picture = ImageOps.exif_transpose(source)
    except ImageRefused:
        raise
    except (UnidentifiedImageError, PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as error:
        raise ImageRefused(f"Not an image this server takes: {error}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageRefused(f"The image could not be decoded: {error}") from None
    opaque = picture.mode in ("RGB", "L", "CMYK", "YCbCr")
    out = io.BytesIO()
    try:
        if max_side:
            picture.thumbnail((max_side, max_side))
        if opaque:
            picture.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY)
        else:
            picture.convert("RGBA").save(out, "PNG", optimize=True)
    except (OSError, ValueError) as error:  # a mode that does not convert (16-bit and the like)
        raise ImageRefused(f"The image could not be re-encoded: {error}") from None
    return Image(out.getvalue(), picture.width, picture.height, "image/jpeg" if opaque else "image/png")
