"""Benchmark one pruning round of the image cache (``modbot.imagecache.prune_cache``), as the
daemon runs it every ``[storage] image_cache_prune_interval_s`` seconds.

One command, one run::

    python bench/cache_prune.py [--files 20000 100000] [--json]

For each cache size it lays out ``N`` cached originals of 2,000 bytes (real sizes do not
matter: the cost is one ``stat`` per file) in the ``<aa>/<sha256>.jpg`` layout, last used
over the past 60 days, 1 % of them pinned, in a temporary folder on this machine's disk, then
measures (wall time, ms):

- a dry run (``modbot cache status``): the scan and the plan, nothing removed;
- the real round with the limit at 50 % of the cache (removes about 55 % of the files:
  down to 90 % of the limit);
- a second round once within the limit (the usual hourly cost: a scan that removes nothing);

and the peak resident memory growth of the process (VmHWM, MB). Prints a table; with
``--json`` the last line is one JSON object ``{"rows": [...]}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import tempfile
import time
from pathlib import Path

from modbot.imagecache import cache_path, prune_cache

DAY = 86400.0
SIZE = 2000


def _hwm_mb() -> float:
    """Peak resident set size of this process (VmHWM, MB; Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def lay_out(root: Path, n: int, seed: int = 0) -> set[str]:
    """``n`` cached files under ``root``; returns the 1 % pinned digests."""
    rng = random.Random(seed)
    now = time.time()
    payload = b"\0" * SIZE
    pinned = set()
    for i in range(n):
        sha = hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
        path = cache_path(root, sha, "JPEG")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        t = now - (1 + rng.random() * 59) * DAY
        os.utime(path, (t, t))
        if i % 100 == 0:
            pinned.add(sha)
    return pinned


def measure(n: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="modbot-cache-bench-") as tmp:
        root = Path(tmp) / "cache"
        t = time.perf_counter()
        pinned = lay_out(root, n)
        setup_s = time.perf_counter() - t
        hwm0 = _hwm_mb()
        limit = n * SIZE // 2
        t = time.perf_counter()
        dry = prune_cache(root, limit, pinned=pinned, dry_run=True)
        dry_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        real = prune_cache(root, limit, pinned=pinned)
        real_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        again = prune_cache(root, limit, pinned=pinned)
        again_ms = (time.perf_counter() - t) * 1000
        assert dry.removed_files == real.removed_files and again.removed_files == 0
        return {"files": n, "setup_s": round(setup_s, 1), "dry_run_ms": round(dry_ms, 1),
                "prune_ms": round(real_ms, 1), "removed_files": real.removed_files,
                "within_limit_ms": round(again_ms, 1), "hwm_growth_mb": round(_hwm_mb() - hwm0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(n) for n in args.files]
    print(f"{'files':>8} {'dry run ms':>11} {'prune ms':>9} {'removed':>8} {'within-limit ms':>16} {'HWM +MB':>8}")
    for r in rows:
        print(f"{r['files']:>8} {r['dry_run_ms']:>11} {r['prune_ms']:>9} {r['removed_files']:>8} "
              f"{r['within_limit_ms']:>16} {r['hwm_growth_mb']:>8}")
    if args.json:
        print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
