"""``modbot cache`` on a database and image cache the real daemon wrote, and the daemon's own
pruning job in a ``modbot run`` subprocess: the least recently used originals go, images
moderators labelled or recently flagged stay, a read-only status changes nothing, a wrong
database path removes nothing, and a retraining run reading the cache defers pruning."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from test_report import built_database, cli, copy_db, raw

from modbot.fsutil import file_lock
from modbot.imagecache import CACHE_IN_USE_LOCK

DAY = 86400.0


@pytest.fixture
def site(tmp_path, tmp_path_factory, sample, shipped_classifier) -> dict[str, Path]:
    """A private copy of the daemon's database and image cache, every cached file last used
    three days ago, and a config whose limit (1 byte) asks to remove all that may go."""
    built = built_database(tmp_path_factory, sample, shipped_classifier)
    db = copy_db(built["db"], tmp_path / "modbot.db")
    cache = tmp_path / "cache"
    shutil.copytree(Path(built["db"]).parent / "cache", cache)
    old = time.time() - 3 * DAY
    for p in cache.rglob("*.*"):
        os.utime(p, (old, old))
    config = tmp_path / "modbot.toml"
    config.write_text(f'[storage]\ndatabase = "{db}"\nimage_cache = "{cache}"\n'
                      "image_cache_max_bytes = 1\n", encoding="utf-8")
    return {"db": db, "cache": cache, "config": config}


def cached(cache: Path) -> set[str]:
    return {p.name.split(".")[0] for p in cache.glob("??/*.*")}


def digests(db: Path, sql: str) -> set[str]:
    return {r[0] for r in raw(db, sql)}


def cache_json(config: Path, *args: str) -> dict:
    res = cli("--config", str(config), "cache", *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


FLAGGED = ("SELECT i.sha256 FROM images i JOIN verdicts v ON v.submission = i.submission "
           "WHERE v.kind IN ('mismatch', 'uncertain')")


def test_status_changes_nothing_and_prune_keeps_reviewed_and_recent_flags(site):
    db, cache, config = site["db"], site["cache"], site["config"]
    before = cached(cache)
    flagged = digests(db, FLAGGED)
    assert flagged and flagged < before, "the demo sample has flagged posts with cached images"

    # the flags are older than the review queue's 30 days, but one was reviewed
    with sqlite3.connect(db) as c:
        c.execute("UPDATE verdicts SET created_at = created_at - 60 * 86400")
    c.close()
    reviewed = raw(db, "SELECT submission FROM verdicts WHERE kind = 'mismatch' ORDER BY submission")[0][0]
    res = cli("review", "--db", str(db), "dismiss", reviewed, "--note", "checked",
              "--moderator", "mod_a")
    assert res.exit_code == 0, res.output
    kept = digests(db, f"SELECT sha256 FROM images WHERE submission = '{reviewed}'")
    assert kept

    gc.collect()  # the review command's connection, closed
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    snapshot = db.read_bytes()
    status = cache_json(config)  # `modbot cache` = status: reads only
    assert status["dry_run"] and status["files"] == len(before)
    assert status["removed_files"] == len(before) - len(kept) and status["pinned_files"] == len(kept)
    assert cached(cache) == before
    assert db.read_bytes() == snapshot and not raw(db, "PRAGMA wal_checkpoint")[0][1]

    pruned = cache_json(config, "prune")
    assert not pruned["dry_run"] and pruned["removed_files"] == len(before) - len(kept)
    assert cached(cache) == kept
    assert pruned["bytes_after"] == sum(p.stat().st_size for p in cache.glob("??/*.*"))
    assert pruned["over_limit"]  # the reviewed images alone exceed 1 byte
    human = cli("--config", str(config), "cache").stdout
    assert "still over the limit" in human and f"{len(kept)} files" in human


def test_recent_flags_and_recently_used_images_stay(site):
    db, cache, config = site["db"], site["cache"], site["config"]
    flagged = digests(db, FLAGGED)  # flagged now: within the 30-day review queue
    young = next(iter(cached(cache) - flagged))
    for p in cache.glob(f"??/{young}.*"):
        os.utime(p)  # used just now (e.g. the same picture posted again)
    report = cache_json(config, "prune")
    assert cached(cache) == flagged | {young}
    assert report["pinned_files"] == len(flagged) and report["young_bytes"] > 0


def test_a_wrong_database_path_is_an_error_and_removes_nothing(site, tmp_path):
    before = cached(site["cache"])
    res = cli("--config", str(site["config"]), "cache", "prune", "--db", str(tmp_path / "typo.db"))
    assert res.exit_code == 1 and "typo.db" in res.output
    assert cached(site["cache"]) == before
    assert not (tmp_path / "typo.db").exists()


def test_another_installations_database_is_refused_and_removes_nothing(site, tmp_path):
    """`--db` naming a modbot database that did not fill this cache (here a new, empty one; in
    life the demo's): its pins would not protect the cache's labelled images."""
    from support import fresh_db

    other = fresh_db(tmp_path / "other")
    other.conn.close()
    before = cached(site["cache"])
    wrong = ("--db", str(tmp_path / "other" / "modbot.db"))
    for args in (("cache", *wrong), ("cache", "status", *wrong), ("cache", "prune", *wrong)):
        res = cli("--config", str(site["config"]), *args)
        assert res.exit_code == 1 and "does not belong" in res.output, res.output
    assert cached(site["cache"]) == before
    assert cache_json(site["config"], "prune")["removed_files"] > 0   # its own database: prunes


def test_a_retraining_run_reading_the_cache_defers_pruning(site):
    before = cached(site["cache"])
    with file_lock(site["cache"] / CACHE_IN_USE_LOCK, shared=True):  # as retrain_once holds it
        res = cli("--config", str(site["config"]), "cache", "prune")
    assert res.exit_code == 1 and "retraining run is reading" in res.output
    assert cached(site["cache"]) == before
    assert cache_json(site["config"], "prune")["removed_files"] > 0  # once it has ended


def test_the_daemon_prunes_on_its_own(tmp_path):
    """`modbot run` with a limit: its pruning job runs at start and removes an old original."""
    from support import NotifySocket, run_env, write_run_config
    from test_signals import Daemon

    from modbot.imagecache import cache_path, store_original
    from modbot.sandbox.server import SandboxServer

    old = cache_path(tmp_path / "cache", "ab" + "0" * 62, "JPEG")
    store_original(old, b"x" * 5000)
    os.utime(old, (time.time() - 3 * DAY,) * 2)
    with SandboxServer([], {}) as server:
        config = write_run_config(tmp_path / "modbot.toml", server, tmp_path, act=False,
                                  storage={"image_cache_max_bytes": 1000})
        notify = NotifySocket(tmp_path)
        try:
            daemon = Daemon(config, run_env(server, notify=notify))
            assert notify.wait_for("READY=1", 120), daemon.lines[-20:]
            event = daemon.wait_event("image_cache_pruned")
            assert daemon.stop() == 0
        finally:
            notify.close()
    assert event["removed_files"] == 1 and event["removed_bytes"] == 5000
    assert not old.exists()


def test_the_job_warns_when_the_disk_cannot_hold_the_limit(site):
    """A limit larger than the free disk cannot protect it: the job says so (and prunes
    nothing while within that limit); a limit the disk can hold gives no such warning."""
    import structlog

    from modbot.config import load_config
    from modbot.learning.cache import CachePruneJob, cache_prune_job

    before = cached(site["cache"])
    huge = load_config(site["config"], env={}).replace(storage={"image_cache_max_bytes": 10**18})
    with structlog.testing.capture_logs() as logs:
        report = CachePruneJob(huge).run_once()
    warned = [e for e in logs if e["event"] == "image_cache_limit_above_free_disk"]
    assert report is not None and report.removed_files == 0 and cached(site["cache"]) == before
    assert len(warned) == 1 and 0 < warned[0]["free_bytes"] < warned[0]["may_grow_bytes"]

    small = huge.replace(storage={"image_cache_max_bytes": 1})
    with structlog.testing.capture_logs() as logs:
        report = CachePruneJob(small).run_once()
    assert report is not None and report.removed_files > 0
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["image_cache_over_limit"]
    # no limit, or no interval: no job
    assert cache_prune_job(small.replace(storage={"image_cache_max_bytes": 0})) is None
    assert cache_prune_job(small.replace(storage={"image_cache_prune_interval_s": 0.0})) is None
    assert isinstance(cache_prune_job(small), CachePruneJob)
