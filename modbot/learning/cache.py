"""Keeping the image cache within ``[storage] image_cache_max_bytes`` for months of streaming.

Every downloaded original is cached for retraining (:mod:`modbot.imagecache`); r/Art alone
sends gigabytes a day, and a full disk stops the daemon (posts are deferred until space
returns). :func:`prune_image_cache` removes the least recently used originals, with two
guarantees for the learning loop:

- images moderators labelled (``label_candidates`` rows with source ``review`` or ``modlog``)
  are pinned: never removed, since the post behind one may be gone from Reddit; so are the
  images of posts flagged (``mismatch`` or ``uncertain``) within :data:`PIN_FLAGGED_S`, which
  ``modbot review`` shows moderators;
- nothing is removed while a retraining run reads the cache (it holds
  :data:`~modbot.imagecache.CACHE_IN_USE_LOCK` shared; pruning needs it exclusive and waits
  for the next round instead).

Other evicted images are downloaded again by retraining or skipped with a reason
(:func:`modbot.learning.labels.locate_images`). :class:`CachePruneJob` runs it in the daemon
every ``[storage] image_cache_prune_interval_s`` seconds; ``modbot cache`` runs it by hand.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from datetime import UTC
from pathlib import Path
from typing import Any

import structlog

from modbot.config import Config
from modbot.cron import ScheduledJob
from modbot.errors import StoreError
from modbot.fsutil import file_lock
from modbot.imagecache import (
    CACHE_IN_USE_LOCK,
    PruneReport,
    cached_digests,
    prune_cache,
)

log = structlog.get_logger("modbot.learning.cache")

#: Label sources that pin an image (a moderator's decision: ``modbot review`` or the mod log).
PINNING_SOURCES = ("review", "modlog")
#: Images of posts flagged within this many seconds are pinned (30 days: the review queue).
PIN_FLAGGED_S = 30 * 86400.0


def pinned_digests(database: str | os.PathLike[str], *, now: float | None = None) -> frozenset[str]:
    """sha256 digests of the images to keep whatever the limit, read from the database at
    ``database`` (opened read-only): those moderators labelled (:data:`PINNING_SOURCES`) and
    those of posts flagged within :data:`PIN_FLAGGED_S` seconds of ``now`` (Unix seconds,
    default the clock). Raises :class:`~modbot.errors.StoreError` when there is no file there
    or it is not a current modbot database: a wrong path must never let pruning remove what it
    should keep."""
    from modbot.queries.db import open_readonly

    now = time.time() if now is None else now
    db = open_readonly(database)
    try:
        marks = ", ".join("?" for _ in PINNING_SOURCES)
        rows = db.execute(
            f"SELECT sha256 FROM label_candidates WHERE source IN ({marks}) "
            "UNION SELECT i.sha256 FROM images i JOIN verdicts v ON v.submission = i.submission "
            "WHERE v.kind IN ('mismatch', 'uncertain') AND v.created_at >= ?",
            [*PINNING_SOURCES, now - PIN_FLAGGED_S]).fetchall()
    finally:
        db.conn.close()
    return frozenset(r[0] for r in rows if r[0])


#: Cached files :func:`cache_known_share` samples (evenly over the sorted folders).
BELONGS_SAMPLE = 500


def cache_known_share(database: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                      sample: int = BELONGS_SAMPLE) -> tuple[int, int]:
    """(known, sampled): of up to ``sample`` cached originals in ``cache_dir`` (evenly spaced
    over its ``<aa>/`` folders), how many the ``images`` table of ``database`` (opened
    read-only) records by digest. Every file the daemon caches is recorded there, so
    ``known == 0 < sampled`` means the two belong to different installations (e.g. ``--db``
    pointed at the demo's database while the config names the live cache): pinning that
    database's labelled images would not protect the cache's own. Raises
    :class:`~modbot.errors.StoreError` for a missing or non-modbot database."""
    from modbot.queries.db import open_readonly

    names = cached_digests(cache_dir)
    if not names:
        return 0, 0
    step = max(1, len(names) // sample)
    picked = sorted(set(names[::step][:sample]))
    db = open_readonly(database)
    try:
        marks = ", ".join("?" for _ in picked)
        known = db.execute(f"SELECT COUNT(DISTINCT sha256) FROM images WHERE sha256 IN ({marks})",
                           picked).fetchone()[0]
    finally:
        db.conn.close()
    return int(known), len(picked)


def prune_image_cache(config: Config, *, dry_run: bool = False, now: float | None = None) -> PruneReport | None:
    """Bound ``[storage] image_cache`` to ``image_cache_max_bytes`` (see the module docstring
    and :func:`modbot.imagecache.prune_cache`), pinning :func:`pinned_digests` of
    ``[storage] database``. Returns the report, or None when a retraining run is reading the
    cache (nothing was done). ``dry_run`` removes nothing and does not wait for the lock.
    Raises :class:`~modbot.errors.StoreError` for an unreadable database and ``OSError`` for
    a file that cannot be removed."""
    st = config.storage
    cache = Path(st.image_cache)
    if dry_run or not cache.is_dir():  # a dry run, or nothing cached yet (no folder made)
        return prune_cache(cache, st.image_cache_max_bytes, pinned=pinned_digests(st.database, now=now),
                           now=now, dry_run=dry_run)
    with file_lock(cache / CACHE_IN_USE_LOCK, wait=False) as alone:
        if not alone:
            return None
        pinned = pinned_digests(st.database, now=now)  # read under the lock: none missed
        return prune_cache(cache, st.image_cache_max_bytes, pinned=pinned, now=now)


def log_report(report: PruneReport | None) -> None:
    """Structured log lines for a pruning round: ``image_cache_pruned`` (info) when it removed
    something, ``image_cache_over_limit`` (warning) when the pinned and recently used images
    alone exceed the limit, ``image_cache_limit_above_free_disk`` (warning) when the disk has
    less free space than the cache may still grow by (the limit cannot protect it)."""
    if report is None:
        log.info("image_cache_prune_deferred", reason="a retraining run is reading the cache")
        return
    fields = {k: v for k, v in report.as_dict().items() if k != "cache_dir"}
    if report.over_limit:
        log.warning("image_cache_over_limit", **fields)
    elif report.removed_files or report.temp_files:
        log.info("image_cache_pruned", **fields)
    else:
        log.debug("image_cache_within_limit", **fields)
    headroom = report.limit_bytes - report.bytes_after
    if report.limit_bytes and Path(report.cache_dir).is_dir():
        free = shutil.disk_usage(report.cache_dir).free
        if free < headroom:
            log.warning("image_cache_limit_above_free_disk", free_bytes=free, may_grow_bytes=headroom,
                        limit_bytes=report.limit_bytes)


class CachePruneJob(ScheduledJob):
    """:func:`prune_image_cache` as a background job of the daemon (``BackgroundJobs``
    protocol of :mod:`modbot.daemon`): every ``[storage] image_cache_prune_interval_s``
    seconds, the first run right after :meth:`start`, coalesced, never two at once."""

    job_id = "image_cache_prune"

    def __init__(self, config: Config) -> None:
        self.config = config
        super().__init__()
        #: the latest rounds' reports (bounded: the daemon runs for months)
        self.results: deque[PruneReport] = deque(maxlen=100)

    def run_once(self) -> PruneReport | None:
        """One round; errors are logged (None returned), never raised."""
        try:
            report = prune_image_cache(self.config)
        except (StoreError, OSError) as exc:
            log.error("image_cache_prune_error", error_type=type(exc).__name__, error=str(exc)[:300])
            return None
        log_report(report)
        self.results.append(report)
        return report

    def trigger(self) -> Any:
        """Every ``[storage] image_cache_prune_interval_s`` seconds."""
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(seconds=float(self.config.storage.image_cache_prune_interval_s), timezone=UTC)


def cache_prune_job(config: Config) -> CachePruneJob | None:
    """The pruning job for ``config``, or None when the cache has no limit or the interval is 0."""
    st = config.storage
    return CachePruneJob(config) if st.image_cache_max_bytes > 0 and st.image_cache_prune_interval_s > 0 else None
