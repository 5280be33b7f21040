"""The screenshot query view of :mod:`modbot.fingerprint` on real images (the 12 PACS images in
``tests/data/pacs_sample``, see its README for their source and rights), the popcount helpers,
and the stored format (unchanged by the query-only views)."""
from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from modbot import fingerprint as fpm
from modbot.fingerprint import Fingerprint
from modbot.fingerprint_index import FingerprintIndex, brute_force_query

SAMPLE = Path(__file__).parent / "data" / "pacs_sample"
FILES = sorted(p for p in SAMPLE.rglob("*") if p.suffix in (".jpg", ".png"))


def app_frame(im: Image.Image, dark: bool) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``im`` (3x upscaled) inside a Reddit-app-like screenshot: a title bar, a header with an
    avatar and the user name, a footer with buttons' text and a side panel; JPEG 85. Returns
    the screenshot and the picture's box (left, top, right, bottom) in it."""
    im = im.resize((im.width * 3, im.height * 3), Image.Resampling.BICUBIC)
    w, h = im.size
    bg, fg = ((26, 26, 27), (215, 218, 220)) if dark else ((255, 255, 255), (28, 28, 28))
    bar = tuple(min(255, v + 18) if dark else v - 18 for v in bg)
    top, head, foot, ml = 40, 50, 60, 30
    W, H = w + 2 * ml + 200, top + head + h + foot
    canvas = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, W, top), fill=bar)
    font = ImageFont.load_default(size=22)
    d.text((ml, 8), "r/Art  sketchbook", font=font, fill=fg)
    d.ellipse((ml, top + 10, ml + 30, top + 40), fill=(255, 69, 0))
    d.text((ml + 40, top + 14), "u/someone · 5h", font=font, fill=fg)
    canvas.paste(im, (ml, top + head))
    d.text((ml, top + head + h + 15), "12.3k  Comments  Share", font=font, fill=fg)
    for k in range(4):
        d.rectangle((ml + w + 40, top + head + k * h // 4 + 5, W - 10,
                     top + head + (k + 1) * h // 4 - 5), fill=bar)
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=85)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), (ml, top + head, ml + w, top + head + h)


def _without_extra(fp: Fingerprint) -> Fingerprint:
    """The same query with only the stored kind of query views (whole, content; mirrored)."""
    q = fpm.N_QUERY_VIEWS
    return Fingerprint(fp.fine, fp.coarse, fp.mirror_fine[:q * 32], fp.mirror_coarse[:q * 8])


@pytest.fixture(scope="module")
def sample_index() -> FingerprintIndex:
    assert len(FILES) == 12
    index = FingerprintIndex()
    for k, p in enumerate(FILES):
        with Image.open(p) as im:
            index.add(k, fpm.fingerprint(im.convert("RGB")))
    return index


def test_screenshot_in_a_dark_app_frame_matches_its_original(sample_index):
    found = found_without = 0
    for k, p in enumerate(FILES):
        with Image.open(p) as im:
            shot, _ = app_frame(im.convert("RGB"), dark=True)
        q = fpm.fingerprint(shot)
        assert len(q.extra_fine) == 32  # the screenshot view differs from the content view
        ms = sample_index.query(q)
        found += bool(ms) and ms[0].item_id == k and not ms[0].mirrored
        found_without += any(m.item_id == k for m in sample_index.query(_without_extra(q)))
    assert found == 12
    assert found_without <= 3  # the caption rows defeat the content box: the new view matters


def test_screenshot_in_a_white_app_frame_matches_its_original(sample_index):
    """Photos and paintings have edges unlike a white frame; the white-background cartoons and
    sketches do not (a known limit: nothing tells their edge from the frame's)."""
    found = found_without = 0
    for k, p in enumerate(FILES):
        if p.parent.name not in ("painting", "photography"):
            continue
        with Image.open(p) as im:
            shot, _ = app_frame(im.convert("RGB"), dark=False)
        q = fpm.fingerprint(shot)
        ms = sample_index.query(q)
        found += bool(ms) and ms[0].item_id == k
        found_without += any(m.item_id == k for m in sample_index.query(_without_extra(q)))
    assert found >= 5 and found_without <= 1


def test_screen_box_finds_the_picture_in_a_dark_frame():
    for p in FILES:
        with Image.open(p) as im:
            shot, (left, top, right, bottom) = app_frame(im.convert("RGB"), dark=True)
        a = fpm._grey_work(shot)
        fy, fx = a.shape[0] / shot.height, a.shape[1] / shot.width
        t, b, l, r = fpm.screen_box(a)
        true = (top * fy, bottom * fy, left * fx, right * fx)
        assert max(abs(x - y) for x, y in zip((t, b, l, r), true, strict=True)) <= 2.5, p


def test_screen_box_leaves_plain_pictures_alone():
    rng = np.random.default_rng(1)
    a = rng.random((96, 128)).astype(np.float32) * 255
    assert fpm.screen_box(a) == (0, 96, 0, 128)
    framed = np.full((120, 150), 30, np.float32)
    framed[10:106, 11:139] = a  # a uniform border and nothing else: the content box as it is
    assert fpm.screen_box(framed) == fpm.content_box(framed) == (10, 106, 11, 139)
    line_drawing = np.full((100, 100), 255, np.float32)
    line_drawing[20:80, 30] = line_drawing[20, 30:70] = 0  # sparse: no caption cutting
    assert fpm.screen_box(line_drawing) == fpm.content_box(line_drawing)


def test_stored_format_is_unchanged_by_query_only_views():
    with Image.open(FILES[6]) as im:
        shot, _ = app_frame(im.convert("RGB"), dark=True)
    fp = fpm.fingerprint(shot)
    blob = fp.to_blob()
    assert len(blob) == fpm.BLOB_BYTES == 802 and blob[0] == fpm.FINGERPRINT_VERSION == 1
    back = Fingerprint.from_blob(blob)
    assert back.extra_fine == b"" and back.mirror_fine == b""
    qf, qc, qm = fp.query_views()
    assert qf.shape == (6, 32) and qc.shape == (6, 8) and qm.tolist() == [False] * 3 + [True] * 3
    with pytest.raises(fpm.FingerprintError):
        Fingerprint(fp.fine, fp.coarse, extra_fine=b"\x00" * 31, extra_coarse=b"\x00" * 8)


def test_index_equals_brute_force_with_screenshot_views():
    rng = random.Random(4)
    stored = []
    for k, p in enumerate(FILES):
        with Image.open(p) as im:
            stored.append((k, fpm.fingerprint(im.convert("RGB"))))
    index = FingerprintIndex()
    for k, fp in stored:
        index.add(k, fp)
    for k, p in enumerate(FILES):
        with Image.open(p) as im:
            shot, _ = app_frame(im.convert("RGB"), dark=rng.random() < 0.5)
        q = fpm.fingerprint(shot)
        for T, R in ((fpm.DEFAULT_MAX_DISTANCE, fpm.COARSE_RADIUS), (100, 24)):
            assert index.query(q, max_distance=T, coarse_radius=R) == \
                brute_force_query(stored, q, max_distance=T, coarse_radius=R)


def test_popcount_and_hamming_with_and_without_bitwise_count(monkeypatch):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (7, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 32), dtype=np.uint8)
    expected = [sum((x ^ y).bit_count() for x, y in zip(ra, rb, strict=True))
                for ra, rb in zip(a.tolist(), b.tolist(), strict=True)]
    words = fpm.as_words(a)
    assert words.shape == (7, 4) and words.dtype == np.uint64
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(fpm, "_BITWISE_COUNT", None)
        assert fpm.hamming(a, b).tolist() == expected
        assert fpm.hamming(fpm.as_words(a), fpm.as_words(b)).tolist() == expected
        assert fpm.popcount(np.array([0, 1, 2**64 - 1], np.uint64)).tolist() == [0, 1, 64]


def _flip(rng: np.random.Generator, codes: np.ndarray, k: int) -> np.ndarray:
    """``codes`` (n, B) uint8 with ``k`` random bits flipped in each row."""
    bits = np.unpackbits(codes, axis=1)
    for row in bits:
        row[rng.choice(len(row), k, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def _fp(fine: np.ndarray, coarse: np.ndarray) -> Fingerprint:
    return Fingerprint(fine.tobytes(), coarse.tobytes())


def test_near_twin_margin_drops_a_much_further_match():
    rng = np.random.default_rng(8)
    V = fpm.N_VIEWS
    fine = rng.integers(0, 256, (V, 32), dtype=np.uint8)
    coarse = rng.integers(0, 256, (V, 8), dtype=np.uint8)
    twin = _fp(_flip(rng, fine, 26), coarse)  # same gate codes, 26 fine bits away
    index = FingerprintIndex()
    index.add(1, _fp(fine, coarse))
    index.add(2, twin)
    q = _fp(_flip(rng, fine, 2), coarse)
    assert [m.item_id for m in index.query(q)] == [1]
    assert [m.item_id for m in index.query(q, margin=None)] == [1, 2]
    assert [m.item_id for m in index.query(q, margin=30)] == [1, 2]
    stored = [(1, _fp(fine, coarse)), (2, twin)]
    assert brute_force_query(stored, q) == index.query(q)
    assert brute_force_query(stored, twin) == index.query(twin)  # the twin itself: 2 is closest
    assert index.query(twin)[0].item_id == 2
    with pytest.raises(fpm.FingerprintError):
        index.query(q, margin=-1)


def test_large_index_switches_to_an_inverted_file_and_keeps_finding_copies():
    rng = np.random.default_rng(9)
    n, V = 6000, fpm.N_VIEWS
    fine = rng.integers(0, 256, (n, V, 32), dtype=np.uint8)
    coarse = rng.integers(0, 256, (n, V, 8), dtype=np.uint8)
    blobs = [bytes([fpm.FINGERPRINT_VERSION, V]) + fine[k].tobytes() + coarse[k].tobytes()
             for k in range(n)]
    index = FingerprintIndex(ivf_min=5000)
    index.add_blobs((k, blobs[k]) for k in range(1500))
    assert index.gate_kind == "flat"
    index.add_blobs((k, blobs[k]) for k in range(1500, 5500))  # crosses ivf_min: trains
    assert index.gate_kind == "ivf" and index.n_gate_codes == 16500  # 3 distinct gate views
    for k in range(5500, n):  # one by one after the switch
        index.add(k, Fingerprint.from_blob(blobs[k]))
    stored = [(k, Fingerprint.from_blob(b)) for k, b in enumerate(blobs)]
    found = 0
    picks = rng.choice(n, 60, replace=False)
    for k in picks:
        q = _fp(_flip(rng, fine[k][:2], 6), _flip(rng, coarse[k][:2], 4))
        got = index.query(q)
        assert set(got) <= set(brute_force_query(stored, q))  # approximate: never more
        found += [m.item_id for m in got] == [int(k)]
    assert found >= 57  # 6 of 256 fine bits, 4 of 64 coarse: the IVF probes its list
