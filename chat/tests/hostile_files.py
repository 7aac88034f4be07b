"""Files made to attack an upload: each is built here, small, so that every test can send the same ones."""
import io
import struct
import zlib

import PIL.Image

SCRIPT = b"<script>alert(document.cookie)</script>"
HTML = b"<!doctype html><html><body>" + SCRIPT + b"</body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'


def png(width=64, height=48, color=(200, 40, 40)):
    """Return an ordinary PNG."""
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(width=64, height=48):
    """Return an ordinary JPEG."""
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (width, height), (20, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side=20_000):
    """Return a PNG of side x side black pixels (400 megapixels by default) that is a few dozen kilobytes."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit grey
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def polyglot():
    """Return a valid PNG that is also an HTML page: a script in a text chunk and after the image's end."""
    image = png()
    end = image.rindex(b"IEND") - 4
    text = _chunk(b"tEXt", b"Comment\x00" + HTML)
    return image[:end] + text + image[end:] + HTML


def cut_off(data):
    """Return the first half of `data`."""
    return data[: len(data) // 2]
