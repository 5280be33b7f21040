"""Nearest-neighbour index over perceptual fingerprints (:mod:`modbot.fingerprint`).

A stored item matches a query when a query view (whole, content, screenshot, or their mirrors)
is within ``coarse_radius`` coarse bits (of 64) of the item's whole, content or centred 90 %
window view (``GATE_VIEWS``) — the gate: a faiss binary range search, exhaustive
(``IndexBinaryFlat``, exact) up to ``IVF_MIN`` gate codes, an inverted file (``IndexBinaryIVF``, approximate: ~99.7 % of the exact gate's true
originals kept on the bench) from there — and within ``max_distance`` fine bits (of 256) of any
of its 20 views; matches further than ``margin`` bits beyond the closest one are dropped as
near-twins. faiss is imported when the first index is made. Bad input raises
:class:`modbot.errors.FingerprintError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from modbot.errors import FingerprintError
from modbot.fingerprint import (
    BLOB_BYTES,
    COARSE_BITS,
    COARSE_BYTES,
    COARSE_RADIUS,
    DEFAULT_MAX_DISTANCE,
    FINE_BITS,
    FINE_BYTES,
    FINGERPRINT_VERSION,
    N_VIEWS,
    NEAR_TWIN_MARGIN,
    Fingerprint,
    Match,
    as_words,
    hamming,
)

#: stored views whose coarse codes are gate codes: whole, content and the centred 90 % window
#: (view 6: scale 0.90, anchor (0.5, 0.5)), which lets 3-10 %-cropped copies through at coarse
#: radius 14 (bench validation: crop recall +3.5 %, combo +3 %; a radius of 18 did as much
#: for crops but let ~30x more candidates through at a million items)
GATE_VIEWS = (0, 1, 2 + 4)
#: gate codes from which the gate becomes an inverted file (IndexBinaryIVF): an exhaustive
#: scan of a million-item gate costs ~0.6-1.5 ms per query code on the bench machine
IVF_MIN = 200_000
#: inverted lists, lists probed per query code, codes the lists are trained on and k-means
#: iterations. Chosen on the bench's validation queries (1M stored, coarse radius 14): 99.4-99.7 %
#: of the exhaustive gate's true originals are kept, at ~1/8 of its scan (96 probed: 99.1 %);
#: 10 iterations on 40,960 codes keep as many as 25 on 65,536, in 1 s instead of 5
IVF_LISTS, IVF_PROBE, IVF_TRAIN, IVF_ITERATIONS = 1024, 128, 40_960, 10


def _best_per_item(owner: np.ndarray, dist: np.ndarray, mirrored: np.ndarray,
                   max_distance: int, margin: int | None) -> list[Match]:
    """One Match per item within ``max_distance`` and, unless ``margin`` is None, within
    ``margin`` bits of the closest item's distance: a non-mirrored pair beats a mirrored one,
    then the smaller distance. Sorted by distance, then item id."""
    keep = dist <= max_distance
    if margin is not None and keep.any():
        keep &= dist <= int(dist[keep].min()) + margin
    best: dict[int, tuple[int, bool]] = {}
    for o, d, m in zip(owner[keep].tolist(), dist[keep].tolist(), mirrored[keep].tolist(),
                       strict=True):
        cur = best.get(o)
        if cur is None or (m, d) < (cur[1], cur[0]):
            best[o] = (d, m)
    return sorted((Match(o, d, m) for o, (d, m) in best.items()), key=lambda x: (x.distance, x.item_id))


def _gate_codes(coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gate codes of items: ``coarse`` (n, N_VIEWS, 8) uint8 -> (codes (k, 8) uint8, owner
    (k,) int64 row in 0..n-1): each item's code of each of ``GATE_VIEWS`` (whole, content, the
    centred 90 % window), one per distinct code (2-3 per item; the content view equals the
    whole one for most images)."""
    n = len(coarse)
    codes, owner = [coarse[:, GATE_VIEWS[0]]], [np.arange(n)]
    for k, v in enumerate(GATE_VIEWS[1:], 1):
        new = np.ones(n, bool)
        for u in GATE_VIEWS[:k]:
            new &= ~(coarse[:, v] == coarse[:, u]).all(1)
        codes.append(coarse[new, v])
        owner.append(np.flatnonzero(new))
    return np.ascontiguousarray(np.concatenate(codes)), np.concatenate(owner).astype(np.int64)


def _check_thresholds(max_distance: int, coarse_radius: int, margin: int | None) -> None:
    if not 0 <= max_distance <= FINE_BITS or not 0 <= coarse_radius <= COARSE_BITS \
            or (margin is not None and not 0 <= margin <= FINE_BITS):
        raise FingerprintError(f"thresholds out of range: {max_distance}/{FINE_BITS}, "
                               f"{coarse_radius}/{COARSE_BITS}, margin {margin}")


class FingerprintIndex:
    """In-memory index of stored fingerprints, keyed by int64 item ids.

    Gate: a faiss range search over the 64-bit coarse hashes of each item's ``GATE_VIEWS``
    (whole, content, centred 90 % window; 2-3 distinct codes per item) finds the items within
    ``coarse_radius`` bits of a query view: exhaustive (``IndexBinaryFlat``; exact, equals :func:`brute_force_query`) until the gate
    holds ``ivf_min`` codes, then an inverted file (``IVF_LISTS`` lists trained once, then,
    on the codes stored so far, ``IVF_PROBE`` probed: approximate, ~1/8 of the scan). Verify:
    the 256-bit hashes of all 20 views of each candidate against the query views (popcount of
    uint64 words). Memory ~0.75 kB per item (~0.75 GB for 1M). ``add`` is amortised O(1),
    except the one ``add`` that crosses ``ivf_min`` (trains the inverted file: a few s).
    Not thread-safe.
    faiss is imported here (lazily) and runs one thread (``faiss.omp_set_num_threads(1)``):
    one query at a time gains nothing from threads (measured: 4x slower under load).
    """

    def __init__(self, ivf_min: int = IVF_MIN) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        self._faiss: Any = faiss
        self._ivf_min = int(ivf_min)
        self._clear()

    def _clear(self) -> None:
        self._gate = self._faiss.IndexBinaryFlat(COARSE_BITS)
        self._gate_rows = np.empty(1024, np.int64)  # item row of each gate code
        self._gate_codes = np.empty((1024, COARSE_BYTES), np.uint8)  # kept to train the IVF
        self._n_gate = 0
        self._fine = np.empty((1024, N_VIEWS, FINE_BYTES), np.uint8)
        self._ids = np.empty(1024, np.int64)
        self._n = 0
        self._row_of: dict[int, int] = {}

    def __len__(self) -> int:
        """Number of stored items."""
        return self._n

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row_of

    @property
    def n_gate_codes(self) -> int:
        """Coarse codes in the gate (1-3 per item)."""
        return self._n_gate

    @property
    def gate_kind(self) -> str:
        """``"flat"`` (exhaustive, exact) or ``"ivf"`` (inverted file, from ``ivf_min`` codes)."""
        return "ivf" if isinstance(self._gate, self._faiss.IndexBinaryIVF) else "flat"

    def _to_ivf(self) -> None:
        """Replace the flat gate by an inverted file: ``IVF_LISTS`` lists trained (binary
        k-means, ``IVF_ITERATIONS`` iterations, seeded) on at most ``IVF_TRAIN`` of the stored
        codes, ``IVF_PROBE`` lists probed per query code. Gate code ids stay their insertion
        order."""
        codes = self._gate_codes[: self._n_gate]
        rng = np.random.default_rng(0)
        train = codes if len(codes) <= IVF_TRAIN else codes[rng.choice(len(codes), IVF_TRAIN,
                                                                        replace=False)]
        ivf = self._faiss.IndexBinaryIVF(self._faiss.IndexBinaryFlat(COARSE_BITS), COARSE_BITS,
                                         IVF_LISTS)
        ivf.cp.niter = IVF_ITERATIONS
        ivf.train(np.ascontiguousarray(train))
        ivf.add(np.ascontiguousarray(codes))
        ivf.nprobe = IVF_PROBE
        self._quantizer = ivf.quantizer  # faiss does not own it: keep it alive
        self._gate = ivf

    def _grow(self, need: int, need_gate: int) -> None:
        """Double the item arrays and the gate-owner array until they hold the given counts."""
        cap = len(self._ids)
        if need > cap:
            while cap < need:
                cap *= 2
            fine = np.empty((cap, N_VIEWS, FINE_BYTES), np.uint8)
            fine[: self._n] = self._fine[: self._n]
            ids = np.empty(cap, np.int64)
            ids[: self._n] = self._ids[: self._n]
            self._fine, self._ids = fine, ids
        if need_gate > len(self._gate_rows):
            cap_gate = max(2 * len(self._gate_rows), need_gate)
            grown = np.empty(cap_gate, np.int64)
            grown[: self._n_gate] = self._gate_rows[: self._n_gate]
            codes = np.empty((cap_gate, COARSE_BYTES), np.uint8)
            codes[: self._n_gate] = self._gate_codes[: self._n_gate]
            self._gate_rows, self._gate_codes = grown, codes

    def add_arrays(self, item_ids: np.ndarray, fine: np.ndarray, gate: np.ndarray,
                   gate_item: np.ndarray) -> None:
        """Bulk add: ``item_ids`` (n,) int64, new and distinct; ``fine`` (n, N_VIEWS, 32) uint8;
        ``gate`` (k, 8) uint8 coarse gate codes; ``gate_item`` (k,) int64, the index into
        ``item_ids`` of each gate code. Raises :class:`FingerprintError` for bad shapes or an
        id already stored."""
        item_ids = np.asarray(item_ids, np.int64)
        n = len(item_ids)
        if fine.shape != (n, N_VIEWS, FINE_BYTES) or gate.ndim != 2 \
                or gate.shape[1] != COARSE_BYTES or len(gate_item) != len(gate):
            raise FingerprintError(f"bad shapes: fine {fine.shape}, gate {gate.shape} for {n} items")
        new = dict(zip(item_ids.tolist(), range(self._n, self._n + n), strict=True))
        if len(new) != n or any(k in self._row_of for k in new):
            raise FingerprintError("item id already stored (or repeated)")
        k = len(gate)
        self._grow(self._n + n, self._n_gate + k)
        self._fine[self._n:self._n + n] = fine
        self._ids[self._n:self._n + n] = item_ids
        self._gate_rows[self._n_gate:self._n_gate + k] = np.asarray(gate_item, np.int64) + self._n
        self._gate_codes[self._n_gate:self._n_gate + k] = gate
        self._n_gate += k
        if self.gate_kind == "flat" and self._n_gate >= self._ivf_min:
            self._to_ivf()  # trains on every code so far, this call's included
        else:
            self._gate.add(np.ascontiguousarray(gate, dtype=np.uint8))
        self._n += n
        self._row_of.update(new)

    def add(self, item_id: int, fp: Fingerprint) -> None:
        """Store ``fp`` under ``item_id`` (an int, e.g. a database row id). Raises
        :class:`FingerprintError` for a non-int id, an id already stored, or a fingerprint of
        another recipe (view count)."""
        if not isinstance(item_id, int | np.integer) or isinstance(item_id, bool):
            raise FingerprintError(f"item_id must be an int, not {type(item_id).__name__}")
        if fp.n_views != N_VIEWS:
            raise FingerprintError(f"fingerprint has {fp.n_views} views, this recipe {N_VIEWS}")
        gate, owner = _gate_codes(fp.coarse_array()[None])
        self.add_arrays(np.array([int(item_id)]), fp.fine_array()[None], gate, owner)

    def add_blobs(self, rows: Iterable[tuple[int, bytes]]) -> int:
        """Add ``rows`` of (item_id, :meth:`Fingerprint.to_blob` bytes), e.g. straight from
        SQLite, in one bulk step; returns how many were added. Raises
        :class:`FingerprintError` on a malformed or other-version blob or a repeated id."""
        ids, blobs = [], []
        for item_id, blob in rows:
            ids.append(int(item_id))
            blobs.append(bytes(blob))
        if not ids:
            return 0
        for b in blobs:
            if len(b) != BLOB_BYTES:
                Fingerprint.from_blob(b)  # raises with the reason
                raise FingerprintError(f"fingerprint has other than {N_VIEWS} views")
        arr = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), BLOB_BYTES)
        if (arr[:, 0] != FINGERPRINT_VERSION).any() or (arr[:, 1] != N_VIEWS).any():
            raise FingerprintError("fingerprint blob of another version")
        fine = arr[:, 2:2 + N_VIEWS * FINE_BYTES].reshape(-1, N_VIEWS, FINE_BYTES)
        coarse = arr[:, 2 + N_VIEWS * FINE_BYTES:].reshape(-1, N_VIEWS, COARSE_BYTES)
        gate, owner = _gate_codes(coarse)
        self.add_arrays(np.array(ids, np.int64), fine, gate, owner)
        return len(ids)

    def query_raw(self, fp: Fingerprint, coarse_radius: int = COARSE_RADIUS
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every candidate item x query view: (item ids (m,) int64, fine distance (m,) int64,
        mirrored (m,) bool), no fine threshold (for benchmarks and threshold sweeps)."""
        empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool))
        if self._n == 0:
            return empty
        qf, qc, qm = fp.query_views()
        gate_q = np.unique(qc, axis=0)  # whole == content for most images: search once
        _, _, hits = self._gate.range_search(np.ascontiguousarray(gate_q), coarse_radius + 1)
        if len(hits) == 0:
            return empty
        rows = np.unique(self._gate_rows[hits])
        fine = as_words(self._fine[rows])  # (r, V, 4) uint64
        d = hamming(fine[:, None, :, :], as_words(qf)[None, :, None, :]).min(axis=2)  # (r, q)
        return np.repeat(self._ids[rows], len(qf)), d.ravel(), np.tile(qm, len(rows))

    def query(self, fp: Fingerprint, max_distance: int = DEFAULT_MAX_DISTANCE,
              coarse_radius: int = COARSE_RADIUS,
              margin: int | None = NEAR_TWIN_MARGIN) -> list[Match]:
        """Stored items matching ``fp`` (see the module docstring), one :class:`Match` per item,
        sorted by distance; ``mirrored`` needs a fingerprint made by :func:`fingerprint`.
        ``margin``: bits over the closest match's distance beyond which other matches are
        dropped as near-twins (None: keep all). ``max_distance`` 0..256, ``coarse_radius``
        0..64 and ``margin`` 0..256 bits, else :class:`FingerprintError`."""
        _check_thresholds(max_distance, coarse_radius, margin)
        ids, d, m = self.query_raw(fp, coarse_radius)
        return _best_per_item(ids, d, m, max_distance, margin)


def brute_force_query(stored: Sequence[tuple[int, Fingerprint]], fp: Fingerprint,
                      max_distance: int = DEFAULT_MAX_DISTANCE,
                      coarse_radius: int = COARSE_RADIUS,
                      margin: int | None = NEAR_TWIN_MARGIN) -> list[Match]:
    """Reference implementation of :meth:`FingerprintIndex.query` by exhaustive comparison."""
    _check_thresholds(max_distance, coarse_radius, margin)
    qf, qc, qm = fp.query_views()
    owners, dists, mirs = [], [], []
    for item_id, s in stored:
        gate = s.coarse_array()[list(GATE_VIEWS)]
        if hamming(gate[:, None, :], qc[None, :, :]).min() > coarse_radius:
            continue
        for i in range(len(qf)):
            owners.append(item_id)
            dists.append(int(hamming(s.fine_array(), qf[i][None, :]).min()))
            mirs.append(bool(qm[i]))
    return _best_per_item(np.array(owners, np.int64), np.array(dists, np.int64),
                          np.array(mirs, bool), max_distance, margin)
