"""One exception tree for modbot.

``ModbotError`` is the root; callers catch by meaning, not by library detail:

- ``ConfigError``       — the configuration file or environment is unusable (our side).
- ``ImageError``        — an image could not be resolved, fetched or decoded. Each subclass
  carries a short machine-readable ``reason`` that is stored in the database as-is.
- ``EnvironmentFailure`` — the machine, not the post (``DiskFullError``, ``CacheUnwritableError``): retried later
  without using up the submission's attempts.
- ``ModelError``        — the model directory is missing, unreadable or inconsistent.
- ``StoreError``        — the SQLite database is unusable (e.g. a migration failed).
- ``RedditError``       — Reddit (or the sandbox) answered with something unusable
  (``MalformedListingError``) or a write's outcome is unknown (``AmbiguousWriteError``).
- ``InputError``        — input data given to a command is malformed (names the line).
- ``FingerprintError``  — an image or stored fingerprint unusable for repost detection.
- ``ShuttingDown``      — not an error: a wait was cut short because the daemon is stopping.

What is *not* here: a caller passing a wrong type or an out-of-range argument to a function is
a programming error and gets Python's own ``TypeError``/``ValueError``; everything that comes
from outside the program (a config file, a command's input, Reddit, an image, the database)
gets one of these classes. Only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations


class ModbotError(Exception):
    """Root of every error modbot raises on purpose."""


class ConfigError(ModbotError):
    """The configuration is invalid: unknown key, wrong type, unreadable file."""


class ImageError(ModbotError):
    """An image could not be used. ``reason`` is a stable short code stored in ``images.status``.

    ``retryable`` says whether trying again later could succeed (a timeout, a 5xx) or not
    (HTML served as an image, a decompression bomb).
    """

    reason = "image_error"
    retryable = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class UnsupportedPostError(ImageError):
    """The submission has no image to classify (video, self post, link post)."""

    reason = "unsupported_post"


class ImageFetchError(ImageError):
    """The HTTP download failed: connection error, timeout, non-2xx status."""

    reason = "fetch_failed"
    retryable = True


class ImageHTTPStatusError(ImageFetchError):
    """The image host answered with a non-2xx status (``status``)."""

    reason = "http_status"

    def __init__(self, message: str, *, url: str | None = None, status: int = 0) -> None:
        super().__init__(message, url=url)
        self.status = status
        # 4xx (except 408/429) will not get better by retrying.
        self.retryable = status >= 500 or status in (408, 429)


class ImageTooLargeError(ImageError):
    """The body exceeded the configured byte cap (``max_image_bytes``)."""

    reason = "too_large"


class NotAnImageError(ImageError):
    """The bytes are not an image Pillow can identify (e.g. an HTML error page)."""

    reason = "not_an_image"


class ImageDecodeError(ImageError):
    """Pillow identified the image but could not decode it (truncated, corrupt)."""

    reason = "decode_failed"


class DecompressionBombError(ImageError):
    """The image's pixel count exceeds Pillow's decompression-bomb limit."""

    reason = "decompression_bomb"


class BlockedAddressError(ImageError):
    """The URL resolves to a private, loopback or link-local address that is not allowed."""

    reason = "blocked_address"


class EnvironmentFailure(ModbotError):
    """The machine failed, not the post: the disk is full, a folder is read-only. The daemon
    retries the submission later without counting the attempt. ``reason`` is stored as-is."""

    reason = "environment"


class DiskFullError(EnvironmentFailure):
    """A write failed for lack of space or quota (``ENOSPC``, ``EDQUOT``) or on a read-only
    file system (``EROFS``)."""

    reason = "disk_full"


class CacheUnwritableError(EnvironmentFailure):
    """The image cache's folder cannot be written: permission denied, or it (or a folder on
    its path) is missing or not a folder (``EACCES``, ``EPERM``, ``ENOENT``, ``ENOTDIR``,
    ``EISDIR``)."""

    reason = "cache_unwritable"


class ModelError(ModbotError):
    """The model directory is missing, unreadable, or its files disagree."""


class StoreError(ModbotError):
    """The database could not be opened or migrated."""


class RedditError(ModbotError):
    """Reddit (or the sandbox) answered in a way the caller has to handle."""


class MalformedListingError(RedditError):
    """A listing from Reddit is not what Reddit documents: the response to ``/r/<sub>/new`` is
    not a Listing (``{"kind": "Listing", "data": {"children": [...]}}``), or one child is not a
    usable submission (another kind, no data, an id that is not base-36)."""


class AmbiguousWriteError(RedditError):
    """A write (``POST``) failed in a way that may have been applied by Reddit (timeout,
    connection error, 5xx), and prawcore tried to send it again: the repeat is refused, so a
    comment or report is never doubled. The action's outcome is unknown."""


class ShuttingDown(ModbotError):  # noqa: N818 - a state, not an error
    """A request was not sent because the daemon is stopping and it would have had to wait.

    Raised by :meth:`modbot.ratelimit.RequestBudget.acquire`; never wrapped by prawcore (it is
    not a ``RequestException``), so it reaches the stream or the actor unchanged.
    """


class FingerprintError(ModbotError):
    """An image or a stored fingerprint cannot be used for repost detection
    (:mod:`modbot.fingerprint`): not an image, under 8x8 px, a malformed or other-version
    fingerprint blob, thresholds out of range."""


class InputError(ModbotError):
    """Input data handed to a command is malformed (e.g. a bad JSON line for ``modbot medium``).

    ``line`` is the 1-based line number where the problem is, when there is one.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
