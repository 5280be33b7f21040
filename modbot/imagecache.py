"""The image cache: every downloaded original, stored once under its sha256 digest.

Files are ``<cache_dir>/<aa>/<sha256>.<ext>`` written atomically (:func:`modbot.fsutil.write_atomic`);
retraining re-reads them with :func:`load_cached`, which checks the digest again and decodes
through the one decoder (:func:`modbot.decode.decode_image`).

The cache is bounded (``[storage] image_cache_max_bytes``): :func:`prune_cache` removes the
least recently used originals, never one that is pinned (images moderators labelled) or used
within :data:`PRUNE_MIN_AGE_S`. Retraining downloads an evicted image again or skips it with
a reason (``modbot.learning.labels.locate_images``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from modbot.decode import decode_image
from modbot.errors import CacheUnwritableError, DiskFullError, ImageDecodeError
from modbot.fsutil import write_atomic

__all__ = ["CACHE_IN_USE_LOCK", "PruneReport", "cache_path", "find_cached", "load_cached", "prune_cache",
           "store_original", "touch"]

#: File extension of the cached original, by Pillow format.
_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "BMP": "bmp",
    "AVIF": "avif",
}

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a lower-case hex sha256 digest: {sha256!r}")
    return sha256


def cache_path(cache_dir: str | Path, sha256: str, fmt: str) -> Path:
    """Where the original bytes with digest ``sha256`` of Pillow format ``fmt`` are cached.

    Layout ``cache_dir/<first two hex digits>/<sha256>.<ext>`` (ext ``jpg``, ``png``, ``gif``,
    ``webp``, ``bmp``, ``avif``; ``img`` for anything else), as git stores objects, so no
    folder holds more than 1/256 of the files. Raises ``ValueError`` for a malformed digest.
    """
    _check_sha(sha256)
    ext = _EXTENSIONS.get(fmt.upper(), "img")
    return Path(cache_dir) / sha256[:2] / f"{sha256}.{ext}"


def find_cached(cache_dir: str | Path, sha256: str) -> Path | None:
    """The cached file for ``sha256`` (whatever its extension), or ``None``."""
    folder = Path(cache_dir) / _check_sha(sha256)[:2]
    for candidate in sorted(folder.glob(f"{sha256}.*")):
        if candidate.is_file():
            return candidate
    return None


def store_original(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``.

    A crash leaves either no file or the whole file at ``path`` (a stray ``.tmp-*`` file at
    worst, never a half-written cache entry). An existing file is kept: same name, same bytes.
    Raises :class:`~modbot.errors.DiskFullError` when the disk is full, over quota or
    read-only, :class:`~modbot.errors.CacheUnwritableError` when the folder cannot be created
    or written (both: the daemon retries the post later), and ``OSError`` for other failures.
    """
    if path.exists():
        touch(path)
        return
    try:
        write_atomic(path, data)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DiskFullError(f"cannot write the image cache at {path.parent}: {exc.strerror}") from exc
        if exc.errno in _UNWRITABLE:
            raise CacheUnwritableError(f"cannot write the image cache at {path.parent}: {exc.strerror}") from exc
        raise


#: errno values that mean "the disk, not this image" (retry later, when space returns).
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
#: errno values that mean "the folder, not this image" (retry later, once an operator fixed it).
_UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR})


def load_cached(cache_dir: str | Path, sha256: str) -> Image.Image:
    """Re-read and decode a cached original (for retraining): an ``RGB`` ``PIL.Image.Image``.

    The bytes are hashed again and must match ``sha256``. Raises ``FileNotFoundError`` when
    nothing is cached under that digest, :class:`ImageDecodeError` when the file's digest
    differs (corrupted on disk), the errors of :func:`decode_image`, and ``ValueError`` for a
    malformed digest.
    """
    path = find_cached(cache_dir, sha256)
    if path is None:
        raise FileNotFoundError(f"no cached image {sha256} under {cache_dir}")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ImageDecodeError(f"cache file {path} has digest {actual}, expected {sha256}")
    return decode_image(data)[0]


def touch(path: str | Path) -> None:
    """Mark a cached file as used now (its mtime), so :func:`prune_cache` keeps it longest.
    A file that vanished meanwhile (pruned) or cannot be touched is left alone: never raises."""
    try:
        os.utime(path)
    except OSError:
        pass


# --- bounding the cache -----------------------------------------------------------------------

#: A cached file used (stored, or the same picture posted again) within this many seconds is
#: never pruned: a post in progress keeps its images.
PRUNE_MIN_AGE_S = 86400.0
#: Pruning removes files until the cache is at most this share of its limit, so that it does
#: not run again after every few downloads.
PRUNE_LOW_WATER = 0.9
#: Lock file in the cache folder: retraining holds it shared while it reads cached images,
#: :func:`prune_cache`'s callers exclusively (``modbot.fsutil.file_lock``).
CACHE_IN_USE_LOCK = ".in-use.lock"
_FOLDER_NAME = re.compile(r"[0-9a-f]{2}")
_CACHED_NAME = re.compile(r"([0-9a-f]{64})\.[a-z]{3,4}")
_TEMP_NAME = re.compile(r"\..+\.tmp")


def _sha_of(path: str) -> str:
    """The digest in a cache file's name (``<sha256>.<ext>``)."""
    return os.path.basename(path)[:64]


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_cache` found and did (sizes in bytes of file content).

    ``files``/``bytes``: cached originals before; ``removed_files``/``removed_bytes``: those
    removed (or that would be, when ``dry_run``); ``pinned_files``/``pinned_bytes``: kept
    because pinned; ``young_bytes``: kept because used within ``min_age_s``; ``temp_files``:
    stray temporary files of interrupted writes older than ``min_age_s`` (removed too).
    """

    cache_dir: str
    limit_bytes: int
    files: int
    bytes: int
    removed_files: int
    removed_bytes: int
    pinned_files: int
    pinned_bytes: int
    young_bytes: int
    temp_files: int
    dry_run: bool

    @property
    def bytes_after(self) -> int:
        """Bytes of cached originals left."""
        return self.bytes - self.removed_bytes

    @property
    def over_limit(self) -> bool:
        """Still above the limit: the pinned and recently used files alone exceed it."""
        return 0 < self.limit_bytes < self.bytes_after

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields, with ``bytes_after`` and ``over_limit``."""
        return {**self.__dict__, "bytes_after": self.bytes_after, "over_limit": self.over_limit}


def cached_digests(cache_dir: str | Path) -> list[str]:
    """sha256 digests (hex) of the originals cached under ``cache_dir`` (``<aa>/<sha256>.<ext>``),
    in folder order; a missing folder is an empty cache. Temporary and foreign files are left
    out. Raises ``OSError`` for an unreadable folder."""
    root = Path(cache_dir)
    if not root.is_dir():
        return []
    out: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _FOLDER_NAME.fullmatch(p.name)):
        with os.scandir(folder) as it:
            out += [m.group(1) for e in it if (m := _CACHED_NAME.fullmatch(e.name)) and m.group(1)[:2] == folder.name]
    return out


def prune_cache(cache_dir: str | Path, max_bytes: int, *, pinned: Collection[str] = frozenset(),
                min_age_s: float = PRUNE_MIN_AGE_S, low_water: float = PRUNE_LOW_WATER,
                now: float | None = None, dry_run: bool = False) -> PruneReport:
    """Bound the cache at ``cache_dir`` to ``max_bytes`` (0 = no limit: nothing is removed).

    When the cached originals (``<aa>/<sha256>.<ext>``) exceed ``max_bytes``, the least
    recently used (oldest mtime; see :func:`touch`) are removed until at most ``low_water`` ×
    ``max_bytes`` remain — except those whose digest is in ``pinned`` and those used within
    ``min_age_s`` seconds of ``now`` (default: the clock). Stray temporary files of
    interrupted writes older than ``min_age_s`` are removed whatever the limit. Nothing else in
    the folder is touched, and ``dry_run`` removes nothing. A missing ``cache_dir`` is an empty
    cache. Returns a :class:`PruneReport`; raises ``OSError`` if a file cannot be removed.
    """
    if max_bytes < 0 or not 0.0 < low_water <= 1.0:
        raise ValueError(f"max_bytes must be >= 0 and low_water in (0, 1], got {max_bytes}, {low_water}")
    now = time.time() if now is None else now
    root = Path(cache_dir)
    entries: list[tuple[float, int, str]] = []  # (mtime, size, path): small, for 100k files
    temps: list[Path] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _FOLDER_NAME.fullmatch(p.name)) \
        if root.is_dir() else []
    for folder in folders:
        with os.scandir(folder) as it:
            for entry in it:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                match = _CACHED_NAME.fullmatch(entry.name)
                if match and match.group(1)[:2] == folder.name:
                    entries.append((st.st_mtime, st.st_size, entry.path))
                elif _TEMP_NAME.fullmatch(entry.name) and now - st.st_mtime > min_age_s:
                    temps.append(Path(entry.path))
    total = sum(e[1] for e in entries)
    pinned = frozenset(pinned)
    pinned_sizes = [e[1] for e in entries if _sha_of(e[2]) in pinned]
    young = sum(e[1] for e in entries if now - e[0] <= min_age_s and _sha_of(e[2]) not in pinned)
    doomed: list[tuple[float, int, str]] = []
    if max_bytes and total > max_bytes:
        left, goal = total, low_water * max_bytes
        entries.sort()
        for entry in entries:
            if left <= goal:
                break
            if now - entry[0] <= min_age_s or _sha_of(entry[2]) in pinned:
                continue
            doomed.append(entry)
            left -= entry[1]
    if not dry_run:
        for _, _, path in doomed:
            Path(path).unlink(missing_ok=True)
        for path in temps:
            path.unlink(missing_ok=True)
    return PruneReport(
        cache_dir=str(root), limit_bytes=int(max_bytes), files=len(entries), bytes=total,
        removed_files=len(doomed), removed_bytes=sum(e[1] for e in doomed),
        pinned_files=len(pinned_sizes), pinned_bytes=sum(pinned_sizes), young_bytes=young,
        temp_files=len(temps), dry_run=dry_run)
