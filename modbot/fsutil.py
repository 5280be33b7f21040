"""Crash-safe file writes shared by the image cache and the model registry."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
