"""``modbot demo``: the real daemon, through praw, against the sandbox and the shipped sample.

Nothing here is simulated except Reddit itself: the sandbox is a real HTTP server on 127.0.0.1,
the images are real (r/Art, PACS and Battle for Wesnoth digital paintings under GPL-2+, see
``modbot/sandbox/sample/README.md``), the model is the shipped one, and the database is a real
SQLite file left behind for inspection. Every flag is checked against the sample's truth
(:func:`truth_check`): right when the post's true medium differs from the stated one, false
when it does not.

The demo never deletes what it did not create: it works in a directory that is new or empty,
and marks it with :data:`MARKER` listing the database files it made there. Run again with the
same directory, it resets only those (and its ``cache/`` and ``models/``); any other non-empty
directory, or a database there it did not make, is refused (:func:`prepare_workdir`).
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modbot.config import Config
from modbot.errors import InputError

#: File the demo writes in its directory: one line per database file name it created there.
MARKER = ".modbot-demo"


@dataclass
class DemoResult:
    """What the demo did: database path, counts by status and verdict, sandbox writes, and the
    comparison with the sample's truth (:func:`truth_check`: counts and ``flags``)."""

    database: str
    statuses: dict[str, int]
    verdicts: dict[str, int]
    writes: dict[str, int]
    released: int
    seconds: float
    truth: dict[str, Any]


def demo_config(server_url: str, workdir: Path, *, act: bool, db_name: str = "modbot.db") -> Config:
    """The configuration the demo runs with: sandbox endpoints, files under ``workdir`` (the
    database ``workdir/db_name``)."""
    return Config().replace(
        reddit={"oauth_url": server_url, "reddit_url": server_url, "short_url": server_url,
                "subreddits": "Art", "poll_interval": 0.2, "request_timeout": 10.0,
                "user_agent": "python:modbot-demo:0.1.0 (by /u/modbot-sandbox)"},
        storage={"database": str(workdir / db_name), "image_cache": str(workdir / "cache")},
        images={"allow_hosts": ["127.0.0.1"]},
        actions={"report": act, "comment": act},
        learning={"models_dir": str(workdir / "models")},
    )


def prepare_workdir(db_path: str | Path) -> Path:
    """Make ``db_path``'s directory ready for a fresh demo run and return it.

    - New or empty directory: created, marked with :data:`MARKER` naming ``db_path``.
    - Directory with the marker: the database files the marker lists (with their ``-wal``,
      ``-shm``, ``-journal`` and ``.lock``), ``cache/`` and ``models/`` are deleted; ``db_path`` is added
      to the marker unless it exists and is not listed there (then refused).
    - Anything else (a non-empty directory without the marker): nothing is touched.

    Raises ``InputError`` when the directory or the database is not the demo's own, or
    ``db_path`` is a directory.
    """
    db = Path(db_path)
    workdir = db.parent
    marker = workdir / MARKER
    if db.is_dir():
        raise InputError(f"--db {db} is a directory; give a database file path")
    if marker.is_file():
        owned = [n for n in marker.read_text(encoding="utf-8").splitlines() if n.strip()]
        if db.exists() and db.name not in owned:
            raise InputError(f"refusing to reuse {db}: the demo did not create it "
                             f"({marker} does not list it); give --db another file name")
    elif workdir.exists() and any(workdir.iterdir()):
        raise InputError(f"refusing to use {workdir}: it is not empty and `modbot demo` did not "
                         f"create it (no {MARKER} file); give --db a path in a new or empty "
                         "directory, e.g. --db modbot-demo/modbot.db")
    else:
        owned = []
        workdir.mkdir(parents=True, exist_ok=True)
    for name in owned:
        for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
            (workdir / (name + suffix)).unlink(missing_ok=True)
    for sub in ("cache", "models"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    if db.name not in owned:
        owned.append(db.name)
    marker.write_text("".join(f"{n}\n" for n in owned), encoding="utf-8")
    return workdir


def run_demo(workdir: str | Path, *, db_name: str = "modbot.db", act: bool = True,
             fresh: bool = True, release_every_s: float = 0.2, batch: int = 3,
             timeout_s: float = 300.0, classifier: Any = None) -> DemoResult:
    """Serve the sample, run the daemon until every sample post is recorded, return counts.

    ``workdir`` receives the database ``db_name``, ``cache/`` and ``models/``; ``fresh``
    prepares it first (:func:`prepare_workdir`: only a new, empty or demo-made directory, and
    only what the demo made there is reset). ``act`` switches report+comment on (they go to the
    sandbox only). Posts are released ``batch`` at a time every ``release_every_s`` seconds, so
    the daemon sees a live stream. Raises ``InputError`` for a directory or database that is not
    the demo's, ``TimeoutError`` if the sample is not processed within ``timeout_s`` seconds.
    """
    import time

    from modbot.daemon import Daemon
    from modbot.learning import learning_loop
    from modbot.sandbox.sample import load_sample
    from modbot.sandbox.server import SandboxServer
    from modbot.stream import make_reddit

    workdir = Path(workdir)
    if fresh:
        prepare_workdir(workdir / db_name)
    workdir.mkdir(parents=True, exist_ok=True)

    posts, images = load_sample()
    started = time.monotonic()
    with SandboxServer(posts, images, released=batch) as server:
        config = demo_config(server.url, workdir, act=act, db_name=db_name)
        creds = {k: v for k, v in server.praw_kwargs().items()
                 if k in ("client_id", "client_secret", "username", "password")}
        reddit = make_reddit(config, **creds)
        learning = learning_loop(config, classifier)
        daemon = Daemon(config, reddit=reddit, classifier=learning.classifier, jobs=(learning,))
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
        database=str(workdir / db_name),
        statuses={k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("status:")},
        verdicts={k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("verdict:")},
        writes=writes,
        released=released,
        seconds=time.monotonic() - started,
        truth=truth,
    )


def flag_truth(truth: dict[str, Any] | None) -> str:
    """Whether a flag (``mismatch`` verdict) on a post with this ``_sandbox_truth`` is right.

    ``"right"``: the post shows another medium than it states (a mis-stated post caught);
    ``"false"``: it shows the medium it states (a correctly stated post flagged);
    ``"unknown"``: the sample does not know (no truth record, or no true or stated medium).
    """
    truth = truth or {}
    medium, stated = truth.get("medium"), truth.get("stated")
    if medium is None or stated is None:
        return "unknown"
    return "right" if medium != stated else "false"


def truth_check(db: Any, posts: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare the verdicts in ``db`` with what the sample knows (``_sandbox_truth``).

    Returns counts — ``flagged`` (sample posts judged ``mismatch``), split by
    :func:`flag_truth` into ``right_flags``, ``false_flags`` and ``unknown_flags``;
    ``wrong_stated`` (deliberately mis-stated posts), ``wrong_stated_judged`` (of those, judged
    match/mismatch/uncertain) and ``wrong_stated_flagged`` (of those, ``mismatch``);
    ``right_stated_judged`` (correctly stated posts judged match/mismatch/uncertain) — and
    ``flags``: fullname → ``"right"``/``"false"``/``"unknown"`` for every flagged post.
    """
    verdicts = dict(db.execute("SELECT submission, kind FROM verdicts").fetchall())
    judged = ("match", "mismatch", "uncertain")
    out: dict[str, Any] = {k: 0 for k in (
        "flagged", "right_flags", "false_flags", "unknown_flags", "wrong_stated",
        "wrong_stated_judged", "wrong_stated_flagged", "right_stated_judged")}
    flags: dict[str, str] = {}
    for post in posts:
        truth = post.get("_sandbox_truth") or {}
        fullname = post.get("name") or f"t3_{post['id']}"
        kind = verdicts.get(fullname)
        if kind == "mismatch":
            flags[fullname] = flag_truth(truth)
            out["flagged"] += 1
            out[flags[fullname] + "_flags"] += 1
        if truth.get("wrong_stated"):
            out["wrong_stated"] += 1
            out["wrong_stated_judged"] += kind in judged
            out["wrong_stated_flagged"] += kind == "mismatch"
        elif kind in judged and truth.get("medium") is not None:
            out["right_stated_judged"] += 1
    out["flags"] = flags
    return out
