"""Tests for modbot.decode, the one decoder: its safety policy on real image files."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from support import DATA

from modbot.decode import decode_image, open_image
from modbot.errors import DecompressionBombError, NotAnImageError

IMAGES = DATA / "images"


def test_decompression_bomb_warning_range_is_refused_too(monkeypatch, recwarn):
    data = (IMAGES / "rgb.jpg").read_bytes()  # 32x24 = 768 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 768 is in Pillow's warning band
    with pytest.raises(DecompressionBombError) as info:
        decode_image(data)
    assert isinstance(info.value.__cause__, Image.DecompressionBombWarning)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # 768 > 2x: Pillow's own error
    with pytest.raises(DecompressionBombError):
        decode_image(data)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert decode_image(data)[0].size == (32, 24)


def test_not_allowed_format_is_not_an_image(tmp_path):
    buf = tmp_path / "x.tiff"
    Image.new("RGB", (4, 4)).save(buf)
    with pytest.raises(NotAnImageError):
        decode_image(buf.read_bytes())


def test_min_size_decodes_large_jpegs_at_reduced_scale_but_never_below_it():
    buf = io.BytesIO()
    Image.new("RGB", (1600, 1200), (120, 30, 200)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    full, fmt = decode_image(data)
    reduced, _ = decode_image(data, min_size=(224, 224))
    assert fmt == "JPEG" and full.size == (1600, 1200)
    assert reduced.size == (400, 300)  # 1/4 scale: the smallest libjpeg scale with both sides >= 224
    assert open_image(data, 300).size == (400, 300)  # 1/4: height 300 is still >= 300
    assert open_image(data, 301).size == (800, 600)  # 1/4 would make it 300 < 301: 1/2


def test_max_side_shrinks_right_after_decoding_and_max_pixels_refuses_before():
    """Issue 12 item 8: decoded pixels are bounded whatever the file's size on disk."""
    buf = io.BytesIO()
    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(buf, "JPEG", quality=70)
    jpeg = buf.getvalue()
    rgb, _ = decode_image(jpeg, max_side=1024)
    assert rgb.mode == "RGB" and max(rgb.size) <= 2048 and min(rgb.size) >= 500
    png = io.BytesIO()
    Image.new("I;16", (5000, 3000), 40000).save(png, "PNG")  # 16-bit greyscale
    grey, fmt = decode_image(png.getvalue(), max_side=1000)
    assert fmt == "PNG" and grey.size == (1000, 600) and grey.getpixel((5, 5))[0] == 40000 // 256
    with pytest.raises(DecompressionBombError, match="max_pixels"):
        decode_image(png.getvalue(), max_pixels=10_000_000)
    assert decode_image(jpeg, max_pixels=1_000_000, max_side=700)[0].size == (750, 500)  # 1/8 scale
    with pytest.raises(DecompressionBombError):  # at 1/4 scale it would be 1500x1000
        decode_image(jpeg, max_pixels=1_000_000, max_side=1000)
