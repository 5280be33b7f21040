"""Tests for modbot.images: resolution over real Reddit JSON, fetching over real HTTP.

Resolution uses the real submissions in ``tests/data/reddit-api/`` (and the 100-item listing in
``../shared`` when present). Fetching runs a ``ThreadingHTTPServer`` on 127.0.0.1 that serves the
images in ``tests/data/images/`` and misbehaves on purpose (404, oversize bodies, redirects…).
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import socket
import struct
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from PIL import Image

from modbot.domain import ImageRef, Resolution
from modbot.errors import (
    BlockedAddressError,
    DecompressionBombError,
    ImageDecodeError,
    ImageError,
    ImageFetchError,
    ImageHTTPStatusError,
    ImageTooLargeError,
    NotAnImageError,
)
from modbot.imagecache import cache_path, find_cached, load_cached
from modbot.images import ImageFetcher, resolve_images

TESTS = Path(__file__).resolve().parent
API = TESTS / "data" / "reddit-api"
IMAGES = TESTS / "data" / "images"
SHARED_API = TESTS.parent / ".." / "shared" / "data" / "reddit-api"


def sample(name: str) -> dict:
    return json.loads((API / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------
# resolve_images over real samples
# ------------------------------------------------------------------------------------------


def test_art_image_is_direct():
    res = resolve_images(sample("art_image_flair_1skex88.json"))
    assert res == Resolution(images=(ImageRef("https://i.redd.it/j9k5z6rjbzug1.png", "direct"),))


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("imgur_direct_1ski1ai.json", "https://i.imgur.com/qguFQDn.jpeg"),
        # Removed by a moderator, and deleted by its author: the image URL is still there.
        ("removed_image_automod_ehaoou.json", "https://i.redd.it/ta3yn8zipm741.jpg"),
        ("deleted_image_flair_ah3gqo.json", "https://i.redd.it/27xeqa2s82b21.jpg"),
    ],
)
def test_direct_images(name, url):
    res = resolve_images(sample(name))
    assert res.skip_reason is None
    assert res.images == (ImageRef(url, "direct"),)


def test_gallery_items_in_order_with_source_urls():
    res = resolve_images(sample("gallery_flair_1skft63.json"))
    assert res.skip_reason is None and res.skipped_items == 0
    assert [r.media_id for r in res.images] == ["xt8noakzgzug1", "0z73g477hzug1"]
    assert all(r.source == "gallery" for r in res.images)
    assert res.images[1].url == (
        "https://preview.redd.it/0z73g477hzug1.jpg?width=4080&format=pjpg&auto=webp"
        "&s=048952bafbea13a4a0c167a84c73cab4396aa515"
    )
    assert res.images[0].url.startswith("https://preview.redd.it/xt8noakzgzug1.jpg?")


def test_gallery_animated_item_uses_its_gif():
    res = resolve_images(sample("gallery_flair_mixed_gif_1skbrmr.json"))
    assert res.skipped_items == 0
    assert res.images == (
        ImageRef(
            "https://preview.redd.it/fqcdw3spqyug1.png?width=1000&format=png&auto=webp"
            "&s=45b4bf1235b79979d32d9fdd8446edba4d9c0936",
            "gallery",
            "fqcdw3spqyug1",
        ),
        ImageRef("https://i.redd.it/8qhhbtpqqyug1.gif", "gallery", "8qhhbtpqqyug1"),
    )


def test_gallery_animated_item_prefers_a_still_and_skips_without_one():
    data = sample("gallery_flair_mixed_gif_1skbrmr.json")
    meta = data["media_metadata"]["8qhhbtpqqyug1"]["s"]
    meta["u"] = "https://preview.redd.it/still.png?a=1&amp;b=2"
    assert resolve_images(data).images[1].url == "https://preview.redd.it/still.png?a=1&b=2"
    del meta["u"], meta["gif"]
    res = resolve_images(data)
    assert len(res.images) == 1 and res.skipped_items == 1


def test_gallery_non_image_kind_is_skipped():
    data = sample("gallery_flair_1skft63.json")
    data["media_metadata"]["0z73g477hzug1"]["e"] = "RedditVideo"
    res = resolve_images(data)
    assert [r.media_id for r in res.images] == ["xt8noakzgzug1"]
    assert res.skipped_items == 1


def test_unprocessed_gallery_is_unavailable():
    res = resolve_images(sample("gallery_unprocessed_1khu9tf.json"))
    assert res == Resolution(skip_reason="gallery_unavailable", skipped_items=4)


def test_removed_gallery_without_metadata_is_unavailable():
    data = sample("gallery_flair_1skft63.json")
    data["gallery_data"] = None
    data["media_metadata"] = None
    assert resolve_images(data) == Resolution(skip_reason="gallery_unavailable")


def test_imgur_page_link_uses_preview():
    res = resolve_images(sample("imgur_page_link_8h8v1b.json"))
    assert res.images == (
        ImageRef(
            "https://i.redditmedia.com/_guBM-CEkIwLm0pxltEjVEtekdNASacOG9RtQKW6dqY.jpg"
            "?s=21ad04c50cdf7c0c4962efbd07017d38",
            "preview",
        ),
    )


def test_imgur_page_link_without_preview_is_unsupported():
    data = sample("imgur_page_link_8h8v1b.json")
    del data["preview"]
    assert resolve_images(data) == Resolution(skip_reason="unsupported_host")


def test_crosspost_of_self_post_is_self_post():
    assert resolve_images(sample("crosspost_flair_c27k6l.json")).skip_reason == "self_post"


def test_crosspost_of_image_resolves_parent():
    data = sample("crosspost_flair_c27k6l.json")
    data["crosspost_parent_list"] = [sample("art_image_flair_1skex88.json")]
    res = resolve_images(data)
    assert res.images == (ImageRef("https://i.redd.it/j9k5z6rjbzug1.png", "crosspost"),)

    data["crosspost_parent_list"] = [sample("gallery_flair_1skft63.json")]
    res = resolve_images(data)
    assert [(r.source, r.media_id) for r in res.images] == [
        ("crosspost", "xt8noakzgzug1"),
        ("crosspost", "0z73g477hzug1"),
    ]


def test_self_post_video_and_plain_link():
    data = sample("art_image_flair_1skex88.json")
    selfpost = dict(data, is_self=True, url="https://www.reddit.com/r/Art/comments/1skex88/x/",
                    url_overridden_by_dest=None, post_hint="self", domain="self.Art")
    assert resolve_images(selfpost).skip_reason == "self_post"

    video = dict(data, is_video=True, url="https://v.redd.it/abc123", domain="v.redd.it",
                 url_overridden_by_dest="https://v.redd.it/abc123", post_hint="hosted:video")
    assert resolve_images(video).skip_reason == "video"
    gifv = dict(data, url="https://i.imgur.com/abc.gifv", url_overridden_by_dest=None,
                post_hint="link", domain="i.imgur.com")
    assert resolve_images(gifv).skip_reason == "video"

    link = dict(data, url="https://example.org/article", url_overridden_by_dest=None,
                post_hint="link", domain="example.org")
    assert resolve_images(link).images == (
        ImageRef(data["preview"]["images"][0]["source"]["url"], "preview"),
    )
    del link["preview"]
    assert resolve_images(link) == Resolution(skip_reason="no_image")


def test_sandbox_style_url_is_direct_by_path():
    data = {"url": "http://127.0.0.1:8123/i/abc.JPG", "is_self": False, "domain": "127.0.0.1"}
    assert resolve_images(data).images == (ImageRef("http://127.0.0.1:8123/i/abc.JPG", "direct"),)


def test_escaped_ampersands_and_non_http_urls():
    data = sample("imgur_page_link_8h8v1b.json")
    data["preview"]["images"][0]["source"]["url"] = "https://i.redditmedia.com/x.jpg?a=1&amp;not=2"
    assert resolve_images(data).images[0].url == "https://i.redditmedia.com/x.jpg?a=1&not=2"
    data = {"url": "ftp://example.org/x.jpg", "post_hint": "image"}
    assert resolve_images(data) == Resolution(skip_reason="no_image")


def test_max_images_caps_gallery_and_counts_the_rest():
    data = sample("gallery_flair_1skft63.json")
    res = resolve_images(data, max_images=1)
    assert [r.media_id for r in res.images] == ["xt8noakzgzug1"]
    assert res.skipped_items == 1
    with pytest.raises(ValueError):
        resolve_images(data, max_images=0)


def test_praw_submission_vars_resolve_like_raw_json():
    praw = pytest.importorskip("praw")
    reddit = praw.Reddit(client_id="x", client_secret="y", user_agent="modbot tests",
                         check_for_updates=False)
    for name in sorted(p.name for p in API.glob("*.json")):
        raw = sample(name)
        submission = praw.models.Submission(reddit, _data=copy.deepcopy(raw))
        assert not isinstance(vars(submission)["author"], str) or raw["author"] is None
        assert resolve_images(vars(submission)) == resolve_images(raw), name
        assert resolve_images(submission) == resolve_images(raw), name


def test_every_sample_resolves_to_exactly_one_outcome():
    names = sorted(p.name for p in API.glob("*.json"))
    assert len(names) == 9
    for name in names:
        res = resolve_images(sample(name))
        assert bool(res.images) != bool(res.skip_reason), name


LISTING = SHARED_API / "listing_popular_hot_2026-04-13.json"


@pytest.mark.skipif(not LISTING.exists(), reason="../shared/data/reddit-api not present")
def test_popular_listing_of_100_posts():
    children = json.loads(LISTING.read_text(encoding="utf-8"))["data"]["children"]
    assert len(children) == 100
    outcomes: dict[str | None, int] = {}
    sources: dict[str, int] = {}
    by_id = {}
    for child in children:
        res = resolve_images(child["data"])
        assert bool(res.images) != bool(res.skip_reason)
        by_id[child["data"]["id"]] = res
        outcomes[res.skip_reason] = outcomes.get(res.skip_reason, 0) + 1
        for ref in res.images:
            sources[ref.source] = sources.get(ref.source, 0) + 1
            assert urlsplit(ref.url).hostname in {
                "i.redd.it", "preview.redd.it", "external-preview.redd.it"}
            assert "&amp;" not in ref.url
    # 50 i.redd.it images + 14 galleries + 5 article links with a preview; 24 hosted videos +
    # 1 streamable (rich:video); 6 self posts.
    assert outcomes == {None: 69, "video": 25, "self_post": 6}
    assert sources == {"direct": 50, "gallery": 59, "preview": 5}
    assert by_id["1skex88"].images == (ImageRef("https://i.redd.it/j9k5z6rjbzug1.png", "direct"),)
    assert len(by_id["1skf644"].images) == 20
    capped = resolve_images(
        next(c["data"] for c in children if c["data"]["id"] == "1skf644"), max_images=5)
    assert len(capped.images) == 5 and capped.skipped_items == 15


# ------------------------------------------------------------------------------------------
# HTTP server fixture
# ------------------------------------------------------------------------------------------


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit greyscale PNG of ``width``×``height`` zeros, compressed in a stream."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0 + packed bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(height // 1000)]
    parts.append(comp.compress(row * (height % 1000)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
            + chunk(b"IEND", b""))


_CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
                  ".webp": "image/webp", ".html": "image/jpeg"}  # HTML lies on purpose


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: the connection closes after each response, so a body without Content-Length
    # ends at the close.
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def _send(self, status: int, body: bytes = b"", *, ctype: str = "application/octet-stream",
              length: int | None | bool = True, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is True:
            self.send_header("Content-Length", str(len(body)))
        elif isinstance(length, int) and length is not False:
            self.send_header("Content-Length", str(length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.server.log.append(parts.path)
        path = parts.path
        if path.startswith("/i/"):
            file = IMAGES / path[3:]
            if not file.is_file():
                return self._send(404, b"not found")
            return self._send(200, file.read_bytes(), ctype=_CONTENT_TYPES[file.suffix])
        if path == "/bomb.png":
            return self._send(200, self.server.bomb, ctype="image/png")
        if path.startswith("/status/"):
            return self._send(int(path.rsplit("/", 1)[1]), b"<html>error</html>",
                              ctype="text/html")
        if path == "/redirect":
            return self._send(int(query.get("code", ["302"])[0]),
                              headers={"Location": query["to"][0]})
        if path == "/loop":
            return self._send(302, headers={"Location": "/loop"})
        if path == "/big-declared":
            # Announces 50 MB but sends 10 bytes: reading it would end in an incomplete read,
            # so only the Content-Length check can give ImageTooLargeError.
            return self._send(200, b"0123456789", ctype="image/jpeg", length=50_000_000)
        if path == "/big-stream":
            return self._send(200, b"\xff" * 300_000, ctype="image/jpeg", length=False)
        if path == "/slow":
            time.sleep(1.0)
            return self._send(200, (IMAGES / "rgb.jpg").read_bytes(), ctype="image/jpeg")
        return self._send(404, b"no route")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    log: list[str]
    bomb: bytes


@pytest.fixture(scope="module")
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.log = []
    srv.bomb = png_bomb()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def fetcher(tmp_path):
    return ImageFetcher(tmp_path / "cache", allow_hosts=["127.0.0.1"], max_bytes=100_000,
                        read_timeout=5.0)


def fetch(fetcher: ImageFetcher, url: str):
    return fetcher.fetch(ImageRef(url, "direct"))


def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------
# Fetch + decode over HTTP
# ------------------------------------------------------------------------------------------


def test_test_images_have_their_properties():
    with Image.open(IMAGES / "exif_orientation6.jpg") as im:
        assert im.size == (40, 20) and im.getexif()[0x0112] == 6
    for name in ("animated.gif", "animated.webp", "animated.png", "multi_picture.jpg"):
        with Image.open(IMAGES / name) as im:
            assert im.n_frames == 2, name
    modes = {"palette_transparent.png": "P", "greyscale.png": "L", "grey16.png": "I;16",
             "cmyk.jpg": "CMYK", "rgba_half.png": "RGBA", "la_transparent.png": "LA"}
    for name, mode in modes.items():
        with Image.open(IMAGES / name) as im:
            assert im.mode == mode, name


def test_exif_orientation_is_applied(server, fetcher):
    img = fetch(fetcher, f"{server.base}/i/exif_orientation6.jpg")
    assert (img.width, img.height) == (20, 40)  # stored 40x20
    assert img.rgb.mode == "RGB" and img.rgb.size == (20, 40)
    top, bottom = img.rgb.getpixel((10, 5)), img.rgb.getpixel((10, 34))
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below
    assert img.format == "JPEG"


def near(pixel, expected, tol=6):
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize(
    ("name", "fmt", "xy", "expected"),
    [
        ("palette_transparent.png", "PNG", (1, 1), (255, 255, 255)),  # transparent → white
        ("palette_transparent.png", "PNG", (6, 1), (0, 0, 255)),
        ("greyscale.png", "PNG", (3, 3), (128, 128, 128)),
        ("grey16.png", "PNG", (3, 3), (128, 128, 128)),
        ("rgba_half.png", "PNG", (3, 3), (127, 127, 127)),
        ("la_transparent.png", "PNG", (3, 3), (255, 255, 255)),
        ("cmyk.jpg", "JPEG", (8, 8), (255, 0, 0)),
        ("animated.gif", "GIF", (3, 3), (255, 0, 0)),  # first frame
        ("animated.webp", "WEBP", (3, 3), (255, 0, 0)),
        ("animated.png", "PNG", (3, 3), (255, 0, 0)),
        ("still.webp", "WEBP", (3, 3), (0, 255, 0)),
        ("multi_picture.jpg", "MPO", (3, 3), (0, 0, 255)),  # first picture
    ],
)
def test_modes_and_animations_decode_to_rgb(server, fetcher, name, fmt, xy, expected):
    img = fetch(fetcher, f"{server.base}/i/{name}")
    assert img.format == fmt
    assert img.rgb.mode == "RGB"
    assert near(img.rgb.getpixel(xy), expected), img.rgb.getpixel(xy)


def test_truncated_jpeg_is_a_decode_error(server, fetcher):
    with pytest.raises(ImageDecodeError) as info:
        fetch(fetcher, f"{server.base}/i/truncated.jpg")
    assert info.value.reason == "decode_failed"
    assert info.value.url.endswith("/i/truncated.jpg")
    assert cache_files(fetcher.cache_dir) == []  # invalid bytes are not cached


def test_html_served_as_jpeg_is_not_an_image(server, fetcher):
    with pytest.raises(NotAnImageError) as info:
        fetch(fetcher, f"{server.base}/i/not_an_image.html")
    assert info.value.retryable is False


def test_decompression_bomb(server, tmp_path):
    assert len(server.bomb) < 200_000
    fetcher = ImageFetcher(tmp_path, allow_hosts=["127.0.0.1"])
    with pytest.raises(DecompressionBombError) as info:
        fetch(fetcher, f"{server.base}/bomb.png")
    assert info.value.reason == "decompression_bomb"


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (503, True)])
def test_http_status(server, fetcher, status, retryable):
    with pytest.raises(ImageHTTPStatusError) as info:
        fetch(fetcher, f"{server.base}/status/{status}")
    assert info.value.status == status
    assert info.value.retryable is retryable


def test_too_large_by_content_length(server, fetcher):
    with pytest.raises(ImageTooLargeError):
        fetch(fetcher, f"{server.base}/big-declared")


def test_too_large_while_streaming(server, fetcher):
    with pytest.raises(ImageTooLargeError) as info:
        fetch(fetcher, f"{server.base}/big-stream")
    assert "no or false Content-Length" in str(info.value)


def test_blocked_without_allow_hosts_sends_no_request(server, tmp_path):
    before = len(server.log)
    with ImageFetcher(tmp_path) as fetcher, pytest.raises(BlockedAddressError) as info:
        fetch(fetcher, f"{server.base}/i/rgb.jpg")
    assert info.value.reason == "blocked_address"
    assert len(server.log) == before


def test_redirect_to_disallowed_loopback_host_is_blocked(server, fetcher):
    port = server.server_address[1]
    target = f"http://localhost:{port}/i/rgb.jpg?via=localhost"
    before = len(server.log)
    with pytest.raises(BlockedAddressError) as info:
        fetch(fetcher, f"{server.base}/redirect?to={quote(target, safe='')}")
    assert info.value.url == target
    assert server.log[before:] == ["/redirect"]  # the second hop was never requested


def test_allowed_redirects_are_followed(server, fetcher):
    url = f"{server.base}/redirect?code=301&to=/redirect%3Fcode%3D307%26to%3D/i/rgb.jpg"
    img = fetch(fetcher, url)
    assert img.ref.url == url and img.size_bytes == (IMAGES / "rgb.jpg").stat().st_size


def test_redirect_loop_and_bad_scheme(server, fetcher):
    with pytest.raises(ImageFetchError) as info:
        fetch(fetcher, f"{server.base}/loop")
    assert "redirects" in str(info.value) and info.value.retryable is False
    with pytest.raises(ImageFetchError) as info:
        fetch(fetcher, f"{server.base}/redirect?to=file:///etc/passwd")
    assert info.value.retryable is False


def test_connection_refused_and_read_timeout(server, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetcher = ImageFetcher(tmp_path, allow_hosts=["127.0.0.1"], connect_timeout=2,
                           read_timeout=0.3)
    with pytest.raises(ImageFetchError) as info:
        fetch(fetcher, f"http://127.0.0.1:{port}/x.jpg")
    assert info.value.retryable is True
    with pytest.raises(ImageFetchError) as info:
        fetch(fetcher, f"{server.base}/slow")
    assert info.value.retryable is True and not isinstance(info.value, ImageHTTPStatusError)


# ------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------


def test_cache_file_naming_and_content(server, fetcher):
    original = (IMAGES / "rgb.jpg").read_bytes()
    sha = hashlib.sha256(original).hexdigest()
    img = fetch(fetcher, f"{server.base}/i/rgb.jpg")
    expected = fetcher.cache_dir / sha[:2] / f"{sha}.jpg"
    assert img.sha256 == sha
    assert Path(img.path) == expected == cache_path(fetcher.cache_dir, sha, "JPEG")
    assert expected.read_bytes() == original
    assert img.size_bytes == len(original)
    assert (img.width, img.height) == (32, 24)
    assert cache_files(fetcher.cache_dir) == [expected]  # no temp files left behind


def test_same_bytes_twice_make_one_cache_file(server, fetcher):
    a = fetch(fetcher, f"{server.base}/i/animated.gif")
    first = Path(a.path).stat()
    b = fetch(fetcher, f"{server.base}/i/animated.gif?copy=2")
    assert Path(b.path).stat().st_ino == first.st_ino  # kept, not written again
    assert a.sha256 == b.sha256 and a.path == b.path
    assert a.ref.url != b.ref.url
    assert cache_files(fetcher.cache_dir) == [Path(a.path)]
    assert Path(a.path).suffix == ".gif"


def test_crash_before_rename_leaves_no_cache_file(server, fetcher, monkeypatch):
    def crash(src, dst):
        raise OSError("simulated crash before rename")

    from modbot import fsutil

    monkeypatch.setattr(fsutil.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        fetch(fetcher, f"{server.base}/i/still.webp")
    sha = hashlib.sha256((IMAGES / "still.webp").read_bytes()).hexdigest()
    assert find_cached(fetcher.cache_dir, sha) is None
    assert cache_files(fetcher.cache_dir) == []  # the temp file was removed as well
    monkeypatch.undo()
    assert Path(fetch(fetcher, f"{server.base}/i/still.webp").path).is_file()


def test_load_cached_rereads_and_checks_digest(server, fetcher):
    img = fetch(fetcher, f"{server.base}/i/exif_orientation6.jpg")
    again = load_cached(fetcher.cache_dir, img.sha256)
    assert again.mode == "RGB" and again.size == (20, 40)
    assert again.tobytes() == img.rgb.tobytes()

    # A stray temp file (as a crash might leave) is not mistaken for the entry.
    (Path(img.path).parent / ".tmp-abc.part").write_bytes(b"partial")
    assert find_cached(fetcher.cache_dir, img.sha256) == Path(img.path)

    Path(img.path).write_bytes(Path(img.path).read_bytes()[:-10])
    with pytest.raises(ImageDecodeError, match="digest"):
        load_cached(fetcher.cache_dir, img.sha256)
    with pytest.raises(FileNotFoundError):
        load_cached(fetcher.cache_dir, "0" * 64)
    with pytest.raises(ValueError):
        load_cached(fetcher.cache_dir, "../../etc/passwd")


def test_every_image_error_is_an_image_error():
    for cls in (BlockedAddressError, DecompressionBombError, ImageDecodeError, ImageFetchError,
                ImageHTTPStatusError, ImageTooLargeError, NotAnImageError):
        assert issubclass(cls, ImageError)


def test_stored_image_path_is_absolute_with_a_relative_cache_dir(server, tmp_path, monkeypatch):
    """Issue 12 item 5: paths were stored relative to the daemon's working directory, so
    `modbot review` links broke anywhere else."""
    monkeypatch.chdir(tmp_path)
    with ImageFetcher("cache/images", allow_hosts=["127.0.0.1"]) as fetcher:
        img = fetch(fetcher, f"{server.base}/i/rgb.jpg")
    assert Path(img.path).is_absolute()
    monkeypatch.chdir("/")
    assert Path(img.path).read_bytes() == (IMAGES / "rgb.jpg").read_bytes()
