"""Repost finder benchmark (issue 16): recall / precision of ``modbot.fingerprint`` on real
images, and lookup latency with a million stored items.

Data: ``../shared/data/realart`` + ``../shared/data/pacs`` (12,243 files, read in place, never
copied; the bench exits with a message when they are absent). Files that show the same picture
(``repost_data.same_content_groups``: filename rule, an independent imagehash pHash, and the
eye-checked ``bench/data/same_picture_pairs.csv``) form one group; a match inside a group is
neither a true nor a false positive.

1. Index every original except ``--holdout`` random ones.
2. Positives: per transform kind, ``--per-kind`` random indexed originals are transformed
   (seeded) and queried; ``mirror`` copies are scored apart. Negatives: the held-out originals;
   any match outside their own group is a false positive (near-twins included).
3. A threshold sweep; the JSON uses ``DEFAULT_MAX_DISTANCE`` (``[reposts] max_distance``).
4. Latency: the index is padded to ``--n-stored`` items with SYNTHETIC fingerprints (real
   items' codes with 10-20 of 64 coarse and 60-100 of 256 fine bits flipped, so they crowd
   around real data), then the positive queries are timed one by one. ``--sqlite`` also times
   the daemon's start: the index built from ``--n-stored`` rows of ``repost_fingerprints``.
   The machine's load average is printed: timings on a shared machine are inflated.

Usage: ``python bench/repost.py [--per-kind 300] [--holdout 1000] [--n-stored 1000000]
[--sqlite] [--json]``; the last line printed is one JSON object (``recall``, ``precision``,
``recall_by_transform``, ``mirrored_recall``, ``lookup_p95_ms``, ``fingerprint_p50_ms``,
``n_stored``, …). Caches (group hashes, fingerprints keyed by the recipe's source) go to /tmp.
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
from modbot.fingerprint_index import FingerprintIndex

SWEEP = [32, 40, 44, 48, 52, 56, 60, 64]
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
                 holdout: set[int]) -> list[tuple[str, int, Fingerprint]]:
    """(kind, source file index, query fingerprint): transformed copies, then the held-out."""
    queries = []
    for kind in [*data.TRANSFORMS, "mirror"]:
        fn = data.TRANSFORMS.get(kind, data.mirror)
        krng = random.Random(f"{args.seed}-{kind}")
        for i in krng.sample(indexed, args.per_kind):
            queries.append((kind, i, fpm.fingerprint(fn(data.load_rgb(files[i]), krng))))
    for i in sorted(holdout):
        queries.append(("holdout", i, fpm.fingerprint(data.load_rgb(files[i]))))
    return queries


def score(results: list[tuple[str, int, list[Match]]], groups: np.ndarray, T: int,
          n_holdout: int) -> dict[str, Any]:
    """Recall (mirror excluded), precision over every returned item, per-kind recall, the
    mirrored copies' recall and flag rate, and the share of held-out queries matching anything
    else, at fine threshold ``T``."""
    kinds = [*data.TRANSFORMS, "mirror"]
    by_kind = {k: [0, 0] for k in kinds}
    tp = fp = mirrored_flag = holdout_fp = 0
    for kind, i, ms in results:
        ms = [m for m in ms if m.distance <= T]
        wrong = [m for m in ms if groups[m.item_id] != groups[i]]
        fp += len(wrong)
        if kind == "holdout":
            holdout_fp += bool(wrong)
            continue
        hit = [m for m in ms if groups[m.item_id] == groups[i]]
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


def print_sweep(results: list[tuple[str, int, list[Match]]], groups: np.ndarray, n_holdout: int) -> None:
    kinds = [*data.TRANSFORMS, "mirror"]
    print(f"\nthreshold sweep (fine bits of 256; coarse radius {fpm.COARSE_RADIUS}/64):")
    print(f"{'T':>4} {'recall':>7} {'prec':>6} {'FP':>4} {'holdFP':>7} "
          + " ".join(f"{k[:7]:>7}" for k in kinds))
    for T in SWEEP:
        s = score(results, groups, T, n_holdout)
        print(f"{T:>4} {s['recall']:7.3f} {s['precision']:6.3f} {s['false_positives']:4d} "
              f"{s['holdout_fp_rate']:7.3f} "
              + " ".join(f"{s['recall_by_transform'][k]:7.3f}" for k in kinds))


def _perturb(rng: np.random.Generator, codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    bits = np.unpackbits(codes, axis=-1)
    k = rng.integers(lo, hi + 1, bits.shape[:-1] + (1,))
    flip = rng.random(bits.shape).argsort(-1) < k
    return np.packbits(bits ^ flip.astype(np.uint8), axis=-1)


def pad_index(index: FingerprintIndex, fps: list[Fingerprint], n_pad: int, seed: int) -> None:
    """Add ``n_pad`` synthetic items near the real ones (see the module docstring)."""
    rng = np.random.default_rng(seed)
    real_fine = np.stack([f.fine_array() for f in fps])       # (n, V, 32)
    real_gate = np.stack([f.coarse_array()[:2] for f in fps])  # (n, 2, 8)
    next_id = 10_000_000
    for start in range(0, n_pad, 20_000):
        m = min(20_000, n_pad - start)
        src = rng.integers(0, len(fps), m)
        fine = _perturb(rng, real_fine[src], 60, 100)
        two = ~(real_gate[src, 0] == real_gate[src, 1]).all(-1)
        pg = _perturb(rng, real_gate[src], 10, 20)
        index.add_arrays(np.arange(next_id, next_id + m, dtype=np.int64), fine,
                         np.concatenate([pg[:, 0], pg[two, 1]]),
                         np.concatenate([np.arange(m), np.flatnonzero(two)]))
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


def sqlite_start_s(blob: bytes, n: int) -> float:
    """Seconds for the daemon's repost stage to build its index from ``n`` stored rows."""
    from modbot.record import open_database
    from modbot.repost import RepostStage

    with tempfile.TemporaryDirectory() as d:
        db = open_database(Path(d) / "modbot.db")
        db.conn.executemany(
            "INSERT INTO repost_fingerprints (submission, source, position, version, fp, "
            "recorded_at) VALUES (?, 'daemon', 0, ?, ?, 0)",
            ((f"t3_{k}", fpm.FINGERPRINT_VERSION, blob) for k in range(n)))
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
    t_start = time.time()
    try:
        out = run(args)
    except ModuleNotFoundError as exc:  # ImageHash: the ground truth's independent pHash
        print(f"skipped: {exc.name} is needed for the ground truth (pip install ImageHash)")
        return
    out["total_s"] = round(time.time() - t_start, 1)
    print(json.dumps(out))


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    files, groups, blobs = load_data(args)
    holdout = set(rng.sample(range(len(files)), args.holdout))
    indexed = [i for i in range(len(files)) if i not in holdout]
    print(f"files {len(files)} in {len(set(groups.tolist()))} same-picture groups; indexed "
          f"{len(indexed)} ({len(set(groups[indexed].tolist()))} distinct pictures); held out "
          f"{len(holdout)}", file=sys.stderr)
    index = FingerprintIndex()
    fps = {i: Fingerprint.from_blob(blobs[i]) for i in indexed}
    index.add_blobs((i, blobs[i]) for i in indexed)
    queries = make_queries(args, files, indexed, holdout)
    results = [(k, i, index.query(q, max_distance=max(SWEEP))) for k, i, q in queries]
    print_sweep(results, groups, len(holdout))
    chosen = score(results, groups, DEFAULT_MAX_DISTANCE, len(holdout))
    fp_times = fingerprint_times(files, indexed, rng)
    pad_index(index, list(fps.values()), max(0, args.n_stored - len(indexed)), args.seed)
    lat = []
    for _, _, q in queries[: args.n_latency]:
        t = time.perf_counter()
        index.query(q)
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    rebuild = sqlite_start_s(blobs[indexed[0]], args.n_stored) if args.sqlite else None
    load = os.getloadavg()
    print(f"load average {load} on {os.cpu_count()} cores; lookup at {len(index)} items: min "
          f"{lat[0]:.2f} p50 {statistics.median(lat):.2f} p95 {lat[int(0.95 * (len(lat) - 1))]:.2f} ms; "
          f"fingerprint p50 {statistics.median(fp_times):.2f} ms", file=sys.stderr)
    return {
        "recall": round(chosen["recall"], 4), "precision": round(chosen["precision"], 4),
        "recall_by_transform": {k: round(v, 4) for k, v in chosen["recall_by_transform"].items()
                                if k != "mirror"},
        "mirrored_recall": round(chosen["mirrored_recall"], 4),
        "mirrored_flag_rate": round(chosen["mirrored_flag_rate"], 4),
        "false_positives": chosen["false_positives"],
        "holdout_fp_rate": round(chosen["holdout_fp_rate"], 4),
        "max_distance": DEFAULT_MAX_DISTANCE, "coarse_radius": fpm.COARSE_RADIUS,
        "lookup_min_ms": round(lat[0], 3), "lookup_p50_ms": round(statistics.median(lat), 3),
        "lookup_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 3),
        "fingerprint_p50_ms": round(statistics.median(fp_times), 3),
        "fingerprint_p95_ms": round(fp_times[int(0.95 * (len(fp_times) - 1))], 3),
        "rebuild_s": None if rebuild is None else round(rebuild, 2),
        "n_stored": len(index), "n_real_stored": len(indexed),
        "n_synthetic_stored": len(index) - len(indexed), "per_kind": args.per_kind,
        "n_holdout": len(holdout), "load_average": [round(x, 2) for x in load],
    }


if __name__ == "__main__":
    main()
