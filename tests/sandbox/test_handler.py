"""HTTP of the sandbox (``modbot.sandbox.handler``): image hosting with sniffed Content-Type,
Reddit's 404 for unknown paths, and injected faults as praw and requests see them."""

from __future__ import annotations

import io
import time

import prawcore
import pytest
import requests
from PIL import Image
from support import sandbox_get, sandbox_reddit, sandbox_token

from modbot.sandbox.state import sniff_content_type


# --------------------------------------------------------------------------- images, routing


def test_images_served_with_sniffed_content_type(server, sample):
    _, images = sample
    jpg = next(n for n in images if n.startswith("pacs_photo"))
    resp = requests.get(f"{server.url}/i/{jpg}?auto=webp&s=abc", timeout=5)
    assert resp.status_code == 200 and resp.content == images[jpg]
    assert resp.headers["content-type"] == "image/jpeg"
    png = next(n for n in images if n.endswith(".png"))
    assert requests.get(f"{server.url}/i/{png}", timeout=5).headers["content-type"] == "image/png"

    html = next(n for n in images if n.startswith("imgur_"))
    resp = requests.get(f"{server.url}/i/{html}", timeout=5)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")

    broken = next(n for n in images if n.startswith("truncated_"))
    resp = requests.get(f"{server.url}/i/{broken}", timeout=5)
    assert resp.headers["content-type"] == "image/jpeg"
    with pytest.raises(OSError):
        Image.open(io.BytesIO(resp.content)).load()
    assert requests.get(f"{server.url}/i/missing.jpg", timeout=5).status_code == 404
    assert sniff_content_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"


def test_unknown_path_is_reddit_404_json(server):
    tok = sandbox_token(server)
    resp = sandbox_get(server, "/api/v1/nothing_here", tok)
    assert resp.status_code == 404
    assert resp.json() == {"message": "Not Found", "error": 404}


# --------------------------------------------------------------------------- faults


def test_fault_429_with_retry_after_reaches_praw(server):
    fault = server.add_fault(r"^/r/Art/new", 429, headers={"retry-after": "4"})
    reddit = sandbox_reddit(server)
    with pytest.raises(prawcore.TooManyRequests) as info:
        list(reddit.subreddit("Art").new(limit=5))
    assert float(info.value.retry_after) == 4.0  # prawcore keeps the header text
    assert "whoa there" in info.value.response.text
    assert fault.hits == 1
    assert len(list(reddit.subreddit("Art").new(limit=5))) == 5  # used up: normal again
    assert [r.status for r in server.requests if r.path == "/r/Art/new"] == [429, 200]
    assert server.requests[-2].fault is True


def test_fault_503_is_retried_by_prawcore(server):
    server.add_fault(r"^/r/Art/new", 503, times=1)
    reddit = sandbox_reddit(server)
    assert len(list(reddit.subreddit("Art").new(limit=3))) == 3
    assert [r.status for r in server.requests if r.path == "/r/Art/new"] == [503, 200]


def test_fault_truncated_body_and_stall(server):
    tok = sandbox_token(server)
    server.add_fault(r"^/r/Art/new", 200, body={"kind": "Listing", "data": {"children": []}},
                     truncate_to=10)
    with pytest.raises(requests.exceptions.RequestException):
        sandbox_get(server, "/r/Art/new", tok).json()
    server.add_fault(r"^/i/", 200, body=b"\xff\xd8\xff", delay_s=1.0)
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.url + "/i/anything.jpg", timeout=0.3)
    assert time.monotonic() - start < 1.0
