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



@pytest.mark.parametrize(("address", "public"), [
    ("2002:a9fe:a9fe::1", False),  # 6to4 carrying 169.254.169.254, the metadata service
    ("2002:7f00:1::1", False),  # 6to4 carrying 127.0.0.1
    ("2002:c0a8:101::1", False),  # 6to4 carrying 192.168.1.1
    ("2002:5db8:d822::1", True),  # 6to4 carrying a public address
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ("::127.0.0.1", False),  # IPv4-compatible (deprecated) form
    ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
])
def test_ipv6_forms_that_carry_an_ipv4_address_are_judged_by_it(address, public):
    assert is_public_address(address) is public
