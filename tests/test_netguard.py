"""Tests for modbot.netguard: which addresses an image URL may reach (no network: IP literals
and loopback only)."""

from __future__ import annotations

import pytest

from modbot.errors import BlockedAddressError, ImageFetchError
from modbot.netguard import check_url_allowed, is_public_address


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


def test_check_url_allowed():
    check_url_allowed("https://93.184.216.34/x.jpg")  # public literal, no DNS needed
    with pytest.raises(BlockedAddressError):
        check_url_allowed("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(BlockedAddressError):
        check_url_allowed("http://[::1]:8080/x.jpg")
    check_url_allowed("http://127.0.0.1:9/x.jpg", allow_hosts=["127.0.0.1"])
    for url in ("file:///etc/passwd", "ftp://93.184.216.34/x.jpg", "http:///x.jpg"):
        with pytest.raises(ImageFetchError) as info:
            check_url_allowed(url)
        assert info.value.retryable is False

