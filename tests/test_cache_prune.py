"""The image cache's bound (:func:`modbot.imagecache.prune_cache`) on real files: least
recently used first, down to the low-water mark, never a pinned or recently used file, stray
temporary files cleaned, nothing else touched; and the lock that keeps it off a cache that
retraining reads (:func:`modbot.fsutil.file_lock`)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from modbot.fsutil import file_lock
from modbot.imagecache import cache_path, prune_cache, store_original

NOW = 2_000_000_000.0
DAY = 86400.0


def put(cache: Path, payload: bytes, age_days: float) -> tuple[str, Path]:
    """Cache ``payload`` as a JPEG original last used ``age_days`` before NOW."""
    sha = hashlib.sha256(payload).hexdigest()
    path = cache_path(cache, sha, "JPEG")
    store_original(path, payload)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return sha, path


def files(cache: Path) -> set[str]:
    return {p.name for p in cache.rglob("*") if p.is_file()}


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def test_least_recently_used_go_first_down_to_the_low_water_mark(cache):
    # ten 1000-byte files, the oldest last used 10 days ago
    entries = [put(cache, bytes([i]) * 1000, age_days=10 - i) for i in range(10)]
    report = prune_cache(cache, 8000, now=NOW)  # 10 kB > 8 kB: prune to 90 % = 7.2 kB
    assert report.files == 10 and report.bytes == 10_000
    assert report.removed_files == 3 and report.removed_bytes == 3000 and report.bytes_after == 7000
    assert not report.over_limit
    left = files(cache)
    assert all(p.name not in left for _, p in entries[:3])  # the three oldest
    assert all(p.name in left for _, p in entries[3:])
    # within the limit now: a second round removes nothing
    again = prune_cache(cache, 8000, now=NOW)
    assert again.removed_files == 0 and again.bytes == 7000


def test_pinned_and_recently_used_files_are_kept_even_over_the_limit(cache):
    old_pinned, p1 = put(cache, b"a" * 1000, age_days=30)
    _, p2 = put(cache, b"b" * 1000, age_days=20)
    _, p3 = put(cache, b"c" * 1000, age_days=0.5)  # used within a day
    report = prune_cache(cache, 1, pinned={old_pinned}, now=NOW)
    assert files(cache) == {p1.name, p3.name} and not p2.exists()
    assert report.removed_files == 1 and report.removed_bytes == 1000
    assert report.pinned_files == 1 and report.pinned_bytes == 1000 and report.young_bytes == 1000
    assert report.over_limit and report.bytes_after == 2000


def test_dry_run_and_no_limit_remove_nothing(cache):
    for i in range(4):
        put(cache, bytes([i]) * 500, age_days=5)
    before = files(cache)
    dry = prune_cache(cache, 1, now=NOW, dry_run=True)
    assert dry.dry_run and dry.removed_files == 4 and files(cache) == before
    unlimited = prune_cache(cache, 0, now=NOW)
    assert unlimited.removed_files == 0 and not unlimited.over_limit and files(cache) == before


def test_only_cache_entries_and_stale_temporary_files_are_removed(cache):
    _, entry = put(cache, b"x" * 100, age_days=3)
    folder = entry.parent
    stale_tmp = folder / f".{entry.name}.abc123.tmp"
    fresh_tmp = folder / f".{entry.name}.def456.tmp"
    for tmp, age in ((stale_tmp, 2), (fresh_tmp, 0)):
        tmp.write_bytes(b"partial")
        os.utime(tmp, (NOW - age * DAY, NOW - age * DAY))
    stranger = folder / "notes.txt"  # not a cache entry: never touched
    stranger.write_text("mine")
    os.utime(stranger, (NOW - 100 * DAY, NOW - 100 * DAY))
    other = cache / "models"  # a folder that is not a cache shard
    other.mkdir()
    (other / ("0" * 64 + ".jpg")).write_bytes(b"y" * 100)
    (cache / ".in-use.lock").write_text("")
    report = prune_cache(cache, 1, now=NOW)
    assert report.files == 1 and report.removed_files == 1 and report.temp_files == 1
    assert files(cache) == {fresh_tmp.name, "notes.txt", "0" * 64 + ".jpg", ".in-use.lock"}


def test_storing_an_image_again_marks_it_used(cache):
    _, path = put(cache, b"reposted" * 100, age_days=40)
    store_original(path, b"reposted" * 100)  # the same picture posted again
    assert time.time() - path.stat().st_mtime < 60
    report = prune_cache(cache, 1)  # the real clock: it is young now
    assert report.removed_files == 0 and path.exists()


def test_a_missing_cache_is_empty_and_bad_arguments_are_refused(cache):
    report = prune_cache(cache, 10, now=NOW)
    assert report.files == 0 and report.bytes == 0 and not cache.exists()
    with pytest.raises(ValueError):
        prune_cache(cache, -1)
    with pytest.raises(ValueError):
        prune_cache(cache, 10, low_water=0.0)


def test_a_shared_holder_makes_an_exclusive_try_fail_without_waiting(tmp_path):
    lock = tmp_path / "cache" / ".in-use.lock"
    with file_lock(lock, shared=True) as reader:
        assert reader
        with file_lock(lock, shared=True) as second_reader:  # readers share
            assert second_reader
        started = time.monotonic()
        with file_lock(lock, wait=False) as pruner:
            assert pruner is False
        assert time.monotonic() - started < 1.0
    with file_lock(lock, wait=False) as pruner:
        assert pruner is True


def test_an_unwritable_cache_folder_is_an_environment_failure(tmp_path):
    """A cache folder that cannot be made or written (here: under a regular file, which stops
    root too) is CacheUnwritableError — the daemon defers the post, it does not fail it — and
    the start-up probe (check_folder_writable) raises for it, not for a good folder."""
    from modbot.errors import CacheUnwritableError, EnvironmentFailure
    from modbot.fsutil import check_folder_writable

    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = blocker / "cache"
    with pytest.raises(CacheUnwritableError, match="cannot write the image cache") as err:
        store_original(cache_path(bad, "ab" * 32, "JPEG"), b"data")
    assert isinstance(err.value, EnvironmentFailure) and err.value.reason == "cache_unwritable"
    with pytest.raises(OSError):
        check_folder_writable(bad)
    check_folder_writable(tmp_path / "good" / "cache")  # made, probed, left empty
    assert list((tmp_path / "good" / "cache").iterdir()) == []
