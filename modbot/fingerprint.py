"""Perceptual fingerprint of an image (the index over fingerprints: :mod:`modbot.fingerprint_index`).

Pure computation (numpy, Pillow): no SQLite, no Reddit. The index over fingerprints is
:class:`modbot.fingerprint_index.FingerprintIndex`; :mod:`modbot.repost` (the stage) stores
fingerprints and decides what a match means; the recipe's measured quality is in
``bench/repost.py``.

Fingerprint (``FINGERPRINT_VERSION`` 1)
    The image becomes a grey working copy of at most ``WORK_SIZE`` px (long side). *Views* are
    cut from it: ``whole``; ``content`` (uniform borders / letterbox bars trimmed and, when the
    surround is uniform, the largest blob unlike it: a picture inside a screenshot-like frame;
    equal to ``whole`` when there is nothing to trim); and 18 crop windows of ``content`` (90 % and
    95 % of each side at 3 x 3 anchors), stored only, so a copy cropped by up to ~10 % meets one.
    A query also gets a ``screen`` view when it differs from ``content`` (:func:`screen_box`:
    the picture inside an app screenshot, its title bar, captions and side panel cut away by
    empty rows/columns and caption-like edge rows); it is not stored, so the stored format
    (and every database written before it) is unchanged.
    Each view gets two pHashes from one 64x64 DCT-II (imagehash's ``phash`` recipe, with an
    area-averaging downscale done as two small matrix products): ``fine`` 256 bits (16x16 lowest
    frequencies > their median) and ``coarse`` 64 bits (8x8). The mirrored query keys come from
    the same DCT (a horizontal flip negates the odd horizontal frequencies).

Matching
    A stored item matches a query when a query view (whole, content, screen, or their mirrors)
    is within ``COARSE_RADIUS`` coarse bits of the item's whole, content or centred 90 % window
    view (the gate: a faiss binary range search, exhaustive up to ``fingerprint_index.IVF_MIN``
    codes, an inverted file beyond) and within ``max_distance`` fine bits (of 256) of any of its
    20 views; a match more than ``NEAR_TWIN_MARGIN`` bits further than the query's closest one
    is dropped.

Bad input raises :class:`modbot.errors.FingerprintError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from modbot.errors import FingerprintError

FINGERPRINT_VERSION = 1
WORK_SIZE = 128          #: px, long side of the grey working copy
#: px: an image at least twice this long is first sampled at every k-th pixel (k = long side //
#: DECIMATE_TO), so converting and averaging cost little (a decoded 1500 px post: ~0.5 ms
#: instead of ~2.5 ms); recall/precision unchanged on the bench
DECIMATE_TO = 384
FINE_BITS = 256          #: bits per fine hash (16x16 DCT block)
COARSE_BITS = 64         #: bits per coarse hash (8x8 DCT block)
FINE_BYTES = FINE_BITS // 8
COARSE_BYTES = COARSE_BITS // 8
#: fine distance (bits of 256) at or under which two views show the same picture (bench,
#: validation part: 44 gives recall 0.958 / precision 0.995, 48 0.965 / 0.995; see
#: bench/repost.py). ``[reposts] max_distance``.
DEFAULT_MAX_DISTANCE = 44
#: coarse distance (bits of 64) from a query view to a stored gate view for a candidate
#: (validation: 14 -> recall 0.958, 18 -> 0.961 but ~20x the candidates at a million items)
COARSE_RADIUS = 14
#: a match more than this many fine bits further than the query's closest match is dropped
#: as a near-twin (another photo of the same work, a redrawn version): on the bench's
#: validation part it removes ~3/4 of the false matches at no recall cost
NEAR_TWIN_MARGIN = 12
#: screenshot query view (:func:`screen_box`): an edge row/column of a picture in a uniform
#: frame is a caption when under this share of it differs from the frame ...
SCREEN_SPARSE = 0.6
#: ... and only along an axis whose median row/column differs at least this much (a solid
#: picture; a line drawing is left alone). Chosen on the bench's validation part.
SCREEN_DENSE = 0.75
#: a row/column with under this share unlike the frame separates blocks (:func:`screen_box`)
SCREEN_GAP = 0.02
#: crop windows of the content view: these scales of width and height at 3 x 3 anchors.
#: Changing views or hashes means a new FINGERPRINT_VERSION (every image re-fingerprinted).
WINDOW_SCALES = (0.90, 0.95)
N_VIEWS = 2 + 9 * len(WINDOW_SCALES)
#: views 0..N_QUERY_VIEWS-1 (whole, content) are query views (with the screenshot view) and gate
#: views (with the centred 90 % window: ``fingerprint_index.GATE_VIEWS``)
N_QUERY_VIEWS = 2
#: bytes of :meth:`Fingerprint.to_blob` for N_VIEWS views (802)
BLOB_BYTES = 2 + N_VIEWS * (FINE_BYTES + COARSE_BYTES)

_POP = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)
_BITWISE_COUNT = getattr(np, "bitwise_count", None)


@dataclass(frozen=True)
class Fingerprint:
    """Perceptual fingerprint of one image.

    ``fine``: ``n_views * 32`` bytes, the 256-bit pHash of each view (whole, content, windows);
    ``coarse``: ``n_views * 8`` bytes, the 64-bit pHash of each view. ``extra_fine`` /
    ``extra_coarse``: query-only views (0 or 1: the :func:`screen_box` view when it differs from
    the content view); ``mirror_fine`` / ``mirror_coarse``: the same for the flipped query views
    (whole, content, extra). Query-only keys are empty for a fingerprint read back from storage
    (they are not stored). Raises :class:`FingerprintError` for byte lengths that are not whole
    views.
    """

    fine: bytes
    coarse: bytes
    mirror_fine: bytes = b""
    mirror_coarse: bytes = b""
    version: int = FINGERPRINT_VERSION
    extra_fine: bytes = b""
    extra_coarse: bytes = b""

    def __post_init__(self) -> None:
        n = len(self.fine) // FINE_BYTES
        if n < 1 or len(self.fine) != n * FINE_BYTES or len(self.coarse) != n * COARSE_BYTES:
            raise FingerprintError(f"malformed fingerprint: {len(self.fine)} fine / "
                                   f"{len(self.coarse)} coarse bytes")
        for f, c in ((self.mirror_fine, self.mirror_coarse), (self.extra_fine, self.extra_coarse)):
            m = len(f) // FINE_BYTES
            if len(f) != m * FINE_BYTES or len(c) != m * COARSE_BYTES:
                raise FingerprintError("malformed query-only keys")

    @property
    def n_views(self) -> int:
        """Number of stored views (``N_VIEWS`` for this recipe)."""
        return len(self.fine) // FINE_BYTES

    @property
    def hash(self) -> bytes:
        """The 256-bit pHash of the whole image (32 bytes)."""
        return self.fine[:FINE_BYTES]

    def fine_array(self) -> np.ndarray:
        """(n_views, 32) uint8."""
        return np.frombuffer(self.fine, dtype=np.uint8).reshape(-1, FINE_BYTES)

    def coarse_array(self) -> np.ndarray:
        """(n_views, 8) uint8."""
        return np.frombuffer(self.coarse, dtype=np.uint8).reshape(-1, COARSE_BYTES)

    def query_views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fine (q, 32) uint8, coarse (q, 8) uint8, mirrored (q,) bool) for a lookup: the whole
        and content views, the extra (screenshot) view, then their mirrors; q is 2 to 6."""
        nq = min(N_QUERY_VIEWS, self.n_views)
        f, c = [self.fine_array()[:nq]], [self.coarse_array()[:nq]]
        mir = [np.zeros(nq, bool)]
        if self.extra_fine:
            ef = np.frombuffer(self.extra_fine, dtype=np.uint8).reshape(-1, FINE_BYTES)
            f.append(ef)
            c.append(np.frombuffer(self.extra_coarse, dtype=np.uint8).reshape(-1, COARSE_BYTES))
            mir.append(np.zeros(len(ef), bool))
        if self.mirror_fine:
            mf = np.frombuffer(self.mirror_fine, dtype=np.uint8).reshape(-1, FINE_BYTES)
            f.append(mf)
            c.append(np.frombuffer(self.mirror_coarse, dtype=np.uint8).reshape(-1, COARSE_BYTES))
            mir.append(np.ones(len(mf), bool))
        return np.concatenate(f), np.concatenate(c), np.concatenate(mir)

    def to_blob(self) -> bytes:
        """SQLite BLOB: version byte, view-count byte, fine bytes, coarse bytes (802 bytes for
        20 views; mirror keys are not stored)."""
        return bytes([self.version, self.n_views]) + self.fine + self.coarse

    @classmethod
    def from_blob(cls, blob: bytes | bytearray | memoryview) -> Fingerprint:
        """Inverse of :meth:`to_blob`. Raises :class:`FingerprintError` on a malformed or
        other-version blob (re-fingerprint such images)."""
        if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < 2:
            raise FingerprintError("fingerprint blob too short")
        blob = bytes(blob)
        version, n = blob[0], blob[1]
        if version != FINGERPRINT_VERSION:
            raise FingerprintError(f"fingerprint version {version}, expected {FINGERPRINT_VERSION}")
        if len(blob) != 2 + n * (FINE_BYTES + COARSE_BYTES):
            raise FingerprintError(f"fingerprint blob of {len(blob)} bytes for {n} views")
        return cls(fine=blob[2:2 + n * FINE_BYTES], coarse=blob[2 + n * FINE_BYTES:], version=version)


@dataclass(frozen=True)
class Match:
    """One stored item found by :meth:`FingerprintIndex.query`: ``distance`` in fine bits
    (0..256) of the best view pair; ``mirrored``: only the query's flipped views matched."""

    item_id: int
    distance: int
    mirrored: bool

    @property
    def similarity(self) -> float:
        """``1 - distance / 256``, in [0, 1]."""
        return 1.0 - self.distance / FINE_BITS


# --- fingerprint ------------------------------------------------------------------------------
def _grey_work(image: Image.Image) -> np.ndarray:
    """(h, w) float32 grey working copy, long side <= WORK_SIZE; alpha composited onto white."""
    if not isinstance(image, Image.Image):
        raise FingerprintError(f"not a PIL image: {type(image).__name__}")
    w, h = image.size
    if w < 8 or h < 8:
        raise FingerprintError(f"image too small to fingerprint: {w}x{h}")
    step = max(w, h) // DECIMATE_TO
    if step >= 2:  # every step-th pixel first: the box reduce below still averages
        w, h = max(8, w // step), max(8, h // step)
        image = image.resize((w, h), Image.Resampling.NEAREST)
    if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    grey = image.convert("L")
    f = WORK_SIZE / max(w, h)
    if f < 1:
        k = int(1 / f / 1.5)  # integer pre-reduction (fast box filter), then bilinear to size
        if k >= 2:
            grey = grey.reduce(k)
        grey = grey.resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.float32)


def _runs(flags: np.ndarray) -> tuple[int, int]:
    """(first index not flagged, one past the last index not flagged); (0, 0) if all are."""
    idx = np.flatnonzero(~flags)
    if len(idx) == 0:
        return 0, 0
    return int(idx[0]), int(idx[-1]) + 1


def _median(a: np.ndarray, axis: int) -> np.ndarray:
    """``numpy.median(a, axis=axis, keepdims=True)`` for a 2-D float array, without its generic
    overhead (~60 µs a call; a fingerprint makes ~8 such calls): a partition and the middle one
    or two values, averaged as numpy does."""
    n = a.shape[axis]
    k = n // 2
    if n % 2:
        return np.take(np.partition(a, k, axis=axis), [k], axis=axis)
    part = np.partition(a, (k - 1, k), axis=axis)
    return np.mean(np.take(part, [k - 1, k], axis=axis), axis=axis, keepdims=True)


def _median1(v: np.ndarray) -> np.floating:
    """``numpy.median(v)`` of a 1-D array (same value and dtype), via :func:`_median`."""
    return _median(v[None, :], axis=1)[0, 0]


def _any_edge_uniform(a: np.ndarray, tol: float, frac: float) -> bool:
    """Whether any of the first/last row and column of ``a`` would be trimmed by
    :func:`_side_trim` (the same test on just those four lines: the first pass trims nothing
    when none is)."""
    rows = a[[0, -1], :]
    cols = a[:, [0, -1]].T
    r = (np.abs(rows - _median(rows[:, ::4], axis=1)) <= tol).mean(1) >= frac
    c = (np.abs(cols - _median(cols[:, ::4], axis=1)) <= tol).mean(1) >= frac
    return bool(r.any() or c.any())


def _side_trim(a: np.ndarray, tol: float = 10, frac: float = 0.97,
               min_keep: float = 0.25) -> tuple[int, int, int, int]:
    """Box (t, b, l, r) of ``a`` after removing near-uniform rows/columns (>= ``frac`` of the
    pixels within ``tol`` grey levels of the line's median) from each side, repeatedly."""
    h, w = a.shape
    t, b, l, r = 0, h, 0, w
    if not _any_edge_uniform(a, tol, frac):
        return t, b, l, r  # the common case: nothing to trim, known from the four edge lines
    for _ in range(4):
        sub = a[t:b, l:r]
        rows = (np.abs(sub - _median(sub[:, ::4], axis=1)) <= tol).mean(1) >= frac
        cols = (np.abs(sub - _median(sub[::4, :], axis=0)) <= tol).mean(0) >= frac
        lo, hi = _runs(rows)
        lo2, hi2 = _runs(cols)
        changed = False
        if (lo or hi < len(rows)) and hi - lo >= min_keep * h:
            t, b, changed = t + lo, t + hi, True
        if (lo2 or hi2 < len(cols)) and hi2 - lo2 >= min_keep * w:
            l, r, changed = l + lo2, l + hi2, True
        if not changed:
            break
    return t, b, l, r


def _run_table(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of True in a 2-D bool mask: (row, start, end) int arrays, end exclusive,
    sorted by row then start."""
    h = mask.shape[0]
    padded = np.zeros((h, mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rs, cs = np.nonzero(d == 1)
    _, ce = np.nonzero(d == -1)
    return rs, cs, ce


def _touching_runs(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (k, j) of runs where run j, in the row above run k, touches it (8-connectivity:
    ``ends[j] >= starts[k]`` and ``starts[j] <= ends[k]``), found for all rows at once by
    searching row-offset positions."""
    stride = width + 2
    start_key, end_key = rows * stride + starts, rows * stride + ends
    above = (rows - 1) * stride
    lo = np.searchsorted(end_key, above + starts, side="left")
    hi = np.searchsorted(start_key, above + ends, side="right")
    counts = np.where(rows > 0, np.maximum(hi - lo, 0), 0)
    k = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return k, np.repeat(lo, counts) + offsets


def largest_blob(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (y0, y1, x0, x1), ends exclusive, of the largest 8-connected component of
    a 2-D bool mask, or None when it has no True pixel. Ties go to the component whose first
    pixel comes first in raster order (as ``scipy.ndimage.label`` numbers them).

    Components of horizontal runs: each run takes the smallest label among the runs it
    touches (with pointer jumping) until nothing changes; a component's label is then its
    first run in raster order."""
    rows, starts, ends = _run_table(mask)
    n = len(rows)
    if n == 0:
        return None
    a, b = _touching_runs(rows, starts, ends, mask.shape[1])
    label = np.arange(n)
    while len(a):
        new = label.copy()
        low = np.minimum(label[a], label[b])
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new[new]]
        if np.array_equal(new, label):
            break
        label = new
    size = np.bincount(label, weights=ends - starts, minlength=n)
    best = int(np.argmax(size))  # labels are first runs in raster order: first max wins ties
    sel = label == best
    return (int(rows[sel].min()), int(rows[sel].max()) + 1,
            int(starts[sel].min()), int(ends[sel].max()))


def _blob_box(a: np.ndarray, tol: float = 14) -> tuple[int, int, int, int] | None:
    """Box of the largest 8-connected blob unlike a uniform surround (the median of the border
    ring, when >= 60 % of the ring is within ``tol`` of it), or None."""
    h, w = a.shape
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = _median1(ring)
    if (np.abs(ring - bg) <= tol).mean() < 0.6:
        return None
    box = largest_blob(np.abs(a - bg) > tol)
    if box is None or (box[1] - box[0]) < 0.2 * h or (box[3] - box[2]) < 0.2 * w:
        return None
    return box


def content_box(a: np.ndarray, iterations: int = 3) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the picture inside borders / a frame of the grey (h, w)
    array ``a`` (ends exclusive; the whole array when there is nothing to trim)."""
    t, b, l, r = 0, a.shape[0], 0, a.shape[1]
    for _ in range(iterations):
        t2, b2, l2, r2 = _side_trim(a[t:b, l:r])
        t, b, l, r = t + t2, t + b2, l + l2, l + r2
        box = _blob_box(a[t:b, l:r])
        if box is None or box == (0, b - t, 0, r - l):
            break
        y0, y1, x0, x1 = box
        t, b, l, r = t + y0, t + y1, l + x0, l + x1
    return t, b, l, r


def _edge_cut(d: np.ndarray, cap: int) -> int:
    """How many leading entries of a density profile ``d`` (share of each row or column unlike
    the surround) to cut, at most ``cap``: up to the last nearly empty one (a gap between a
    caption and the picture), then while under ``SCREEN_SPARSE`` (a caption's text)."""
    empty = np.flatnonzero(d[:cap] < 0.05)
    k = int(empty[-1]) + 1 if len(empty) else 0
    while k < cap and d[k] < SCREEN_SPARSE:
        k += 1
    return k


def _dense_core(mask: np.ndarray, cap: float = 0.3) -> tuple[int, int, int, int]:
    """Box (y0, y1, x0, x1), ends exclusive, of a 2-D bool mask (True: unlike the surround)
    after cutting caption-like edge rows and columns (:func:`_edge_cut`, at most ``cap`` of
    each side), only along an axis whose median row (column) is at least ``SCREEN_DENSE`` True:
    a solid picture, not a line drawing."""
    h, w = mask.shape
    y0, y1, x0, x1 = 0, h, 0, w
    for _ in range(2):
        before = (y0, y1, x0, x1)
        rows = mask[y0:y1, x0:x1].mean(1)
        if _median1(rows) >= SCREEN_DENSE:
            y0, y1 = y0 + _edge_cut(rows, int(cap * h)), y1 - _edge_cut(rows[::-1], int(cap * h))
        cols = mask[y0:y1, x0:x1].mean(0)
        if y1 > y0 and _median1(cols) >= SCREEN_DENSE:
            x0, x1 = x0 + _edge_cut(cols, int(cap * w)), x1 - _edge_cut(cols[::-1], int(cap * w))
        if (y0, y1, x0, x1) == before or y1 - y0 < 8 or x1 - x0 < 8:
            break
    if y1 - y0 < 8 or x1 - x0 < 8:
        return 0, h, 0, w
    return y0, y1, x0, x1


def _heaviest_run(mass: np.ndarray, gap: float) -> tuple[int, int]:
    """(start, end) of the run of entries of ``mass`` over ``gap`` with the largest sum (the
    first on ties); (0, len) when no entry is over ``gap``."""
    flags = np.concatenate([[False], mass > gap, [False]])
    d = np.diff(flags.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    if len(starts) == 0:
        return 0, len(mass)
    c = np.concatenate([[0.0], np.cumsum(mass, dtype=np.float64)])
    k = int(np.argmax(c[ends] - c[starts]))
    return int(starts[k]), int(ends[k])


def _xy_cut(mask: np.ndarray, rounds: int = 3) -> tuple[int, int, int, int]:
    """Box (y0, y1, x0, x1) of the heaviest block of a 2-D bool mask that empty rows and
    columns (under ``SCREEN_GAP`` True) cut apart, alternately along each axis."""
    h, w = mask.shape
    y0, y1, x0, x1 = 0, h, 0, w
    for _ in range(rounds):
        before = (y0, y1, x0, x1)
        a, b = _heaviest_run(mask[y0:y1, x0:x1].sum(1), SCREEN_GAP * (x1 - x0))
        y0, y1 = y0 + a, y0 + b
        a, b = _heaviest_run(mask[y0:y1, x0:x1].sum(0), SCREEN_GAP * (y1 - y0))
        x0, x1 = x0 + a, x0 + b
        if (y0, y1, x0, x1) == before:
            break
    return y0, y1, x0, x1


def screen_box(a: np.ndarray, box: tuple[int, int, int, int] | None = None,
               tol: float = 14) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), ends exclusive, of the picture inside a screenshot-like frame
    of the grey (h, w) float32 array ``a`` (0-255; a query view only; ``box``: its :func:`content_box`, computed
    when None).

    When the image's outer ring is mostly (>= 40 %) one grey level (within ``tol``), the frame:
    the heaviest block of pixels unlike it that empty rows/columns separate (:func:`_xy_cut`:
    title bars, captions and side panels fall away), less caption-like edge rows/columns
    (:func:`_dense_core`). Else, when the part outside ``box`` is a uniform surround, ``box``
    less caption-like edge rows/columns. Else ``box``."""
    h, w = a.shape
    box = content_box(a) if box is None else box
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = float(_median1(ring))
    if (np.abs(ring - bg) <= tol).mean() >= 0.4:
        mask = np.abs(a - bg) > tol
        y0, y1, x0, x1 = _xy_cut(mask)
        if y1 - y0 >= 0.2 * h and x1 - x0 >= 0.2 * w:
            c0, c1, d0, d1 = _dense_core(mask[y0:y1, x0:x1])
            return y0 + c0, y0 + c1, x0 + d0, x0 + d1
    t, b, l, r = box
    if (t, b, l, r) == (0, h, 0, w):
        return box
    outside = np.ones(a.shape, bool)
    outside[t:b, l:r] = False
    vals = a[outside]
    bg = float(_median1(vals))
    if (np.abs(vals - bg) <= tol).mean() < 0.6:
        return box
    y0, y1, x0, x1 = _dense_core(np.abs(a[t:b, l:r] - bg) > tol)
    return t + y0, t + y1, l + x0, l + x1


def _windows(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) of the crop windows of an h x w view: each of ``WINDOW_SCALES``
    at 3 x 3 anchors (top/middle/bottom x left/centre/right)."""
    ys, xs = _anchors(h)[1:], _anchors(w)[1:]
    return [(*ys[3 * si + oy], *xs[3 * si + ox])
            for si in range(len(WINDOW_SCALES)) for oy in range(3) for ox in range(3)]


_ODD = (-1.0) ** np.arange(16)  # a horizontal flip negates the odd horizontal DCT frequencies
#: rows 0..15 of the unnormalised 64-point DCT-II: X[k] = 2 sum_n x[n] cos(pi k (2n+1) / 128)
_DCT16 = 2 * np.cos(np.pi * np.arange(16)[:, None] * (2 * np.arange(64)[None, :] + 1) / 128)


@lru_cache(maxsize=1024)
def _proj(n: int) -> np.ndarray:
    """(16, n) float64: area-average resampling of n samples to 64, then the 16 lowest DCT-II
    rows; ``_proj(h) @ view @ _proj(w).T`` is the (16, 16) low-frequency DCT block of the view
    resized to 64x64 with a box filter."""
    edges = np.arange(65) * n / 64
    r = np.zeros((64, n))
    for i in range(64):
        a, b = edges[i], edges[i + 1]
        for j in range(int(a), min(n, int(np.ceil(b)))):
            r[i, j] = min(b, j + 1) - max(a, j)
        r[i] /= b - a
    out = _DCT16 @ r
    out.setflags(write=False)
    return out


def _dct64(view: np.ndarray) -> np.ndarray:
    """(16, 16) low-frequency block of the 64x64 DCT-II of a grey (h, w) view."""
    return _proj(view.shape[0]) @ view @ _proj(view.shape[1]).T


def _anchors(n: int) -> list[tuple[int, int]]:
    """(start, end) along one axis of length n of the whole axis, then of each of
    ``WINDOW_SCALES`` at the 3 anchors (start, middle, end), in :func:`_windows`' order."""
    out = [(0, n)]
    for s in WINDOW_SCALES:
        m = round(n * s)
        out += [(round((n - m) * o), round((n - m) * o) + m) for o in (0.0, 0.5, 1.0)]
    return out


@lru_cache(maxsize=1024)
def _stacked_proj(n: int) -> np.ndarray:
    """(16 * (1 + 3 * len(WINDOW_SCALES)), n) float64: :func:`_proj` of each span of
    :func:`_anchors` (n), zero outside it. ``_stacked_proj(h) @ c @ _stacked_proj(w).T`` holds,
    as 16x16 blocks, the DCT block of ``c`` and of every crop window of ``c``
    (:func:`_content_and_window_dcts` multiplies only the blocks it needs: 4 products for the
    19 views instead of 19 pairs, ~0.1 ms less per image)."""
    spans = _anchors(n)
    out = np.zeros((16 * len(spans), n))
    for i, (a, b) in enumerate(spans):
        out[16 * i:16 * i + 16, a:b] = _proj(b - a)
    out.setflags(write=False)
    return out


def _content_and_window_dcts(c: np.ndarray) -> np.ndarray:
    """(1 + 9 * len(WINDOW_SCALES), 16, 16): the DCT blocks of the content view ``c`` (h, w)
    and of its crop windows (:func:`_windows` order), equal to :func:`_dct64` of each view up
    to float rounding."""
    rows = _stacked_proj(c.shape[0]) @ c  # (16 * (1 + 3 * scales), w)
    cols = _stacked_proj(c.shape[1])
    blocks = [rows[:16] @ cols[:16].T]
    for si in range(len(WINDOW_SCALES)):  # only the same scale's rows x columns
        span = slice(16 + 48 * si, 64 + 48 * si)
        part = (rows[span] @ cols[span].T).reshape(3, 16, 3, 16)
        blocks += [part[oy, :, ox, :] for oy in range(3) for ox in range(3)]
    return np.stack(blocks)


def _bits_batch(blocks: np.ndarray) -> np.ndarray:
    """(n, k, k) DCT blocks -> (n, k*k/8) uint8: bits "coefficient > the block's median"
    (row-major, numpy.packbits order, as imagehash)."""
    flat = blocks.reshape(len(blocks), -1)
    return np.packbits(flat > _median(flat, axis=1), axis=1)


def single_blas_thread() -> None:
    """Limit numpy's BLAS (OpenBLAS) to one thread in this process (``threadpoolctl``).

    A fingerprint is a few small matrix products (:func:`_content_and_window_dcts`: ~(112, 128)
    by (128, 85)); OpenBLAS splits such products across its threads, whose hand-offs and
    spin-waits cost more than the product. Measured on 2 cores with two threads fingerprinting
    ``bench/pipeline.py``'s images: 3.7 ms CPU per image with OpenBLAS's default threads, 1.1 ms
    with one. Call once in a process that fingerprints many images (the daemon, ``modbot
    collect``), not in one that needs BLAS threads (retraining runs in its own process)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def fingerprint(image: Image.Image) -> Fingerprint:
    """Fingerprint a decoded Pillow image (any mode; RGB as :mod:`modbot.decode` gives).

    Cost: ~1-2.5 ms for a ~1000 px image on one core with one BLAS thread
    (:func:`single_blas_thread`; ``bench/repost.py``: p50 1.65 ms). Raises
    :class:`FingerprintError` for a non-image or an image under 8x8 px.
    """
    a = _grey_work(image)
    box = content_box(a)
    t, b, l, r = box
    c = a[t:b, l:r]
    sb = screen_box(a, box)
    extra = [_dct64(a[sb[0]:sb[1], sb[2]:sb[3]])] if sb != box else []
    # views: whole, content, the 18 windows of content; then the screenshot view, if any
    blocks = np.concatenate([_dct64(a)[None], _content_and_window_dcts(c)]
                            + [e[None] for e in extra])
    n, e = N_VIEWS, N_VIEWS + len(extra)
    query = np.concatenate([blocks[:N_QUERY_VIEWS], blocks[n:]])
    blocks = np.concatenate([blocks, query * _ODD[None, None, :]])  # + mirrored query views
    fine = _bits_batch(blocks)               # (V + E + Q, 32)
    coarse = _bits_batch(blocks[:, :8, :8])  # (V + E + Q, 8)
    return Fingerprint(fine[:n].tobytes(), coarse[:n].tobytes(), fine[e:].tobytes(),
                       coarse[e:].tobytes(), extra_fine=fine[n:e].tobytes(),
                       extra_coarse=coarse[n:e].tobytes())


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each element of an unsigned integer array (uint8 result, same shape):
    ``numpy.bitwise_count`` (numpy >= 2), else a byte table."""
    if _BITWISE_COUNT is not None:
        return _BITWISE_COUNT(x)
    b = np.ascontiguousarray(x)
    return _POP[b.view(np.uint8)].reshape(*b.shape, b.itemsize).sum(-1, dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distance along the last axis of two broadcastable unsigned integer arrays (int64)."""
    c = popcount(np.bitwise_xor(a, b))
    if c.shape[-1] > 8:
        return c.sum(-1, dtype=np.int64)
    out = c[..., 0].astype(np.int64)  # a short last axis: adds beat numpy's small reductions
    for k in range(1, c.shape[-1]):
        out += c[..., k]
    return out


def as_words(codes: np.ndarray) -> np.ndarray:
    """View (..., 8k) uint8 codes as (..., k) uint64 words (a copy only when not contiguous);
    Hamming distances are unchanged and 8x fewer elements are counted."""
    return np.ascontiguousarray(codes).view(np.uint64)


def distance(a: Fingerprint, b: Fingerprint) -> int:
    """Smallest fine distance (bits of 256) between a query view of ``a`` (whole, content and,
    when present, mirrored) and any stored view of ``b``. Not symmetric: ``distance(query,
    stored)``."""
    qf, _, _ = a.query_views()
    return int(hamming(qf[:, None, :], b.fine_array()[None, :, :]).min())


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """``1 - distance(a, b) / 256``, in [0, 1]."""
    return 1.0 - distance(a, b) / FINE_BITS
