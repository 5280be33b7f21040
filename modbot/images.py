"""The images stage: which images a submission offers, and downloading them safely.

Two halves, used in this order by the pipeline:

1. :func:`resolve_images` (pure, no network) reads a submission's raw JSON ``data`` and returns a
   :class:`~modbot.domain.Resolution`: the :class:`~modbot.domain.ImageRef` objects to download, or
   why there are none.
2. :class:`ImageFetcher` downloads one ``ImageRef`` over HTTP(S) with timeouts, a byte cap, an
   address guard on every redirect hop and Pillow validation, stores the original bytes in a
   content-addressed cache and returns a :class:`~modbot.domain.FetchedImage` with the decoded RGB
   image. Decoding is :mod:`modbot.decode`'s (one decoder, one safety policy), the address
   guard :mod:`modbot.netguard`'s and the cache :mod:`modbot.imagecache`'s.

The resolution rules follow Reddit data measured in ``../shared/data/reddit-api/`` (praw's
recorded cassettes; see ``tests/data/reddit-api/README.md``): in a 100-post ``r/popular`` page,
50 posts are i.redd.it images (``post_hint == "image"``), 14 galleries, 25 videos (``is_video``
or ``post_hint`` ``hosted:video``/``rich:video``), 6 self posts and 5 article links that carry
a ``preview``.

Errors raised are the :class:`~modbot.errors.ImageError` subclasses; each has a ``reason`` code
that the record stage stores as-is and a ``retryable`` flag.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from modbot import __version__
from modbot.config import Config
from modbot.decode import decode_image
from modbot.imagecache import cache_path, store_original
from modbot.netguard import Download, check_url_allowed, current_download, guarded_adapter
from modbot.domain import FetchedImage, ImageRef, Resolution
from modbot.errors import (
    ImageError,
    ImageFetchError,
    ImageHTTPStatusError,
    ImageTooLargeError,
)

__all__ = [
    "SKIP_GALLERY_UNAVAILABLE",
    "SKIP_NO_IMAGE",
    "SKIP_SELF_POST",
    "SKIP_UNSUPPORTED_HOST",
    "SKIP_VIDEO",
    "ImageFetcher",
    "resolve_images",
]

# --------------------------------------------------------------------------------------------
# Resolve
# --------------------------------------------------------------------------------------------

#: ``Resolution.skip_reason`` codes (stored in the database as-is).
SKIP_VIDEO = "video"  #: a video (v.redd.it, YouTube, imgur .gifv …): nothing still to classify
SKIP_SELF_POST = "self_post"  #: a text post
SKIP_NO_IMAGE = "no_image"  #: a link post with neither an image URL nor a ``preview``
SKIP_GALLERY_UNAVAILABLE = "gallery_unavailable"  #: a gallery without one usable image item
SKIP_UNSUPPORTED_HOST = "unsupported_host"  #: an image page we cannot read without a preview

#: Hosts whose every URL is an image file (Reddit's and imgur's image CDNs).
_DIRECT_HOSTS = frozenset({"i.redd.it", "i.imgur.com"})
#: imgur's HTML page hosts (``imgur.com/abc`` is a page around ``i.imgur.com/abc.jpg``).
_IMGUR_PAGE_HOSTS = frozenset({"imgur.com", "www.imgur.com", "m.imgur.com"})
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")
_VIDEO_EXTENSIONS = (".gifv", ".mp4", ".webm", ".mov", ".m3u8", ".mkv")
_VIDEO_HOSTS = frozenset({"v.redd.it"})
_VIDEO_HINTS = frozenset({"hosted:video", "rich:video"})
#: Gallery item kinds (``media_metadata[id]["e"]``) that we download.
_GALLERY_KINDS = frozenset({"Image", "AnimatedImage"})


def _unescape(url: str) -> str:
    """Undo Reddit's HTML escaping of ``&`` in URLs (present unless ``raw_json=1`` was sent).

    Only ``&amp;`` is replaced: :func:`html.unescape` would also turn query strings such as
    ``&not=1`` into ``¬=1`` (HTML's legacy entities need no semicolon).
    """
    return url.replace("&amp;", "&")


def _http_url(value: Any) -> str | None:
    """``value`` unescaped if it is an absolute http(s) URL with a host, else ``None``."""
    if not isinstance(value, str) or not value:
        return None
    url = _unescape(value.strip())
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _host_and_path(url: str | None) -> tuple[str, str]:
    """Lower-cased host name and path of ``url`` (empty strings when absent)."""
    if not url:
        return "", ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", ""
    return (parts.hostname or "").lower(), parts.path.lower()


def _preview_url(data: Mapping[str, Any]) -> str | None:
    """``preview.images[0].source.url`` (Reddit's re-hosted still of the link), if any."""
    preview = data.get("preview")
    if not isinstance(preview, Mapping):
        return None
    images = preview.get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], Mapping):
        return None
    source = images[0].get("source")
    if not isinstance(source, Mapping):
        return None
    return _http_url(source.get("url"))


def _is_video(data: Mapping[str, Any], host: str, path: str) -> bool:
    if data.get("is_video"):
        return True
    if data.get("post_hint") in _VIDEO_HINTS:
        return True
    if host in _VIDEO_HOSTS or path.endswith(_VIDEO_EXTENSIONS):
        return True
    for key in ("media", "secure_media"):
        media = data.get(key)
        if isinstance(media, Mapping) and media.get("reddit_video"):
            return True
    return False


def _gallery_item_url(meta: Any) -> str | None:
    """The URL to download for one ``media_metadata`` entry, or ``None`` to skip it.

    ``status`` must be ``valid`` (``unprocessed`` items have no URLs yet). For ``e == "Image"``
    the source image ``s.u``; for ``e == "AnimatedImage"`` (a GIF in a gallery, which Reddit
    describes with ``s.gif``/``s.mp4`` and no ``s.u``) a still ``s.u`` if present, else the
    ``s.gif`` file, of which :func:`decode_image` keeps the first frame. Other kinds (e.g.
    ``RedditVideo``) are skipped.
    """
    if not isinstance(meta, Mapping) or meta.get("status") != "valid":
        return None
    if meta.get("e") not in _GALLERY_KINDS:
        return None
    source = meta.get("s")
    if not isinstance(source, Mapping):
        return None
    url = _http_url(source.get("u"))
    if url is None and meta.get("e") == "AnimatedImage":
        url = _http_url(source.get("gif"))
    return url


def _resolve_gallery(data: Mapping[str, Any], max_images: int) -> Resolution:
    gallery = data.get("gallery_data")
    items = gallery.get("items") if isinstance(gallery, Mapping) else None
    if not isinstance(items, list):
        items = []
    metadata = data.get("media_metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    refs: list[ImageRef] = []
    skipped = 0
    for item in items:
        if not isinstance(item, Mapping) or item.get("is_deleted"):
            skipped += 1
            continue
        media_id = item.get("media_id")
        url = _gallery_item_url(metadata.get(media_id)) if isinstance(media_id, str) else None
        if url is None:
            skipped += 1
            continue
        if len(refs) >= max_images:
            skipped += 1  # left out by the per-post cap
            continue
        refs.append(ImageRef(url, "gallery", media_id))
    if not refs:
        return Resolution(skip_reason=SKIP_GALLERY_UNAVAILABLE, skipped_items=skipped)
    return Resolution(images=tuple(refs), skipped_items=skipped)


def _resolve(data: Mapping[str, Any], max_images: int, depth: int) -> Resolution:
    parents = data.get("crosspost_parent_list")
    if depth < 3 and isinstance(parents, list) and parents and isinstance(parents[0], Mapping):
        parent = _resolve(parents[0], max_images, depth + 1)
        return Resolution(
            images=tuple(ImageRef(r.url, "crosspost", r.media_id) for r in parent.images),
            skip_reason=parent.skip_reason,
            skipped_items=parent.skipped_items,
        )

    url = _http_url(data.get("url_overridden_by_dest")) or _http_url(data.get("url"))
    host, path = _host_and_path(url)

    if _is_video(data, host, path):
        return Resolution(skip_reason=SKIP_VIDEO)
    if data.get("is_gallery") or isinstance(data.get("gallery_data"), Mapping):
        return _resolve_gallery(data, max_images)
    if data.get("is_self") or str(data.get("domain") or "").startswith("self."):
        return Resolution(skip_reason=SKIP_SELF_POST)
    if url is not None and (
        host in _DIRECT_HOSTS
        or path.endswith(_IMAGE_EXTENSIONS)
        or data.get("post_hint") == "image"
    ):
        return Resolution(images=(ImageRef(url, "direct"),))

    preview = data.get("preview")
    if isinstance(preview, Mapping) and preview.get("reddit_video_preview"):
        # A GIF host's video (e.g. an imgur .gifv behind a page URL).
        return Resolution(skip_reason=SKIP_VIDEO)
    preview_url = _preview_url(data)
    if host in _IMGUR_PAGE_HOSTS:
        # imgur.com/abc (and /a/ albums, /gallery/) are HTML pages; Reddit's preview is the
        # only image we can fetch without imgur's API.
        if preview_url is None:
            return Resolution(skip_reason=SKIP_UNSUPPORTED_HOST)
        return Resolution(images=(ImageRef(preview_url, "preview"),))
    if preview_url is not None:
        return Resolution(images=(ImageRef(preview_url, "preview"),))
    return Resolution(skip_reason=SKIP_NO_IMAGE)


def resolve_images(data: Mapping[str, Any], *, max_images: int = 20) -> Resolution:
    """Decide which images of a submission to classify, from its raw JSON only (no network).

    ``data`` is the submission's ``data`` object as Reddit returns it (a ``t3`` thing), or
    ``vars(submission)`` of a praw ``Submission`` (praw objects in ``author``/``subreddit`` are
    never read; a praw object itself is accepted too). Rules, first match wins:

    1. crosspost (``crosspost_parent_list[0]``): the parent is resolved by these rules and its
       refs get ``source="crosspost"`` (a parent's skip reason is returned as is);
    2. video (``is_video``, ``post_hint`` ``hosted:video``/``rich:video``, host v.redd.it, a
       ``.gifv``/``.mp4``… path, ``media.reddit_video``) → skip ``video``;
    3. gallery (``is_gallery`` or ``gallery_data``): ``gallery_data.items`` in order, looked up
       in ``media_metadata``; items with ``status != "valid"``, deleted items and kinds other
       than ``Image``/``AnimatedImage`` are counted in ``skipped_items`` (see
       :func:`_gallery_item_url` for ``AnimatedImage``); none usable → skip
       ``gallery_unavailable``;
    4. self post (``is_self``, domain ``self.*``) → skip ``self_post``;
    5. direct image (host i.redd.it or i.imgur.com, a path ending .jpg/.jpeg/.png/.gif/.webp, or
       ``post_hint == "image"``) → ``ImageRef(url, "direct")``; decided by fields and path, not
       the host alone, so ``http://127.0.0.1:PORT/i/name.jpg`` of the sandbox is direct too;
    6. imgur page (imgur.com/…, albums included) → ``preview.images[0].source.url``, else skip
       ``unsupported_host``;
    7. any other link with a ``preview`` → that preview (``source="preview"``), else skip
       ``no_image``.

    ``&amp;`` in URLs is unescaped. At most ``max_images`` refs are returned; gallery items left
    out by that cap are counted in ``skipped_items`` too.

    Raises ``ValueError`` if ``max_images < 1``.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    if not isinstance(data, Mapping):
        data = vars(data)
    return _resolve(data, max_images, 0)


# --------------------------------------------------------------------------------------------
# Fetch
# --------------------------------------------------------------------------------------------

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "image/avif,image/webp,image/png,image/jpeg,image/gif;q=0.9,image/*;q=0.8,*/*;q=0.5"
_CHUNK = 64 * 1024


class ImageFetcher:
    """Downloads, validates, decodes and caches images; one instance per daemon.

    ``cache_dir``: the content-addressed cache (:func:`cache_path`), created on demand.
    ``max_bytes``: largest body accepted (bytes; config ``[images] max_bytes``, 20 MB default).
    ``connect_timeout``/``read_timeout``: seconds for the TCP/TLS connection and between bytes
    of the response (requests' ``(connect, read)`` timeout). ``total_timeout``: seconds for a
    whole download including redirects, enforced on the sockets whatever the server sends
    (:class:`modbot.netguard.Download`); ``None`` for no limit. ``allow_hosts``: host names exempt from the
    address guard (the sandbox needs ``"127.0.0.1"``). ``session``: a ``requests.Session`` to
    reuse (its proxy settings apply), else a new one. ``user_agent``: sent on every request.
    ``max_redirects``: redirect hops followed (each one checked by the guard). ``max_side`` and
    ``max_pixels``: the decoder's memory bounds (:func:`modbot.decode.decode_image`); the
    original bytes are cached whatever the decoded size.
    Usable as a context manager (closes its own session).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        *,
        max_bytes: int = 20_000_000,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        total_timeout: float | None = 120.0,
        allow_hosts: Iterable[str] = (),
        session: requests.Session | None = None,
        user_agent: str = f"python:modbot:{__version__} (image fetcher)",
        max_redirects: int = 5,
        max_side: int | None = 1024,
        max_pixels: int | None = 64_000_000,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.cache_dir = Path(cache_dir).absolute()  # stored paths work from any directory
        self.max_bytes = int(max_bytes)
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.total_timeout = total_timeout
        self.allow_hosts = frozenset(h.lower() for h in allow_hosts)
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        adapter = guarded_adapter(self.allow_hosts)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.user_agent = user_agent
        self.max_redirects = int(max_redirects)
        self.max_side = max_side
        self.max_pixels = max_pixels
        #: Set by the daemon to its stop event: a download in progress is cut at once
        #: (``ImageFetchError``, retryable) so SIGTERM is not held up by a slow image.
        self.cancel: threading.Event | None = None
        #: Set by the daemon to its watchdog ping: called every 10 s while a download runs.
        self.heartbeat: Callable[[], Any] | None = None

    def close(self) -> None:
        """Close the HTTP session if this fetcher created it (a passed-in one is left open)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> ImageFetcher:
        """The fetcher ``config`` describes: ``[storage] image_cache``, ``[images]`` limits
        (bytes, seconds) and allowed hosts, ``[reddit] user_agent``; ``overrides`` are passed
        on as keyword arguments (e.g. ``session=``)."""
        kwargs: dict[str, Any] = {
            "max_bytes": config.images.max_bytes,
            "connect_timeout": config.images.connect_timeout,
            "read_timeout": config.images.read_timeout,
            "total_timeout": config.images.total_timeout,
            "max_side": config.images.max_side,
            "max_pixels": config.images.max_pixels,
            "allow_hosts": config.images.allow_hosts,
            "user_agent": config.reddit.user_agent,
        }
        return cls(config.storage.image_cache, **{**kwargs, **overrides})

    def fetch(self, ref: ImageRef) -> FetchedImage:
        """Download ``ref.url``, validate and decode it, cache the original bytes.

        Returns a :class:`FetchedImage` (digest, cache path, byte size, width/height after EXIF
        orientation, format, ``RGB`` image). Raises :class:`BlockedAddressError` (guard, on any
        hop), :class:`ImageFetchError` (connection error, timeout, DNS failure, too many
        redirects, bad scheme), :class:`ImageHTTPStatusError` (non-2xx final status),
        :class:`ImageTooLargeError` (``Content-Length`` or streamed bytes over ``max_bytes``),
        the errors of :func:`decode_image`, and ``OSError`` if the cache cannot be written. Every
        ``ImageError`` raised carries ``url`` (the URL of the hop that failed).
        """
        return self.decode(ref, self.download(ref))

    def download(self, ref: ImageRef) -> bytes:
        """The network half of :meth:`fetch`: ``ref.url``'s body (at most ``max_bytes``), with
        the same errors (every ``ImageError`` carries ``url``). Mostly waiting: the prefetch
        threads run many of these at once and fewer :meth:`decode` calls."""
        return self._download(ref.url)

    def decode(self, ref: ImageRef, data: bytes) -> FetchedImage:
        """The CPU half of :meth:`fetch`: validate and decode ``data`` downloaded for ``ref``
        (:func:`decode_image` with this fetcher's bounds), cache the original bytes, return the
        :class:`FetchedImage`. Raises the errors of :func:`decode_image` (with ``url`` set),
        :class:`~modbot.errors.DiskFullError` or ``OSError`` when the cache cannot be written."""
        try:
            rgb, fmt = decode_image(data, max_side=self.max_side, max_pixels=self.max_pixels)
        except ImageError as exc:
            exc.url = exc.url or ref.url
            raise
        sha = hashlib.sha256(data).hexdigest()
        path = cache_path(self.cache_dir, sha, fmt)
        store_original(path, data)
        return FetchedImage(
            ref=ref,
            sha256=sha,
            path=str(path),
            size_bytes=len(data),
            width=rgb.width,
            height=rgb.height,
            format=fmt,
            rgb=rgb,
        )

    def _download(self, url: str) -> bytes:
        """The body at ``url`` after at most ``max_redirects`` guarded hops, within
        ``total_timeout`` seconds in all (enforced on the sockets: :class:`Download`)."""
        with Download(self.total_timeout, cancel=self.cancel, heartbeat=self.heartbeat) as download:
            try:
                return self._follow(url)
            except ImageError as exc:
                if download.aborted:
                    raise self._aborted(download, exc.url or url) from exc
                raise

    def _aborted(self, download: Download, url: str) -> ImageFetchError:
        if download.aborted == "cancelled":
            return ImageFetchError("download cancelled: shutting down", url=url)
        return ImageFetchError(f"download took longer than {self.total_timeout} s", url=url)

    def _follow(self, url: str) -> bytes:
        headers = {"User-Agent": self.user_agent, "Accept": _ACCEPT}
        for _hop in range(self.max_redirects + 1):
            self._check_cancel(url)
            check_url_allowed(url, self.allow_hosts)
            try:
                response = self.session.get(url, headers=headers, stream=True,
                                            timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                raise _fetch_error(exc, url) from exc
            with response:
                location = response.headers.get("Location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    url = urljoin(url, location)
                    continue
                if not 200 <= response.status_code < 300:
                    raise ImageHTTPStatusError(f"HTTP {response.status_code} {response.reason}",
                                               url=url, status=response.status_code)
                return self._read_body(response, url)
        err = ImageFetchError(f"more than {self.max_redirects} redirects", url=url)
        err.retryable = False
        raise err

    def _check_cancel(self, url: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ImageFetchError("download cancelled: shutting down", url=url)

    def _read_body(self, response: requests.Response, url: str) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            raise ImageTooLargeError(
                f"Content-Length {int(declared)} exceeds {self.max_bytes} bytes", url=url
            )
        body = bytearray()
        download = current_download()
        try:
            for chunk in response.iter_content(chunk_size=_CHUNK):
                self._check_cancel(url)
                body += chunk
                if len(body) > self.max_bytes:
                    raise ImageTooLargeError(
                        f"body exceeds {self.max_bytes} bytes (no or false Content-Length)",
                        url=url,
                    )
        except requests.RequestException as exc:
            raise _fetch_error(exc, url) from exc
        if download is not None and download.aborted:  # the socket was shut: body cut short
            raise self._aborted(download, url)
        return bytes(body)


def _fetch_error(exc: requests.RequestException, url: str) -> ImageFetchError:
    """Map a requests exception to :class:`ImageFetchError` (bad URLs are not retryable)."""
    err = ImageFetchError(f"{type(exc).__name__}: {exc}", url=url)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema)):
        err.retryable = False
    return err
