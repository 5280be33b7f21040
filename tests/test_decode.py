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
