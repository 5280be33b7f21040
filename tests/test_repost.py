"""Pure functions of the repost finder (``modbot.fingerprint``, ``modbot.fingerprint_index``,
``modbot.repost``) on generated images and random fingerprints; no shared data needed."""
from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from modbot import fingerprint as repost
from modbot.errors import FingerprintError as RepostError
from modbot.errors import ModbotError
from modbot.fingerprint import Fingerprint
from modbot.fingerprint_index import FingerprintIndex, brute_force_query


def make_image(seed: int, size: tuple[int, int] = (320, 256)) -> Image.Image:
    """A painting-like test picture: a gradient with random blurred shapes (seeded)."""
    rng = random.Random(seed)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    c0 = np.array([rng.randint(0, 255) for _ in range(3)])
    c1 = np.array([rng.randint(0, 255) for _ in range(3)])
    base = (c0 * (1 - x) * (1 - y) + c1 * x * y + 60 * np.sin(6 * x + rng.random() * 6)).clip(0, 255)
    im = Image.fromarray(base.astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(25):
        x0, y0 = rng.randint(-40, w), rng.randint(-40, h)
        x1, y1 = x0 + rng.randint(20, w // 2), y0 + rng.randint(20, h // 2)
        fill = tuple(rng.randint(0, 255) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x0, y0, x1, y1), fill=fill)
    return im.filter(ImageFilter.GaussianBlur(1.5))


def jpeg(im: Image.Image, q: int = 70) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def index_and_originals() -> tuple[FingerprintIndex, dict[int, Image.Image]]:
    originals = {k: make_image(k) for k in range(1, 41)}
    index = FingerprintIndex()
    for k, im in originals.items():
        index.add(k, repost.fingerprint(im))
    return index, originals


def _top(index: FingerprintIndex, im: Image.Image) -> list[repost.Match]:
    return index.query(repost.fingerprint(im))


def test_rescaled_recompressed_copy_matches(index_and_originals):
    index, orig = index_and_originals
    copy = jpeg(orig[7].resize((700, 560), Image.BICUBIC), 45)
    ms = _top(index, copy)
    assert ms and ms[0].item_id == 7 and not ms[0].mirrored
    assert [m.item_id for m in ms] == [7]


def test_cropped_copy_matches(index_and_originals):
    index, orig = index_and_originals
    im = orig[11]
    w, h = im.size
    copy = jpeg(im.crop((round(0.07 * w), round(0.02 * h), w - round(0.01 * w), h - round(0.06 * h))))
    ms = _top(index, copy)
    assert [m.item_id for m in ms] == [11]


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (40, 90, 200)])
def test_bordered_and_letterboxed_copies_match(index_and_originals, colour):
    index, orig = index_and_originals
    im = orig[19]
    w, h = im.size
    border = Image.new("RGB", (w + 2 * 40, h + 2 * 30), colour)
    border.paste(im, (40, 30))
    letter = Image.new("RGB", (w, w), colour)
    letter.paste(im, (0, (w - h) // 2))
    for copy in (border, letter):
        ms = _top(index, jpeg(copy, 85))
        assert [m.item_id for m in ms] == [19]


def test_mirrored_copy_is_reported_as_mirrored(index_and_originals):
    index, orig = index_and_originals
    ms = _top(index, jpeg(orig[23].transpose(Image.FLIP_LEFT_RIGHT)))
    assert [(m.item_id, m.mirrored) for m in ms] == [(23, True)]


def test_different_image_does_not_match(index_and_originals):
    index, _ = index_and_originals
    for seed in range(100, 110):
        assert _top(index, make_image(seed)) == []


def test_distance_and_similarity():
    a = repost.fingerprint(make_image(1))
    b = repost.fingerprint(jpeg(make_image(1).resize((500, 400))))
    c = repost.fingerprint(make_image(2))
    assert repost.distance(a, a) == 0 and repost.similarity(a, a) == 1.0
    assert repost.distance(b, a) <= 20
    assert repost.distance(c, a) >= 90
    assert 0.0 <= repost.similarity(c, a) < repost.similarity(b, a)


def _dct2_fft(x: np.ndarray) -> np.ndarray:
    """Unnormalised DCT-II along axis 0 by the FFT (Makhoul): an independent reference."""
    n = x.shape[0]
    v = np.concatenate([x, x[::-1]], axis=0)
    k = np.arange(n)[:, None]
    return np.real(np.exp(-1j * np.pi * k / (2 * n)) * np.fft.fft(v, axis=0)[:n])


def test_dct_block_is_phash_recipe():
    """_dct64 == the DCT-II of the view box-averaged to 64x64 (exact for multiples of 64)."""
    x = np.random.default_rng(0).random((128, 192)) * 255
    small = x.reshape(64, 2, 64, 3).mean(axis=(1, 3))
    ref = _dct2_fft(_dct2_fft(small).T).T[:16, :16]
    np.testing.assert_allclose(repost._dct64(x), ref, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("shape", [(128, 85), (85, 128), (64, 64), (9, 200), (8, 8), (37, 41)])
def test_one_product_gives_every_window_dct(shape):
    """The content and window DCT blocks from one stacked product equal _dct64 of each crop
    window that _windows lists (the stored views 1..19, in order)."""
    c = np.random.default_rng(sum(shape)).random(shape).astype(np.float32) * 255
    views = [c] + [c[y0:y1, x0:x1] for y0, y1, x0, x1 in repost._windows(*shape)]
    expected = np.stack([repost._dct64(v) for v in views])
    got = repost._content_and_window_dcts(c)
    assert got.shape == (1 + 9 * len(repost.WINDOW_SCALES), 16, 16)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)


def _blob_reference(mask: np.ndarray):
    """Largest 8-connected component's box by flood fill (first in raster order on ties)."""
    h, w = mask.shape
    seen = np.zeros_like(mask, bool)
    best = None
    for y in range(h):
        for x in range(w):
            if not mask[y, x] or seen[y, x]:
                continue
            stack, pix = [(y, x)], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                pix.append((cy, cx))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            ys, xs = [p[0] for p in pix], [p[1] for p in pix]
            if best is None or len(pix) > best[0]:
                best = (len(pix), (min(ys), max(ys) + 1, min(xs), max(xs) + 1))
    return None if best is None else best[1]


def test_largest_blob_equals_flood_fill():
    rng = np.random.default_rng(3)
    for _ in range(300):
        mask = rng.random((int(rng.integers(1, 25)), int(rng.integers(1, 25)))) < rng.random()
        assert repost.largest_blob(mask) == _blob_reference(mask)


def test_fingerprint_shape_and_mirror_keys():
    fp = repost.fingerprint(make_image(3).convert("RGBA"))
    assert fp.n_views == repost.N_VIEWS
    assert len(fp.fine) == repost.N_VIEWS * 32 and len(fp.coarse) == repost.N_VIEWS * 8
    assert len(fp.mirror_fine) == repost.N_QUERY_VIEWS * 32
    flipped = repost.fingerprint(make_image(3).transpose(Image.FLIP_LEFT_RIGHT))
    assert flipped.hash == fp.mirror_fine[:32]  # the flip trick equals hashing the flipped image


def _random_fp(rng: np.random.Generator, base: Fingerprint | None = None, flips: int = 0) -> Fingerprint:
    """Random fingerprint, or ``base`` with ``flips`` random bits flipped in every hash."""
    def bytes_(n: int, src: bytes | None) -> bytes:
        if src is None:
            return rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        bits = np.unpackbits(np.frombuffer(src, np.uint8))
        idx = rng.choice(len(bits), size=min(flips, len(bits)), replace=False)
        bits[idx] ^= 1
        return np.packbits(bits).tobytes()

    V, Q = repost.N_VIEWS, repost.N_QUERY_VIEWS
    return Fingerprint(
        fine=bytes_(V * 32, base and base.fine), coarse=bytes_(V * 8, base and base.coarse),
        mirror_fine=bytes_(Q * 32, base and (base.mirror_fine or None)),
        mirror_coarse=bytes_(Q * 8, base and (base.mirror_coarse or None)))


def test_index_equals_brute_force_on_random_data():
    rng = np.random.default_rng(5)
    stored = [(int(k), _random_fp(rng)) for k in rng.choice(10**9, 400, replace=False)]
    # coarse codes crowd into few values so that the gate lets many candidates through
    index = FingerprintIndex()
    for k, fp in stored:
        index.add(k, fp)
    queries = [_random_fp(rng, stored[int(i)][1], flips=int(f))
               for i, f in zip(rng.integers(0, len(stored), 60), rng.integers(0, 6, 60))]
    queries += [_random_fp(rng) for _ in range(20)]
    found = 0
    for q in queries:
        for T, R in ((repost.DEFAULT_MAX_DISTANCE, repost.COARSE_RADIUS), (130, 30), (256, 64)):
            got = index.query(q, max_distance=T, coarse_radius=R)
            assert got == brute_force_query(stored, q, max_distance=T, coarse_radius=R)
            found += len(got)
    assert found > 60


def test_blob_round_trip_and_bulk_add():
    fps = {k: repost.fingerprint(make_image(k)) for k in range(1, 6)}
    index = FingerprintIndex()
    assert index.add_blobs((k, fp.to_blob()) for k, fp in fps.items()) == 5
    assert len(index) == 5 and 3 in index
    back = Fingerprint.from_blob(fps[3].to_blob())
    assert (back.fine, back.coarse) == (fps[3].fine, fps[3].coarse)
    assert len(fps[3].to_blob()) == repost.BLOB_BYTES == 802
    q = repost.fingerprint(jpeg(make_image(3).resize((400, 320))))
    assert [m.item_id for m in index.query(q)] == [3]
    live = FingerprintIndex()
    for k, fp in fps.items():
        live.add(k, fp)
    assert live.query(q) == index.query(q)
    index.add(99, repost.fingerprint(make_image(99)))  # incremental add after the bulk add
    assert [m.item_id for m in index.query(repost.fingerprint(make_image(99)))] == [99]


def test_errors():
    with pytest.raises(RepostError):
        repost.fingerprint("not an image")  # type: ignore[arg-type]
    with pytest.raises(RepostError):
        repost.fingerprint(Image.new("RGB", (4, 4)))
    with pytest.raises(RepostError):
        Fingerprint.from_blob(b"\x01")
    with pytest.raises(RepostError):
        Fingerprint.from_blob(bytes([99, 1]) + bytes(40))
    fp = repost.fingerprint(make_image(1))
    index = FingerprintIndex()
    index.add(1, fp)
    with pytest.raises(RepostError):
        index.add(1, fp)
    with pytest.raises(RepostError):
        index.add("1", fp)  # type: ignore[arg-type]
    with pytest.raises(RepostError):
        index.query(fp, max_distance=300)
    with pytest.raises(RepostError):
        index.add_blobs([(2, b"\x01\x02junk")])
    assert issubclass(RepostError, ModbotError)


def test_uniform_image_does_not_crash():
    fp = repost.fingerprint(Image.new("RGB", (200, 100), (128, 128, 128)))
    assert fp.n_views == repost.N_VIEWS


# --- the stage's pure parts: kinds, artist field, report text, config ---------------------------
def _earlier(author, artist, created_utc=1_000_000.0):
    from modbot.repost import Earlier

    return Earlier(1, "t3_old", "old", 0, "daemon", author, artist, created_utc, "/r/Art/comments/old/x/")


def test_repost_kinds():
    from modbot.repost import repost_kind

    day = 86400.0
    t0 = 1_000_000.0
    # the same author (u/ and case ignored) within the window; an older own repost is allowed
    assert repost_kind("Alice", _earlier("alice", None), t0 + 29 * day, 30) == "same_author"
    assert repost_kind("alice", _earlier("u/Alice", None), t0 + 31 * day, 30) is None
    # someone else: the earlier poster said it is theirs ("me", or their own name) -> known original
    assert repost_kind("bob", _earlier("alice", "me"), t0 + day, 30) == "known_original"
    assert repost_kind("bob", _earlier("alice", "u/alice"), t0 + day, 30) == "known_original"
    assert repost_kind("bob", _earlier("alice", "Jane Doe"), t0 + day, 30) == "other_author"
    assert repost_kind("bob", _earlier("alice", None), t0 + 400 * day, 30) == "other_author"
    # a deleted account is nobody's "same author"
    assert repost_kind(None, _earlier(None, None), t0 + day, 30) == "other_author"


def test_artist_field_of_rart_titles():
    from modbot.medium import artist_field, is_self_reference

    assert artist_field("Dusk, Jane Doe, oil on canvas, 2020") == "Jane Doe"
    assert artist_field("Marahan, Ink, Me, 2020") == "Me"
    assert artist_field("Dusk, oil, 2020") is None
    assert artist_field("untitled") is None
    assert is_self_reference("by me") and not is_self_reference("Jane Doe")


def test_report_text_links_the_original_and_fits_reddits_limit():
    from modbot.domain import Post
    from modbot.repost import RepostFinding, RepostMatch, report_text

    post = Post("new", "t3_new", "Art", "T" * 300, "bob", "/r/Art/comments/new/x/", "", 2e6, None, {})
    finding = RepostFinding("t3_new", (RepostMatch(0, _earlier("alice", "me"), 12, False,
                                                   "known_original"),))
    text = report_text("modbot repost ({kind}): {original_link} u/{original_author} "
                       "{original_date}", post, finding)
    assert text == "modbot repost (known_original): https://redd.it/old u/alice 1970-01-12"
    long = report_text("{title}", post, finding)
    assert len(long) == 100 and long.endswith("…")


@pytest.mark.parametrize("bad", [{"max_distance": 300}, {"window_days": 0}, {"report": "loud"},
                                 {"report_kinds": ["stolen"]}, {"report_template": "{nope}"}])
def test_reposts_config_is_validated(bad):
    from modbot.config import Config
    from modbot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[reposts\]"):
        Config().replace(reposts=bad)
