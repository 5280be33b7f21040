"""What the repost finder adds to the daemon's per-post time (issue 16: "adds no more than 10 %").

The real ``modbot run`` (shipped LiteRT model, dry-run) against the Reddit sandbox on loopback,
as in ``bench/pipeline.py``'s backlog scenario: ``--backlog`` posts (1,000) are visible before
the daemon starts, each image download is delayed ``--image-latency`` s (50 ms), half of the
images are 1500x1000 JPEGs and half 400x300 ones (``pipeline.make_images``). Every image is new
except for ``--repost-share`` of the posts (5 %), which copy an earlier post's image under
another author: those posts get a repost finding. ``--repost-share 0.88`` with 60 distinct
images is ``bench/pipeline.py``'s own stream (each image posted ~8 times, every copy a finding).

The same stream runs ``--rounds`` times with the repost finder on and off (``[reposts] enabled
= false``), alternating, and the order switching each round (on-off, off-on, ...), so that a
drift in the machine's load falls on both. Per run: posts/s (posts / (last ``updated_at`` -
first ``first_seen_at``), from the database), CPU ms per post (``/proc/<pid>/stat``: the whole
daemon and its main thread), posts with a finding. The ratio compares the medians of the
runs, all from this one invocation.

The last line printed is one JSON object (``--json`` prints only it). Run from the repository
root: ``python bench/repost_cost.py [--rounds 4] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline as pl  # bench/pipeline.py: the daemon wrapper and the inputs


def make_stream(n: int, repost_share: float, distinct: int | None,
                seed: int = 16) -> tuple[list[dict[str, Any]], int]:
    """``n`` posts and the number of distinct images (each size) they need. Each post has its
    own image (``distinct`` None) or one of ``distinct``; then ``repost_share`` of the posts
    after the first 50 take the image URL of a random earlier post."""
    n_images = distinct or (n + 1) // 2
    posts = pl.make_posts(n, n_images)
    rng = random.Random(seed)
    for i in sorted(rng.sample(range(50, n), round(repost_share * n)) if distinct is None else ()):
        posts[i]["url"] = posts[rng.randrange(i)]["url"]
    return posts, n_images


def backlog_run(posts: list[dict[str, Any]], images: dict[str, bytes], *, reposts: bool,
                image_latency: float) -> dict[str, Any]:
    """One daemon over one fresh database and sandbox: the backlog's rate and CPU per post."""
    from modbot.sandbox.server import SandboxServer

    with tempfile.TemporaryDirectory(prefix="modbot-repost-cost-") as tmp:
        work = Path(tmp)
        server = SandboxServer(posts, images, released=0, image_latency_s=image_latency)
        server.start()
        daemon = pl.Daemon(work, server, None,
                           **({} if reposts else {"reposts": {"enabled": False}}))
        try:
            names = server.release(len(posts))
            daemon.start()
            cpu0 = daemon.cpu_s()
            db = work / "modbot.db"
            missing = pl.wait_recorded(db, names, 900)
            cpu1 = daemon.cpu_s()
            (first, last), = pl.db_rows(db, "SELECT MIN(first_seen_at), MAX(updated_at) "
                                            "FROM submissions")
            found = pl.db_rows(db, "SELECT COUNT(DISTINCT submission) FROM repost_findings")[0][0]
        finally:
            daemon.stop()
            server.stop()
    done = len(names) - missing
    return {"reposts": reposts, "posts": done,
            "posts_per_s": round(done / max(1e-9, last - first), 1),
            "cpu_ms_per_post": round(1000 * (cpu1[0] - cpu0[0]) / len(names), 2),
            "main_thread_ms_per_post": round(1000 * (cpu1[1] - cpu0[1]) / len(names), 2),
            "posts_with_finding": int(found)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per setting and what the finder adds, in % of the run without it."""
    out: dict[str, Any] = {}
    for on in (True, False):
        sel = [r for r in runs if r["reposts"] is on]
        key = "with" if on else "without"
        for m in ("posts_per_s", "cpu_ms_per_post", "main_thread_ms_per_post"):
            out[f"{m}_{key}"] = round(statistics.median(r[m] for r in sel), 2)
    out["added_wall_time_per_post_pct"] = round(
        100 * (out["posts_per_s_without"] / out["posts_per_s_with"] - 1), 1)
    out["added_cpu_per_post_pct"] = round(
        100 * (out["cpu_ms_per_post_with"] / out["cpu_ms_per_post_without"] - 1), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--backlog", type=int, default=1000)
    p.add_argument("--repost-share", type=float, default=0.05)
    p.add_argument("--distinct-images", type=int, default=None,
                   help="cycle through this many images per size instead (pipeline.py: 60)")
    p.add_argument("--image-latency", type=float, default=0.05)
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    args = p.parse_args()
    if not 0 <= args.repost_share < 0.95:
        p.error("--repost-share must be in [0, 0.95)")
    posts, n_images = make_stream(args.backlog, args.repost_share, args.distinct_images)
    images = pl.make_images(n_images)
    runs = []
    for r in range(args.rounds):
        for on in ((True, False) if r % 2 == 0 else (False, True)):
            run = backlog_run(posts, images, reposts=on, image_latency=args.image_latency)
            runs.append(run)
            if not args.json:
                print(f"round {r + 1} reposts {'on ' if on else 'off'}  {run['posts_per_s']:6.1f} "
                      f"posts/s  {run['cpu_ms_per_post']:6.2f} ms CPU/post  "
                      f"{run['main_thread_ms_per_post']:5.2f} ms main thread  "
                      f"{run['posts_with_finding']} with a finding", flush=True)
    result = {"backlog": args.backlog, "rounds": args.rounds,
              "distinct_images": args.distinct_images, "repost_share": args.repost_share,
              **summarise(runs), "runs": runs}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
