"""Repost finder benchmark (issue 16): recall / precision of ``modbot.fingerprint`` on real
images, and lookup latency with a million stored items.

Data: ``../shared/data/realart`` + ``../shared/data/pacs`` (12,243 files, read in place, never
copied; the bench exits with a message when they are absent). Files that show the same picture
(``repost_data.same_content_groups``: filename rule, an independent imagehash pHash, and the
eye-checked ``bench/data/same_picture_pairs.csv``) form one group; a match inside a group is
neither a true nor a false positive.

1. Index every original except ``--holdout`` random ones.
2. Two disjoint parts, **validation** and **test**: the indexed originals and the held-out ones
   are each split in half at random (seeded). Positives: per part and transform kind,
   ``--per-kind`` random indexed originals of that part are transformed (seeded) and queried;
   ``mirror`` copies are scored apart. Negatives: the part's held-out originals; any match
   outside their own group is a false positive (near-twins included).
3. Sweeps of the fine threshold and the coarse radius on the **validation** part only: the
   library's ``DEFAULT_MAX_DISTANCE`` / ``COARSE_RADIUS`` (and the screenshot view's
   ``SCREEN_*`` constants) were chosen there. The headline figures (``recall``,
   ``precision``, …) are the **test** part's at those constants; ``validation`` holds the
   validation part's.
4. Latency: the index is padded to ``--n-stored`` items with SYNTHETIC fingerprints (real
   items' codes with about 10-20 of 64 coarse and 60-100 of 256 fine bits flipped, so they crowd
   around real data), then ``--n-latency`` queries drawn at random from every kind (both
   parts) are timed one by one, and the test part is scored again at that size (the gate is
   then an inverted file: ``test_at_n_stored``). ``--sqlite`` also times the daemon's start:
   the index built from ``--n-stored`` rows of ``repost_fingerprints``. The machine's load
   average is printed: timings on a shared machine are inflated.

Usage: ``python bench/repost.py [--per-kind 300] [--holdout 1000] [--n-stored 1000000]
[--sqlite] [--json]``; the last line printed is one JSON object (the test part's ``recall``,
``precision``, ``recall_by_transform``, ``mirrored_recall``; ``validation``; ``lookup_p95_ms``,
``fingerprint_p50_ms``, ``n_stored``, …). ``--per-kind`` copies per kind in each part.
Caches (group hashes, fingerprints keyed by the recipe's source) go to /tmp.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import repost_data as data
from PIL import Image

from modbot import fingerprint as fpm
from modbot.fingerprint import DEFAULT_MAX_DISTANCE, Fingerprint, Match
from modbot.fingerprint_index import GATE_VIEWS, FingerprintIndex

SWEEP = [32, 40, 44, 48, 52, 56, 60, 64]
RADII = [12, 14, 16, 18, 20]
MARGINS = [None, 8, 12, 16, 24]
TMP = Path(tempfile.gettempdir())


def load_data(args: argparse.Namespace) -> tuple[list[Path], np.ndarray, list[bytes]]:
    """(files, same-picture group per file, fingerprint blob per file), cached in /tmp."""
    files = data.list_originals()
    cache = TMP / "bench_repost_grouphash.npy"
    if cache.exists() and len(np.load(cache)) == len(files):
        ph = np.load(cache)
    else:
        ph = data.group_hashes(files)
        np.save(cache, ph)
    groups = np.array(data.same_content_groups(files, ph))
    key = hashlib.sha256(Path(fpm.__file__).read_bytes()).hexdigest()[:16]
    fcache = TMP / f"bench_repost_modbot_fps_{key}_{len(files)}.npy"
    if fcache.exists():
        blobs = list(np.load(fcache, allow_pickle=True))
    else:
        blobs = [fpm.fingerprint(data.load_rgb(p)).to_blob() for p in files]
        np.save(fcache, np.array(blobs, dtype=object), allow_pickle=True)
    return files, groups, blobs


def make_queries(args: argparse.Namespace, files: list[Path], indexed: list[int],
                 holdout: list[int], part: str) -> list[tuple[str, int, Fingerprint]]:
    """(kind, source file index, query fingerprint) of one part: transformed copies of
    ``indexed`` originals, then the ``holdout`` originals as they are."""
    queries = []
    for kind in [*data.TRANSFORMS, "mirror"]:
        fn = data.TRANSFORMS.get(kind, data.mirror)
        krng = random.Random(f"{args.seed}-{part}-{kind}")
        for i in krng.sample(indexed, args.per_kind):
            queries.append((kind, i, fpm.fingerprint(fn(data.load_rgb(files[i]), krng))))
    for i in sorted(holdout):
        queries.append(("holdout", i, fpm.fingerprint(data.load_rgb(files[i]))))
    return queries


def score(results: list[tuple[str, int, list[Match]]], groups: np.ndarray, T: int,
          n_holdout: int, margin: int | None = fpm.NEAR_TWIN_MARGIN) -> dict[str, Any]:
    """Recall (mirror excluded), precision over every returned item, per-kind recall, the
    mirrored copies' recall and flag rate, and the share of held-out queries matching anything
    else, at fine threshold ``T`` and near-twin ``margin`` (``results``: queried with no
    margin)."""
    kinds = [*data.TRANSFORMS, "mirror"]
    by_kind = {k: [0, 0] for k in kinds}
    tp = fp = mirrored_flag = holdout_fp = 0
    def group(item_id: int) -> int:  # a synthetic padding item (an id past the files): none
        return int(groups[item_id]) if item_id < len(groups) else -1

    for kind, i, ms in results:
        ms = [m for m in ms if m.distance <= T]
        if margin is not None and ms:
            best = min(m.distance for m in ms)
            ms = [m for m in ms if m.distance <= best + margin]
        wrong = [m for m in ms if group(m.item_id) != groups[i]]
        fp += len(wrong)
        if kind == "holdout":
            holdout_fp += bool(wrong)
            continue
        hit = [m for m in ms if group(m.item_id) == groups[i]]
        by_kind[kind][1] += 1
        if hit:
            by_kind[kind][0] += 1
            tp += 1
            mirrored_flag += kind == "mirror" and any(m.mirrored for m in hit)
    rec = {k: v[0] / max(1, v[1]) for k, v in by_kind.items()}
    pos = sum(v[1] for k, v in by_kind.items() if k != "mirror")
    hits = sum(v[0] for k, v in by_kind.items() if k != "mirror")
    return {"T": T, "recall": hits / max(1, pos), "precision": tp / max(1, tp + fp),
            "false_positives": fp, "holdout_fp_rate": holdout_fp / max(1, n_holdout),
            "recall_by_transform": rec, "mirrored_recall": rec["mirror"],
            "mirrored_flag_rate": mirrored_flag / max(1, by_kind["mirror"][1])}


def print_sweep(results: list[tuple[str, int, list[Match]]], groups: np.ndarray, n_holdout: int,
                title: str) -> None:
    """Print recall / precision / per-kind recall at each threshold of ``SWEEP``."""
    kinds = [*data.TRANSFORMS, "mirror"]
    print(f"\n{title} (near-twin margin {fpm.NEAR_TWIN_MARGIN}):", file=sys.stderr)
    print(f"{'T':>4} {'recall':>7} {'prec':>6} {'FP':>4} {'holdFP':>7} "
          + " ".join(f"{k[:7]:>7}" for k in kinds), file=sys.stderr)
    for T in SWEEP:
        s = score(results, groups, T, n_holdout)
        print(f"{T:>4} {s['recall']:7.3f} {s['precision']:6.3f} {s['false_positives']:4d} "
              f"{s['holdout_fp_rate']:7.3f} "
              + " ".join(f"{s['recall_by_transform'][k]:7.3f}" for k in kinds), file=sys.stderr)


def _perturb(rng: np.random.Generator, codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Flip about ``lo``..``hi`` random bits of each code (uint8, last axis): each bit with
    probability k / bits, k uniform in [lo, hi] per code."""
    nbits = codes.shape[-1] * 8
    k = rng.integers(lo, hi + 1, codes.shape[:-1] + (1,))
    flip = rng.integers(0, nbits, codes.shape[:-1] + (nbits,), dtype=np.uint16) < k
    return codes ^ np.packbits(flip, axis=-1)


def pad_index(index: FingerprintIndex, fps: list[Fingerprint], n_pad: int, seed: int) -> None:
    """Add ``n_pad`` synthetic items near the real ones (see the module docstring)."""
    rng = np.random.default_rng(seed)
    real_fine = np.stack([f.fine_array() for f in fps])       # (n, V, 32)
    gv = list(GATE_VIEWS)
    real_gate = np.stack([f.coarse_array()[gv] for f in fps])  # (n, G, 8)
    next_id = 10_000_000
    for start in range(0, n_pad, 20_000):
        m = min(20_000, n_pad - start)
        src = rng.integers(0, len(fps), m)
        fine = _perturb(rng, real_fine[src], 60, 100)
        same = [np.zeros(m, bool)] + [  # a view whose code equals an earlier one's: no code
            np.any([(real_gate[src, v] == real_gate[src, u]).all(-1) for u in range(v)], axis=0)
            for v in range(1, len(gv))]
        pg = _perturb(rng, real_gate[src], 10, 20)
        index.add_arrays(np.arange(next_id, next_id + m, dtype=np.int64), fine,
                         np.concatenate([pg[~same[v], v] for v in range(len(gv))]),
                         np.concatenate([np.flatnonzero(~same[v]) for v in range(len(gv))]))
        next_id += m


def fingerprint_times(files: list[Path], indexed: list[int], rng: random.Random) -> list[float]:
    """ms per fingerprint of 200 originals upscaled to 1000 px wide (cost depends on size)."""
    times = []
    for i in rng.sample(indexed, 200):
        im = data.load_rgb(files[i])
        big = im.resize((1000, max(8, round(1000 * im.height / im.width))), Image.Resampling.BILINEAR)
        t = time.perf_counter()
        fpm.fingerprint(big)
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)


def sqlite_start_s(blobs: list[bytes], n: int) -> float:
    """Seconds for the daemon's repost stage to build its index from ``n`` stored rows (the
    real ``blobs`` repeated: the inverted file trains on real codes)."""
    from modbot.record import open_database
    from modbot.repost import RepostStage

    with tempfile.TemporaryDirectory() as d:
        db = open_database(Path(d) / "modbot.db")
        db.conn.executemany(
            "INSERT INTO repost_fingerprints (submission, source, position, version, fp, "
            "recorded_at) VALUES (?, 'daemon', 0, ?, ?, 0)",
            ((f"t3_{k}", fpm.FINGERPRINT_VERSION, blobs[k % len(blobs)]) for k in range(n)))
        t = time.perf_counter()
        assert len(RepostStage(db).index) == n
        out = time.perf_counter() - t
        db.conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-kind", type=int, default=300)
    ap.add_argument("--holdout", type=int, default=1000)
    ap.add_argument("--n-stored", type=int, default=1_000_000)
    ap.add_argument("--n-latency", type=int, default=1000)
    ap.add_argument("--sqlite", action="store_true", help="also time the index build from SQLite")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (data.SHARED / "realart").is_dir() or not (data.SHARED / "pacs").is_dir():
        print(f"skipped: no benchmark images under {data.SHARED} (realart/, pacs/)")
        return
    fpm.single_blas_thread()  # as the daemon and `modbot collect` do
    t_start = time.time()
    try:
        out = run(args)
    except ModuleNotFoundError as exc:  # ImageHash: the ground truth's independent pHash
        print(f"skipped: {exc.name} is needed for the ground truth (pip install ImageHash)")
        return
    out["total_s"] = round(time.time() - t_start, 1)
    print(json.dumps(out))


def split(rng: random.Random, items: list[int]) -> tuple[list[int], list[int]]:
    """Two disjoint random halves (validation, test) of ``items``, each sorted."""
    shuffled = items[:]
    rng.shuffle(shuffled)
    half = len(shuffled) // 2
    return sorted(shuffled[:half]), sorted(shuffled[half:])


def _rounded(s: dict[str, Any]) -> dict[str, Any]:
    return {"recall": round(s["recall"], 4), "precision": round(s["precision"], 4),
            "recall_by_transform": {k: round(v, 4) for k, v in s["recall_by_transform"].items()
                                    if k != "mirror"},
            "mirrored_recall": round(s["mirrored_recall"], 4),
            "mirrored_flag_rate": round(s["mirrored_flag_rate"], 4),
            "false_positives": s["false_positives"],
            "holdout_fp_rate": round(s["holdout_fp_rate"], 4)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    files, groups, blobs = load_data(args)
    holdout = set(rng.sample(range(len(files)), args.holdout))
    indexed = [i for i in range(len(files)) if i not in holdout]
    prng = random.Random(f"{args.seed}-parts")
    idx_val, idx_test = split(prng, indexed)
    hold_val, hold_test = split(prng, sorted(holdout))
    print(f"files {len(files)} in {len(set(groups.tolist()))} same-picture groups; indexed "
          f"{len(indexed)} ({len(set(groups[indexed].tolist()))} distinct pictures); held out "
          f"{len(holdout)}; validation/test parts: {len(idx_val)}/{len(idx_test)} indexed, "
          f"{len(hold_val)}/{len(hold_test)} held out", file=sys.stderr)
    index = FingerprintIndex()
    fps = {i: Fingerprint.from_blob(blobs[i]) for i in indexed}
    index.add_blobs((i, blobs[i]) for i in indexed)
    val_q = make_queries(args, files, idx_val, hold_val, "validation")
    test_q = make_queries(args, files, idx_test, hold_test, "test")
    for r in RADII:  # validation only: the coarse radius
        res = [(k, i, index.query(q, max_distance=DEFAULT_MAX_DISTANCE, coarse_radius=r,
                                  margin=None)) for k, i, q in val_q]
        s = score(res, groups, DEFAULT_MAX_DISTANCE, len(hold_val))
        print(f"validation, coarse radius {r}: recall {s['recall']:.3f} precision "
              f"{s['precision']:.3f}", file=sys.stderr)
    val_res = [(k, i, index.query(q, max_distance=max(SWEEP), margin=None)) for k, i, q in val_q]
    test_res = [(k, i, index.query(q, max_distance=max(SWEEP), margin=None)) for k, i, q in test_q]
    for mg in MARGINS:  # validation only: the near-twin margin
        s = score(val_res, groups, DEFAULT_MAX_DISTANCE, len(hold_val), mg)
        print(f"validation, near-twin margin {mg}: recall {s['recall']:.3f} precision "
              f"{s['precision']:.4f} ({s['false_positives']} wrong)", file=sys.stderr)
    print_sweep(val_res, groups, len(hold_val),
                f"VALIDATION threshold sweep (fine bits of 256; coarse radius {fpm.COARSE_RADIUS}/64)")
    print_sweep(test_res, groups, len(hold_test), "TEST threshold sweep (for the record only)")
    val = score(val_res, groups, DEFAULT_MAX_DISTANCE, len(hold_val))
    chosen = score(test_res, groups, DEFAULT_MAX_DISTANCE, len(hold_test))
    fp_times = fingerprint_times(files, indexed, rng)
    pad_index(index, list(fps.values()), max(0, args.n_stored - len(indexed)), args.seed)
    queries = val_q + test_q
    lat = []
    for k in random.Random(f"{args.seed}-latency").sample(range(len(queries)),
                                                         min(args.n_latency, len(queries))):
        q = queries[k][2]
        t = time.perf_counter()
        index.query(q)
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    # the test part again at n_stored: the gate is now an inverted file (approximate)
    big = score([(k, i, index.query(q, max_distance=DEFAULT_MAX_DISTANCE, margin=None))
                 for k, i, q in test_q], groups, DEFAULT_MAX_DISTANCE, len(hold_test))
    print(f"test part at {len(index)} stored ({index.gate_kind} gate): recall {big['recall']:.4f} "
          f"precision {big['precision']:.4f}", file=sys.stderr)
    rebuild = sqlite_start_s([blobs[i] for i in indexed], args.n_stored) if args.sqlite else None
    load = os.getloadavg()
    print(f"load average {load} on {os.cpu_count()} cores; gate {index.gate_kind}; lookup at "
          f"{len(index)} items: min "
          f"{lat[0]:.2f} p50 {statistics.median(lat):.2f} p95 {lat[int(0.95 * (len(lat) - 1))]:.2f} ms; "
          f"fingerprint p50 {statistics.median(fp_times):.2f} ms", file=sys.stderr)
    return {
        "part": "test", **_rounded(chosen), "validation": _rounded(val),
        "test_at_n_stored": _rounded(big),
        "max_distance": DEFAULT_MAX_DISTANCE, "coarse_radius": fpm.COARSE_RADIUS,
        "near_twin_margin": fpm.NEAR_TWIN_MARGIN, "gate": index.gate_kind,
        "lookup_min_ms": round(lat[0], 3), "lookup_p50_ms": round(statistics.median(lat), 3),
        "lookup_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 3),
        "fingerprint_p50_ms": round(statistics.median(fp_times), 3),
        "fingerprint_p95_ms": round(fp_times[int(0.95 * (len(fp_times) - 1))], 3),
        "rebuild_s": None if rebuild is None else round(rebuild, 2),
        "n_stored": len(index), "n_real_stored": len(indexed),
        "n_synthetic_stored": len(index) - len(indexed), "per_kind": args.per_kind,
        "n_holdout": len(holdout), "n_holdout_test": len(hold_test), "load_average": [round(x, 2) for x in load],
    }


if __name__ == "__main__":
    main()
