"""The address guard: image URLs from posts may only reach public addresses.

Anyone can post a link to their own server, so a URL is refused unless every address its host
resolves to is public (see :func:`is_public_address`); :class:`modbot.images.ImageFetcher`
checks every redirect hop too. Hosts in ``[images] allow_hosts`` are exempt (the sandbox).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from modbot.errors import BlockedAddressError, ImageFetchError

__all__ = ["check_url_allowed", "is_public_address"]

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

