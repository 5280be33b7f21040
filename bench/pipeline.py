"""Pipeline speed (issue 14): backlog catch-up, cold start, trickle latency, and the moderators'
queries on a million submissions — the real ``modbot run`` (shipped LiteRT model) against the
Reddit sandbox on loopback.

Scenarios, one sandbox and one database (dry-run: actions are recorded, not sent):

1. **Backlog**: ``--backlog`` posts (1,000) visible before the daemon starts, every image
   download delayed ``--image-latency`` s (50 ms), half of the images 1500 px JPEGs, half
   small ones. Rate = posts / (last ``updated_at`` − first ``first_seen_at``), from the database.
2. **Trickle**: one post a second for ``--trickle-s`` s (120); latency = the verdict's
   ``created_at`` − the moment the bench made the post visible (same clock); p50 / p95.
3. **Cold start**: the daemon is stopped (SIGTERM), ``--cold`` posts (900) appear, the daemon
   starts again: how many of them were never recorded (``cold_start_missed``).
4. **Queries**: ``modbot report`` and ``modbot review`` (real CLI subprocesses, read-only) on a
   generated database of ``--db-rows`` submissions (1,000,000; realistic raw JSON per row,
   verdicts, images, dry-run actions, ~5 % of flags reviewed), built with ``executemany``.

Also sampled: the daemon's RSS (``/proc/<pid>/status``, every 0.5 s), every API request the
sandbox answered (images excluded), for the busiest 60-s window, and the daemon's CPU time per
backlog post (``/proc/<pid>/stat``: the whole process, and its main thread, which classifies,
judges and records while the download threads decode and prepare) — less dependent than the
rate on other jobs sharing the machine.
The last line printed is one JSON object (``--json`` prints only it).

Run from the repository root: ``python bench/pipeline.py [--json] [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from modbot.sandbox.harness import NotifySocket, modbot_run_cmd, run_config_toml, run_env

REPO = Path(__file__).resolve().parent.parent
MEDIA_TITLES = ("oil on canvas", "digital", "graphite", "watercolor", "photograph", "procreate",
                "acrylic", "charcoal", "ink", "pastel")


# --- inputs ----------------------------------------------------------------------------------
def make_images(n_each: int, seed: int = 1) -> dict[str, bytes]:
    """``n_each`` 1500x1000 JPEGs (``big-K.jpg``) and ``n_each`` 400x300 ones (``small-K.jpg``):
    smooth colour fields with noise, so they compress like photographed artwork."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    out = {}
    for k in range(n_each):
        for name, size in ((f"big-{k}.jpg", (1500, 1000)), (f"small-{k}.jpg", (400, 300))):
            small = Image.frombytes("RGB", (48, 32), rng.randbytes(48 * 32 * 3))
            img = small.resize(size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
            noise = Image.effect_noise(size, 24).convert("RGB")
            img = Image.blend(img, noise, 0.15)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=88)
            out[name] = buf.getvalue()
    return out


def make_posts(n: int, n_images: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` i.redd.it image posts; even ones a big image, odd ones a small one."""
    posts = []
    for i in range(start, start + n):
        pid = f"b{i:06d}"
        image = f"{'big' if i % 2 == 0 else 'small'}-{(i // 2) % n_images}.jpg"
        posts.append({
            "id": pid, "name": f"t3_{pid}", "author": f"artist_{i % 97}", "subreddit": "Art",
            "title": f"Work {i}, me, {MEDIA_TITLES[i % len(MEDIA_TITLES)]}, 2026",
            "url": "{base}/i/" + image, "domain": "i.redd.it", "post_hint": "image",
            "is_self": False, "is_video": False, "link_flair_text": None,
            "permalink": f"/r/Art/comments/{pid}/x/"})
    return posts


# --- the daemon ------------------------------------------------------------------------------
class Daemon:
    """``modbot run`` as a subprocess, its notify socket and an RSS sampler."""

    def __init__(self, work: Path, server: Any, poll_interval: float | None, *, act: bool = False,
                 **sections: dict[str, Any]) -> None:
        self.work, self.server = work, server
        reddit = {"request_timeout": 10.0,
                  "user_agent": "python:modbot-pipeline-bench:0.1.0 (by /u/modbot-sandbox)"}
        if poll_interval is not None:
            reddit["poll_interval"] = poll_interval
        conf = run_config_toml(server.url, work, act=act, reddit=reddit, **sections)
        if poll_interval is None:  # the shipped default
            conf = conf.replace('poll_interval = 0.2\n', '')
        self.config = work / "modbot.toml"
        self.config.write_text(conf, encoding="utf-8")
        self.rss_mb: list[tuple[float, float]] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait for READY; returns the seconds that took."""
        notify = NotifySocket(self.work)
        env = run_env(self.server, notify=notify, praw_ini_dir=self.work)
        t0 = time.monotonic()
        log = open(self.work / "daemon.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(modbot_run_cmd(self.config), cwd=str(REPO), env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        if not notify.wait_ready(self.proc, 120):
            raise RuntimeError(f"daemon not ready; see {self.work / 'daemon.log'}")
        notify.close()
        (self.work / "notify.sock").unlink(missing_ok=True)
        threading.Thread(target=self._sample, args=(self.proc,), daemon=True).start()
        return time.monotonic() - t0

    def _sample(self, proc: subprocess.Popen) -> None:
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss_mb.append((time.time(), int(line.split()[1]) / 1024))
            except OSError:
                return
            time.sleep(0.5)

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds (user + system) the daemon has used so far: the whole process, and its
        main thread (the one that classifies, judges and records; downloads run on others)."""
        assert self.proc is not None
        tick = os.sysconf("SC_CLK_TCK")

        def read(path: str) -> float:
            fields = Path(path).read_text().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

        pid = self.proc.pid
        return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def db_rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows read through a separate connection (the daemon is writing)."""
    conn = sqlite3.connect(str(db), timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_recorded(db: Path, fullnames: list[str], timeout_s: float) -> int:
    """Wait until every one of ``fullnames`` is in a final status; returns how many are not."""
    want = set(fullnames)
    deadline = time.monotonic() + timeout_s
    missing = len(want)
    while time.monotonic() < deadline:
        if db.exists():
            done = {r[0] for r in db_rows(db, "SELECT fullname FROM submissions WHERE status IN "
                                          "('done', 'skipped', 'failed')")}
            missing = len(want - done)
            if not missing:
                return 0
        time.sleep(0.5)
    return missing


def busiest_minute(requests: list[Any]) -> int:
    """Most API requests (not image downloads) in any sliding 60-s window."""
    times = sorted(r.time for r in requests if not r.path.startswith(("/i/", "/_sandbox")))
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 60:
            j += 1
        best = max(best, i - j + 1)
    return best


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- scenarios -------------------------------------------------------------------------------
def run_stream(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Scenarios 1-3 (module docstring)."""
    from modbot.sandbox.server import SandboxServer

    images = make_images(args.distinct_images)
    backlog = make_posts(args.backlog, args.distinct_images)
    trickle = make_posts(args.trickle_s, args.distinct_images, start=args.backlog)
    cold = make_posts(args.cold, args.distinct_images, start=args.backlog + args.trickle_s)
    server = SandboxServer(backlog + trickle + cold, images, released=0,
                           image_latency_s=args.image_latency)
    server.start()
    db = work / "modbot.db"
    out: dict[str, Any] = {}
    daemon = Daemon(work, server, args.poll_interval,
                    **({"reposts": {"enabled": False}} if args.no_reposts else {}))
    try:
        names = server.release(len(backlog))
        out["startup_s"] = round(daemon.start(), 1)
        cpu0 = daemon.cpu_s()
        missing = wait_recorded(db, names, 600)
        cpu1 = daemon.cpu_s()
        (first, last), = db_rows(db, "SELECT MIN(first_seen_at), MAX(updated_at) FROM "
                                 "submissions WHERE fullname IN (%s)" % ",".join("?" * len(names)),
                                 tuple(names))
        out["backlog_posts"] = len(names) - missing
        out["backlog_s"] = round(last - first, 2)
        out["backlog_posts_per_s"] = round((len(names) - missing) / max(1e-9, last - first), 1)
        # CPU per post: less dependent on other jobs sharing the machine than the rate
        out["backlog_cpu_ms_per_post"] = round(1000 * (cpu1[0] - cpu0[0]) / len(names), 2)
        out["backlog_main_thread_ms_per_post"] = round(1000 * (cpu1[1] - cpu0[1]) / len(names), 2)
        rss_before = max((r for _, r in daemon.rss_mb), default=0.0)

        visible: dict[str, float] = {}
        t_start = time.monotonic()
        for k in range(args.trickle_s):
            time.sleep(max(0.0, t_start + k - time.monotonic()))
            visible[server.release(1)[0]] = time.time()
        wait_recorded(db, list(visible), 60)
        verdicts = dict(db_rows(db, "SELECT submission, created_at FROM verdicts WHERE submission "
                                "IN (%s)" % ",".join("?" * len(visible)), tuple(visible)))
        lat = [verdicts[f] - t for f, t in visible.items() if f in verdicts]
        out["trickle_posts"], out["trickle_judged"] = len(visible), len(lat)
        out["latency_p50_s"] = round(statistics.median(lat), 2) if lat else None
        out["latency_p95_s"] = round(percentile(lat, 0.95), 2) if lat else None
        out["latency_max_s"] = round(max(lat), 2) if lat else None
        out["rss_after_backlog_mb"] = round(rss_before, 1)
        out["rss_after_trickle_mb"] = round(daemon.rss_mb[-1][1], 1) if daemon.rss_mb else None

        daemon.stop()
        waiting = server.release(len(cold))
        t0 = time.time()
        daemon.start()
        out["cold_start_waiting"] = len(waiting)
        out["cold_start_missed"] = wait_recorded(db, waiting, 600)
        (first, last), = db_rows(db, "SELECT MIN(first_seen_at), MAX(updated_at) FROM "
                                 "submissions WHERE fullname IN (%s)" % ",".join("?" * len(waiting)),
                                 tuple(waiting))
        out["cold_start_catch_up_s"] = round(last - first, 1) if first else None
        out["cold_start_total_s"] = round(last - t0, 1) if last else None
        out["backlog_gaps"] = db_rows(db, "SELECT COUNT(*) FROM backlog_gaps")[0][0]
        out["requests_per_min_max"] = busiest_minute(server.requests)
        out["image_downloads"] = sum(r.path.startswith("/i/") for r in server.requests)
    finally:
        daemon.stop()
        server.stop()
    out["max_rss_mb"] = round(max((r for _, r in daemon.rss_mb), default=0.0), 1)
    return out


def generate_db(path: Path, n: int, seed: int = 1) -> int:
    """A migrated modbot database with ``n`` submissions shaped like r/Art over two years: raw
    JSON of a real sample post per row, 85 % done (one image, a verdict: 60 % match, 10 %
    mismatch with two dry-run actions, 15 % uncertain, 15 % not judged), 10 % skipped, 5 %
    failed; ~19 % of flags reviewed (one in ten twice). Returns the number of review rows."""
    from modbot.domain import MEDIA
    from modbot.record import open_database
    from modbot.sandbox.sample import load_sample

    open_database(path).conn.close()
    rng = random.Random(seed)
    raw = json.dumps(load_sample()[0][0], sort_keys=True)
    media = [*MEDIA, "unknown"]
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    t0, span = 1_700_000_000.0, 2 * 365 * 86400
    n_reviews = 0
    for lo in range(0, n, 100_000):
        subs, images, verdicts, actions, reviews = [], [], [], [], []
        for i in range(lo, min(n, lo + 100_000)):
            fn, created, stated = f"t3_{i:07x}", t0 + span * i / n, rng.choice(media)
            r = rng.random()
            status = "done" if r < 0.85 else "skipped" if r < 0.95 else "failed"
            subs.append((fn, fn[3:], "Art", f"Work {i}, me, {stated}, 2026", f"artist_{i % 50_000}",
                         f"/r/Art/comments/{fn[3:]}/x/", f"https://i.redd.it/{fn[3:]}.jpg",
                         created, stated, "title", stated, status, 1, created, created, raw))
            if status != "done":
                continue
            images.append((fn, 0, f"https://i.redd.it/{fn[3:]}.jpg", "direct", "ok", f"{i:064x}",
                           f"/var/lib/modbot/cache/{i:064x}.jpg", 250_000, 1500, 1000, "JPEG", created))
            k, pred = rng.random(), rng.choice(MEDIA)
            kind = ("match" if k < 0.6 else "mismatch" if k < 0.7 else "uncertain" if k < 0.85
                    else "not_judged")
            verdicts.append((fn, kind, stated, pred, rng.random(), "m1", 1, created))
            if kind == "mismatch":
                actions += [(fn, "report", "dry_run", "r", created, created),
                            (fn, "comment", "dry_run", "c", created, created)]
            if kind in ("mismatch", "uncertain") and rng.random() < 0.19:
                for _ in range(1 + (rng.random() < 0.1)):
                    reviews.append((fn, rng.choice(["confirm", "dismiss"]), pred, stated, pred,
                                    0.9, kind, "m1", "mod_one", created + 3600))
        conn.executemany(
            "INSERT INTO submissions (fullname, id, subreddit, title, author, permalink, url, "
            "created_utc, stated_medium, stated_source, stated_raw, status, attempts, "
            "first_seen_at, updated_at, data_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", subs)
        conn.executemany(
            "INSERT INTO images (submission, position, url, source, status, sha256, path, "
            "size_bytes, width, height, format, fetched_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", images)
        conn.executemany(
            "INSERT INTO verdicts (submission, kind, stated, predicted, confidence, model_version, "
            "n_images, created_at) VALUES (?,?,?,?,?,?,?,?)", verdicts)
        conn.executemany("INSERT INTO actions (submission, kind, status, text, created_at, "
                         "updated_at) VALUES (?,?,?,?,?,?)", actions)
        conn.executemany(
            "INSERT INTO reviews (submission, decision, true_medium, stated, predicted, confidence, "
            "verdict, model_version, moderator, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)", reviews)
        n_reviews += len(reviews)
    conn.execute("COMMIT")
    conn.close()
    return n_reviews


def run_queries(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Scenario 4: generate the database, then time the CLI commands (best of two runs each;
    the first also warms the page cache)."""
    db = work / "queries.db"
    t0 = time.monotonic()
    n_reviews = generate_db(db, args.db_rows)
    out: dict[str, Any] = {"db_rows": args.db_rows, "db_reviews": n_reviews,
                           "db_generate_s": round(time.monotonic() - t0, 1),
                           "db_size_mb": round(db.stat().st_size / 2**20)}
    for name, extra in (("report", []), ("review", [])):
        times = []
        for _ in range(2):
            t = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "modbot.cli", name, "--db", str(db),
                                   *extra], cwd=str(REPO), capture_output=True, text=True)
            times.append(time.monotonic() - t)
            if proc.returncode != 0:
                raise RuntimeError(f"modbot {name} failed: {proc.stderr[-500:]}")
        out[f"{name}_s_1m"] = round(min(times), 2)
        out[f"{name}_s_runs"] = [round(t, 2) for t in times]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("--quick", action="store_true", help="small sizes, for development")
    p.add_argument("--backlog", type=int, default=1000)
    p.add_argument("--cold", type=int, default=900)
    p.add_argument("--trickle-s", type=int, default=120)
    p.add_argument("--image-latency", type=float, default=0.05)
    p.add_argument("--distinct-images", type=int, default=60)
    p.add_argument("--poll-interval", type=float, default=None,
                   help="[reddit] poll_interval (default: the shipped default)")
    p.add_argument("--db-rows", type=int, default=1_000_000)
    p.add_argument("--skip", choices=("stream", "queries"), default=None)
    p.add_argument("--no-reposts", action="store_true",
                   help="[reposts] enabled = false (to measure what the repost finder costs a post)")
    args = p.parse_args()
    if args.quick:
        args.backlog, args.cold, args.trickle_s, args.db_rows = 200, 150, 20, 50_000
        args.distinct_images = 10
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modbot-pipeline-") as tmp:
        if args.skip != "stream":
            (Path(tmp) / "stream").mkdir()
            result.update(run_stream(args, Path(tmp) / "stream"))
        if args.skip != "queries":
            result.update(run_queries(args, Path(tmp)))
    keys = ("backlog_posts_per_s", "cold_start_missed", "latency_p50_s", "latency_p95_s",
            "report_s_1m", "review_s_1m", "max_rss_mb", "requests_per_min_max")
    if not args.json:
        for k, v in result.items():
            print(f"{k:28s} {v}")
    print(json.dumps({**{k: result.get(k) for k in keys}, "details": {
        k: v for k, v in result.items() if k not in keys}}))


if __name__ == "__main__":
    main()
