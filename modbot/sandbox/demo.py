"""``modbot demo``: the real daemon, through praw, against the sandbox and the shipped sample.

Nothing here is simulated except Reddit itself: the sandbox is a real HTTP server on 127.0.0.1,
the images are real (r/Art and PACS, see ``modbot/sandbox/sample/``), the model is the shipped
one, and the database is a real SQLite file left behind for inspection.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modbot.config import Config


@dataclass
class DemoResult:
    """What the demo did: database path, counts by status and verdict, sandbox writes."""

    database: str
    statuses: dict[str, int]
    verdicts: dict[str, int]
    writes: dict[str, int]
    released: int
    seconds: float
    truth: dict[str, int]


def demo_config(server_url: str, workdir: Path, *, act: bool) -> Config:
    """The configuration the demo runs with: sandbox endpoints, files under ``workdir``."""
    return Config().replace(
        reddit={"oauth_url": server_url, "reddit_url": server_url, "short_url": server_url,
                "subreddits": "Art", "poll_interval": 0.2, "request_timeout": 10.0,
                "user_agent": "python:modbot-demo:0.1.0 (by /u/modbot-sandbox)"},
        storage={"database": str(workdir / "modbot.db"), "image_cache": str(workdir / "cache")},
        images={"allow_hosts": ["127.0.0.1"]},
        actions={"report": act, "comment": act},
        learning={"models_dir": str(workdir / "models")},
    )


def run_demo(workdir: str | Path, *, act: bool = True, fresh: bool = True,
             release_every_s: float = 0.2, batch: int = 3, timeout_s: float = 300.0,
             classifier: Any = None) -> DemoResult:
    """Serve the sample, run the daemon until every sample post is recorded, return counts.

    ``workdir`` receives ``modbot.db`` and ``cache/``; ``fresh`` deletes them first.
    ``act`` switches report+comment on (they go to the sandbox only). Posts are released
    ``batch`` at a time every ``release_every_s`` seconds, so the daemon sees a live stream.
    Raises ``TimeoutError`` if the sample is not processed within ``timeout_s`` seconds.
    """
    import time

    from modbot.daemon import Daemon
    from modbot.sandbox.sample import load_sample
    from modbot.sandbox.server import SandboxServer
    from modbot.stream import make_reddit

    workdir = Path(workdir)
    if fresh:
        for name in ("modbot.db", "modbot.db-wal", "modbot.db-shm"):
            (workdir / name).unlink(missing_ok=True)
        shutil.rmtree(workdir / "cache", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)

    posts, images = load_sample()
    started = time.monotonic()
    with SandboxServer(posts, images, released=batch) as server:
        config = demo_config(server.url, workdir, act=act)
        creds = {k: v for k, v in server.praw_kwargs().items()
                 if k in ("client_id", "client_secret", "username", "password")}
        reddit = make_reddit(config, **creds)
        daemon = Daemon(config, reddit=reddit, classifier=classifier)
        stop = threading.Event()

        def releaser() -> None:
            while not stop.is_set() and server.pending:
                stop.wait(release_every_s)
                server.release(batch)

        thread = threading.Thread(target=releaser, name="demo-release", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s

        def all_recorded() -> bool:
            if time.monotonic() > deadline:
                raise TimeoutError(f"demo did not finish in {timeout_s:.0f} s")
            if server.pending:
                return False
            recorded = {r[0] for r in daemon.store.db.execute(
                "SELECT fullname FROM submissions WHERE status IN ('done','skipped','failed','retry')")}
            return set(server.released) <= recorded

        try:
            daemon.run(stop=stop, until=all_recorded)
        finally:
            stop.set()
            thread.join(timeout=5)
        writes: dict[str, int] = {}
        for w in server.writes:
            writes[w.kind] = writes.get(w.kind, 0) + 1
        released = len(server.released)
        counts = daemon.store.counts()
        truth = truth_check(daemon.store.db, posts)
        daemon.close()
    return DemoResult(
        database=str(workdir / "modbot.db"),
        statuses={k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("status:")},
        verdicts={k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("verdict:")},
        writes=writes,
        released=released,
        seconds=time.monotonic() - started,
        truth=truth,
    )


def truth_check(db: Any, posts: list[dict[str, Any]]) -> dict[str, int]:
    """Compare verdicts with what the sample knows (``_sandbox_truth``).

    Returns counts: ``wrong_stated`` (posts whose stated medium is deliberately wrong),
    ``wrong_stated_flagged`` (of those, judged ``mismatch``), ``right_stated_judged``
    (correctly stated posts that got match/mismatch) and ``false_flags`` (of those, ``mismatch``).
    """
    verdicts = dict(db.execute("SELECT submission, kind FROM verdicts").fetchall())
    out = {"wrong_stated": 0, "wrong_stated_flagged": 0, "right_stated_judged": 0, "false_flags": 0}
    for post in posts:
        truth = post.get("_sandbox_truth") or {}
        kind = verdicts.get(post.get("name") or f"t3_{post['id']}")
        if truth.get("wrong_stated"):
            out["wrong_stated"] += 1
            out["wrong_stated_flagged"] += kind == "mismatch"
        elif kind in ("match", "mismatch"):
            out["right_stated_judged"] += 1
            out["false_flags"] += kind == "mismatch"
    return out
