"""chat/domain/images.py: what Pillow writes anew is a plain image, and what it will not decode is refused."""
import io
import time

import PIL.Image
import pytest

from chat.domain.images import ImageRefused, image_reencode
from chat.tests import hostile_files


def decoded(image):
    return PIL.Image.open(io.BytesIO(image.data))


def test_an_image_is_written_anew_with_its_sides():
    image = image_reencode(hostile_files.png(640, 480))
    assert (image.width, image.height, image.content_type) == (640, 480, "image/png")
    assert decoded(image).size == (640, 480)
    assert image_reencode(hostile_files.jpeg()).content_type == "image/jpeg"


def test_max_side_makes_a_thumbnail_that_keeps_the_shape():
    image = image_reencode(hostile_files.png(1000, 250), max_side=400)
    assert (image.width, image.height) == (400, 100)
    assert decoded(image).size == (400, 100)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding():
    bomb = hostile_files.png_bomb()
    assert len(bomb) < 200_000  # 400 megapixels in a small file
    started = time.perf_counter()
    with pytest.raises(ImageRefused, match="larger than 40 megapixels"):
        image_reencode(bomb, max_pixels=40_000_000)
    # Decoding 400 megapixels would take seconds and hundreds of megabytes.
    assert time.perf_counter() - started < 1


def test_an_image_over_the_pixel_limit_is_refused():
    with pytest.raises(ImageRefused, match="larger than 0.003 megapixels"):
        image_reencode(hostile_files.png(64, 48), max_pixels=3000)
    assert image_reencode(hostile_files.png(64, 48), max_pixels=64 * 48).width == 64


def test_a_polyglot_loses_its_payload():
    polyglot = hostile_files.polyglot()
    assert hostile_files.SCRIPT in polyglot and PIL.Image.open(io.BytesIO(polyglot)).format == "PNG"
    image = image_reencode(polyglot)
    assert b"<script" not in image.data and b"html" not in image.data.lower()
    assert decoded(image).size == (64, 48)


@pytest.mark.parametrize("data", [hostile_files.SVG, hostile_files.HTML, b"%PDF-1.4\n", b""], ids=["svg", "html", "pdf", "empty"])
def test_what_is_not_a_raster_image_is_refused(data):
    with pytest.raises(ImageRefused, match="not an image"):
        image_reencode(data)


def test_an_image_cut_off_half_way_is_refused():
    with pytest.raises(ImageRefused, match="broken or cut off"):
        image_reencode(hostile_files.cut_off(_noisy_png()))


def _noisy_png():
    # Varied pixels compress badly, so that half the file is half the pixel data.
    buffer = io.BytesIO()
    PIL.Image.frombytes("L", (200, 200), bytes(range(256)) * 156 + bytes(64)).save(buffer, "PNG")
    return buffer.getvalue()
