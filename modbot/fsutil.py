"""Crash-safe file writes shared by the image cache and the model registry."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX (see file_lock)
    fcntl = None  # type: ignore[assignment]


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a power loss (no-op where directories
    cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, *, sync_dir: bool = False) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8) atomically: a temp file in the
    same folder, fsync, ``os.replace`` (and an fsync of the folder when ``sync_dir``).

    A crash leaves either the old file or the whole new one, at worst a stray ``.tmp`` file
    beside it, never a half-written ``path``. Raises ``OSError`` if the folder is not writable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        fsync_dir(path.parent)


def check_folder_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write, then remove, a probe file in it: the check
    ``modbot run`` makes for its storage folders before anything else, so a wrong or
    unwritable path is an error at start, not a failure of every post. Raises ``OSError``
    (``errno``/``strerror`` say why: missing, not a folder, permission, full, read-only)."""
    probe = folder / f".probe-{os.getpid()}"
    write_atomic(probe, b"modbot")
    probe.unlink(missing_ok=True)


@contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold an advisory lock (``flock``) on ``path`` (created if missing) while the block runs.

    ``shared``: a shared lock (many holders, none exclusive) instead of an exclusive one.
    ``wait``: block until the lock is free; with ``wait=False`` the block runs at once and is
    given False when another process or open file holds a conflicting lock, else True. Where
    ``flock`` does not exist (not POSIX) it yields True and excludes nothing. Raises
    ``OSError`` if ``path``'s folder cannot be created or the file opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield True
        return
    # read-only: a lock file another user created (root running a command by hand) still works
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


#: File suffixes read as images in folder-per-medium trees (files without a suffix are tried too).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})


def image_files(top: Path) -> list[Path]:
    """Image files at any depth below ``top`` (symlinks followed, hidden files and folders
    skipped), in a stable sorted order. Used by training and evaluation trees alike."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            suffix = os.path.splitext(name)[1].lower()
            if not name.startswith(".") and (suffix in IMAGE_SUFFIXES or suffix == ""):
                found.append(Path(dirpath) / name)
    return found
