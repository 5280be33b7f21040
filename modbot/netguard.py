"""The address guard: image URLs from posts may only reach public addresses.

Anyone can post a link to their own server, so a URL is refused unless every address its host
resolves to is public (see :func:`is_public_address`); :class:`modbot.images.ImageFetcher`
checks every redirect hop too, and :func:`guarded_adapter` checks the address each connection
actually reached (no DNS rebinding in between). Hosts in ``[images] allow_hosts`` are exempt
(the sandbox). :class:`Download` bounds a whole download in time, whatever the server does.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from modbot.errors import BlockedAddressError, ImageFetchError

__all__ = ["Download", "check_url_allowed", "current_download", "guarded_adapter", "is_public_address"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public_address(address: str | _IPAddress) -> bool:
    """True when ``address`` (an IPv4/IPv6 literal) is a public unicast address.

    Refused: private, loopback, link-local (incl. 169.254.169.254, the cloud metadata service),
    multicast, reserved, unspecified, shared (100.64.0.0/10) and any other address the IANA
    special-purpose registries mark as not globally reachable (``ipaddress``'s ``is_global``).
    IPv6 addresses that carry an IPv4 address are judged by every IPv4 address they carry too:
    IPv4-mapped (``::ffff:127.0.0.1``), IPv4-compatible (``::127.0.0.1``), NAT64
    (``64:ff9b::/96``, RFC 6052), 6to4 (``2002::/16``, RFC 3056: ``2002:a9fe:a9fe::1`` embeds
    169.254.169.254) and Teredo (``2001::/32``, RFC 4380: server and obfuscated client).
    Raises ``ValueError`` for a string that is not an IP address.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    return all(_is_public(a) for a in (ip, *_embedded_ipv4(ip)))


def _embedded_ipv4(ip: _IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (see :func:`is_public_address`)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    packed = ip.packed
    if packed[:12] == bytes(12) and packed[12:] != bytes(4) and int(ip) > 1:  # ::a.b.c.d
        found.append(ipaddress.IPv4Address(packed[12:]))
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(packed[12:]))
    return found


#: The well-known NAT64 prefix (RFC 6052): ``64:ff9b::a.b.c.d`` reaches a.b.c.d.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_public(ip: _IPAddress) -> bool:
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url_allowed(url: str, allow_hosts: Iterable[str] = ()) -> None:
    """Refuse a URL the fetcher must not request; return ``None`` when it may.

    The scheme must be http or https and the URL must name a host; then, unless the host name
    (case-insensitive, without port) is in ``allow_hosts``, every address
    :func:`socket.getaddrinfo` resolves it to must pass :func:`is_public_address`.

    Raises :class:`BlockedAddressError` for a refused address, and :class:`ImageFetchError` for a
    bad scheme or URL (not retryable) or a failed DNS lookup (retryable).

    A guard on resolution leaves a window for DNS rebinding (the HTTP library resolves again);
    it stops the common case of links and redirects to internal addresses.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        err = ImageFetchError(f"invalid URL: {exc}", url=url)
        err.retryable = False
        raise err from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        err = ImageFetchError(f"only http(s) URLs with a host are fetched: {url!r}", url=url)
        err.retryable = False
        raise err
    if host in {h.lower() for h in allow_hosts}:
        return
    try:
        infos = socket.getaddrinfo(
            host, port or (443 if scheme == "https" else 80), proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageFetchError(f"cannot resolve {host!r}: {exc}", url=url) from exc
    for info in infos:
        address = str(info[4][0])
        if not is_public_address(address):
            raise BlockedAddressError(
                f"{host!r} resolves to non-public address {address}", url=url
            )



# --------------------------------------------------------------------------------------------
# Sockets: the peer checked after connecting, and a whole download bounded in time
# --------------------------------------------------------------------------------------------

#: The download in progress on this thread (see :class:`Download`), for the connections below.
_current = threading.local()


class Download:
    """One download's bounds, enforced on its sockets from a watcher thread.

    Requests' read timeout restarts with every byte, so a server that trickles bytes (or
    header lines) could hold a download for ever. While a ``Download`` is active on a thread
    (``with Download(...):``), every connection that thread sends a request on registers its
    socket here; a watcher thread shuts those sockets down (``SHUT_RDWR``, which ends a blocked
    ``recv`` at once) when ``deadline_s`` seconds have passed or ``cancel`` is set, and calls
    ``heartbeat`` every ``heartbeat_s`` seconds meanwhile (the systemd watchdog).
    ``aborted`` then says why (``"deadline"`` or ``"cancelled"``), else None.
    """

    def __init__(self, deadline_s: float | None, *, cancel: threading.Event | None = None,
                 heartbeat: Callable[[], Any] | None = None, heartbeat_s: float = 10.0) -> None:
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.cancel = cancel
        self.heartbeat = heartbeat
        self.heartbeat_s = heartbeat_s
        self.aborted: str | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> Download:
        _current.download = self
        self._watcher = threading.Thread(target=self._watch, name="modbot-download-watch",
                                         daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _current.download = None
        self._finished.set()
        if self._watcher is not None:
            self._watcher.join()

    def register(self, sock: socket.socket | None) -> None:
        """Bound ``sock`` by this download (shut down at once if it already ended)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.aborted:
                _shutdown(sock)

    def _watch(self) -> None:
        beat = time.monotonic()
        while not self._finished.wait(0.05):
            now = time.monotonic()
            if self.cancel is not None and self.cancel.is_set():
                return self._abort("cancelled")
            if self.deadline is not None and now >= self.deadline:
                return self._abort("deadline")
            if self.heartbeat is not None and now - beat >= self.heartbeat_s:
                beat = now
                self.heartbeat()
        return None

    def _abort(self, why: str) -> None:
        with self._lock:
            self.aborted = why
            for sock in self._sockets:
                _shutdown(sock)


def current_download() -> Download | None:
    """The :class:`Download` active on this thread, if any."""
    return getattr(_current, "download", None)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _GuardedConnectionMixin:
    """A urllib3 connection that checks the address it actually connected to (no DNS
    rebinding between :func:`check_url_allowed` and the connect) and registers its socket with
    the thread's :class:`Download` for every request."""

    allow_hosts: frozenset[str] = frozenset()

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        host = str(getattr(self, "host", "")).lower().strip("[]")
        if host in self.allow_hosts:
            return
        try:
            peer = self.sock.getpeername()[0]  # type: ignore[attr-defined]
        except OSError:
            return  # not connected after all: the request fails on its own
        if not is_public_address(str(peer)):
            self.sock.close()  # type: ignore[attr-defined]
            raise BlockedAddressError(f"{host!r} connected to non-public address {peer}")

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "sock", None) is None:
            self.connect()
        download = getattr(_current, "download", None)
        if download is not None:
            download.register(self.sock)  # type: ignore[attr-defined]
        return super().request(*args, **kwargs)  # type: ignore[misc]


def guarded_adapter(allow_hosts: Iterable[str] = ()) -> HTTPAdapter:
    """A requests ``HTTPAdapter`` (mount it for ``http://`` and ``https://``) whose connections
    check their peer address (:func:`is_public_address`, ``allow_hosts`` exempt) and obey the
    thread's :class:`Download`."""
    allowed = frozenset(h.lower() for h in allow_hosts)
    conn_http = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection),
                     {"allow_hosts": allowed})
    conn_https = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection),
                      {"allow_hosts": allowed})
    pool_http = type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": conn_http})
    pool_https = type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": conn_https})

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": pool_http, "https": pool_https}

    return GuardedAdapter(max_retries=0)
