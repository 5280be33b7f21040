"""The image cache: every downloaded original, stored once under its sha256 digest.

Files are ``<cache_dir>/<aa>/<sha256>.<ext>`` written atomically (:func:`modbot.fsutil.write_atomic`);
retraining re-reads them with :func:`load_cached`, which checks the digest again and decodes
through the one decoder (:func:`modbot.decode.decode_image`).
"""

from __future__ import annotations

import errno
import hashlib
import re
from pathlib import Path

from PIL import Image

from modbot.decode import decode_image
from modbot.errors import DiskFullError, ImageDecodeError
from modbot.fsutil import write_atomic

__all__ = ["cache_path", "find_cached", "load_cached", "store_original"]

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
    read-only, and ``OSError`` for other failures.
    """
    if path.exists():
        return
    try:
        write_atomic(path, data)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DiskFullError(f"cannot write the image cache at {path.parent}: {exc.strerror}") from exc
        raise


#: errno values that mean "the disk, not this image" (retry later, when space returns).
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


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

