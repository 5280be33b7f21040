"""Hostile and faulty input, one test per row of the issue: the sandbox injects the fault, the
real daemon (praw → loopback HTTP → SQLite) must keep running, record the submission with a
specific reason, retry it later where that makes sense (bounded), and lose nothing else.

Reddit side: faults on ``/r/Art/new`` (the stream) and on the action endpoints. Image side:
posts whose image is broken in one specific way. Each test has control posts with a good
image, which must end ``done``. The CNN is replaced by ``StubClassifier`` (it always says
"photography"), so every judged post stated otherwise is a mismatch."""

from __future__ import annotations

import io
import json
import random
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest
import structlog
from support import StubClassifier, all_final, fast_budget, fast_daemon, image_post, run_until, statuses
from PIL import Image

from modbot.sandbox.server import SandboxServer

IMAGES = Path(__file__).resolve().parent / "data" / "images"
GOOD = (IMAGES / "rgb.jpg").read_bytes()
CONTROLS = [image_post("ctl001", "good.jpg"), image_post("ctl002", "good.jpg",
                                                       title="Rain, me, digital, 2021")]
NEW = r"/r/Art/new"


def events(logs, name):
    return [e for e in logs if e.get("event") == name]


def api(server):
    """Requests that count against Reddit's budget (not images, not sandbox control)."""
    return sorted((r for r in server.requests if not r.path.startswith(("/i/", "/_sandbox"))),
                  key=lambda r: r.time)


def run_all(server, tmp_path, *, timeout_s=30.0, **kwargs):
    """Run a fast daemon until every released post is final; returns (daemon, logs)."""
    daemon = fast_daemon(server, tmp_path, **kwargs)
    with structlog.testing.capture_logs() as logs:
        run_until(daemon, lambda: all_final(daemon, server), timeout_s=timeout_s)
    return daemon, logs


def assert_controls_done(daemon):
    rows = statuses(daemon.store.db)
    for post in CONTROLS:
        assert rows[post["name"]] == ("done", None), rows
    assert daemon.stats.errors == 0  # nothing reached the internal-error path


@pytest.fixture
def reddit_sandbox():
    with SandboxServer(CONTROLS, {"good.jpg": GOOD}, released=len(CONTROLS)) as server:
        yield server


# ------------------------------------------------------------------------------------------
# Reddit side: the stream
# ------------------------------------------------------------------------------------------

def test_429_with_retry_after_blocks_all_requests_for_that_long(reddit_sandbox, tmp_path):
    server = reddit_sandbox
    server.add_fault(NEW, 429, headers={"retry-after": "1.5"}, times=1)
    daemon, logs = run_all(server, tmp_path)
    assert_controls_done(daemon)
    reqs = api(server)
    i = next(i for i, r in enumerate(reqs) if r.fault)
    assert reqs[i].status == 429
    assert reqs[i + 1].time - reqs[i].time >= 1.45  # nothing at all was sent meanwhile
    err = events(logs, "stream_error")[0]
    assert err["error_type"] == "TooManyRequests" and err["retry_after_s"] == "1.5"


def test_429_without_retry_after_backs_off_exponentially(reddit_sandbox, tmp_path):
    server = reddit_sandbox
    server.add_fault(NEW, 429, times=3)
    daemon, logs = run_all(server, tmp_path, budget=fast_budget(backoff_base_s=0.3))
    assert_controls_done(daemon)
    faulted = [r for r in api(server) if r.fault]
    assert len(faulted) == 3
    gaps = [b.time - a.time for a, b in zip(faulted, faulted[1:], strict=False)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # 0.3 s, then 0.6 s: no busy loop
    assert [e["consecutive_failures"] for e in events(logs, "stream_error")] == [1, 2, 3]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_retried_after_a_backoff(reddit_sandbox, tmp_path, status):
    server = reddit_sandbox
    server.add_fault(NEW, status, times=1)
    daemon, logs = run_all(server, tmp_path)
    assert_controls_done(daemon)
    reqs = [r for r in api(server) if r.path.endswith("/new")]
    assert reqs[0].status == status and reqs[0].fault and reqs[1].status == 200
    assert reqs[1].time - reqs[0].time >= 0.2  # prawcore's retry waited for the budget's backoff
    assert not events(logs, "stream_error")  # one retry was enough


def test_server_errors_on_every_retry_back_off_exponentially(reddit_sandbox, tmp_path):
    server = reddit_sandbox
    server.add_fault(NEW, 503, times=3)  # prawcore's three tries all fail
    daemon, logs = run_all(server, tmp_path)
    assert_controls_done(daemon)
    faulted = [r for r in api(server) if r.fault]
    assert [r.status for r in faulted] == [503] * 3
    gaps = [b.time - a.time for a, b in zip(faulted, faulted[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # the budget's backoff between prawcore's tries
    assert events(logs, "stream_error")[0]["error_type"] == "ServerError"


def test_stalled_response_past_the_timeout(reddit_sandbox, tmp_path):
    """praw 8.0.3 ignores timeout=; the requestor applies [reddit] request_timeout (0.5 s)."""
    server = reddit_sandbox
    stall = server.add_fault(NEW, 200, delay_s=6.0, times=1,
                             body={"kind": "Listing", "data": {"children": [], "after": None}})
    started = time.monotonic()
    daemon, _ = run_all(server, tmp_path, reddit={"request_timeout": 0.5})
    assert time.monotonic() - started < 5.0  # the 6-s stall did not hold the daemon up
    assert stall.hits == 1
    assert_controls_done(daemon)


@pytest.mark.parametrize("body,error_type", [
    ("<html><body>502 Bad Gateway</body></html>", "BadJSON"),
    ({"kind": "Listing"}, "MalformedListingError"),
    ([1, 2, 3], "MalformedListingError"),
    ({"json": {"errors": [["SERVER", "oops"]]}}, "MalformedListingError"),
], ids=["not-json", "listing-without-data", "a-list", "error-object"])
def test_malformed_json(reddit_sandbox, tmp_path, body, error_type):
    server = reddit_sandbox
    server.add_fault(NEW, 200, body=body, headers={"content-type": "application/json"}, times=2)
    daemon, logs = run_all(server, tmp_path)
    assert_controls_done(daemon)
    assert [e["error_type"] for e in events(logs, "stream_error")] == [error_type] * 2


def test_truncated_json(reddit_sandbox, tmp_path):
    """A body cut short of its Content-Length: requests raises, prawcore retries the GET."""
    server = reddit_sandbox
    listing = json.dumps({"kind": "Listing", "data": {"children": [], "after": None}})
    cut = server.add_fault(NEW, 200, body=listing, truncate_to=25, times=1)
    daemon, logs = run_all(server, tmp_path)
    assert_controls_done(daemon)
    assert cut.hits == 1
    assert [r.fault for r in api(server) if r.path.endswith("/new")][:2] == [True, False]
    assert daemon.budget.failures == 0


def test_unknown_subreddit_is_fatal(reddit_sandbox, tmp_path):
    """Reddit redirects /r/<no such sub>/new to a search page: waiting will not help, so the
    stream raises (``modbot run`` then exits 78, which systemd does not restart)."""
    import prawcore

    daemon = fast_daemon(reddit_sandbox, tmp_path, reddit={"subreddits": "NoSuchSubreddit"})
    with structlog.testing.capture_logs() as logs, pytest.raises(prawcore.Redirect):
        run_until(daemon, lambda: False, timeout_s=10)
    assert events(logs, "stream_fatal")


def test_expired_token_is_refreshed(tmp_path):
    posts = [image_post(f"tok{i:03d}", "good.jpg") for i in range(4)]
    with SandboxServer(posts, {"good.jpg": GOOD}, released=2) as server:
        daemon = fast_daemon(server, tmp_path)
        phase = {"n": 0}

        def until():
            if not all_final(daemon, server):
                return False
            if phase["n"] == 0:  # first half recorded: invalidate the token, release the rest
                phase["n"] = 1
                server.expire_tokens()
                server.release(2)
                return False
            return True

        run_until(daemon, until)
        assert {s for s, _ in statuses(daemon.store.db).values()} == {"done"}
        assert len(statuses(daemon.store.db)) == 4
        reqs = api(server)
        assert any(r.status == 401 for r in reqs)
        assert sum(r.path == "/api/v1/access_token" for r in reqs) == 2
        assert len(server.issued_tokens) == 2


def test_injected_401_is_refreshed(reddit_sandbox, tmp_path):
    server = reddit_sandbox
    server.add_fault(NEW, 401, times=1)
    daemon, logs = run_all(server, tmp_path)
    assert_controls_done(daemon)
    assert sum(r.path == "/api/v1/access_token" for r in api(server)) == 2
    assert not events(logs, "stream_error")  # prawcore refreshed and retried by itself


def test_listing_with_unknown_fields_kinds_and_missing_preview(tmp_path):
    odd = image_post("odd001", "good.jpg", future_field={"nested": [1, {"x": None}]},
                     all_awardings=[{"unknown": True}], preview=None)
    link = {**image_post("lnk001", "good.jpg"), "url": "https://example.com/article",
            "post_hint": "link", "domain": "example.com"}
    link.pop("preview", None)
    with SandboxServer([*CONTROLS, odd, link], {"good.jpg": GOOD}, released=4) as server:
        good_child = {"kind": "t3", "data": {**CONTROLS[0], "url": server.url + "/i/good.jpg"}}
        server.add_fault(NEW, 200, times=1, body={"kind": "Listing", "data": {
            "after": None, "before": None, "children": [
                {"kind": "t9", "data": {"id": "zz9"}},               # a kind nobody knows
                {"kind": "t3", "data": {"title": "no id at all"}},    # no id
                {"kind": "t3", "data": {"id": "../../etc", "title": "x"}},  # not base-36
                good_child]}})
        daemon, logs = run_all(server, tmp_path)
        rows = statuses(daemon.store.db)
        assert_controls_done(daemon)
        assert rows["t3_odd001"] == ("done", None)  # unknown fields and preview: null ignored
        assert rows["t3_lnk001"] == ("skipped", "no_image")  # a link without a preview
        assert len(rows) == 4  # the malformed children were not recorded as submissions
        assert len(events(logs, "malformed_submission")) == 3
        stored = json.loads(daemon.store.db.execute(
            "SELECT data_json FROM submissions WHERE fullname='t3_odd001'").fetchone()[0])
        assert stored["future_field"] == {"nested": [1, {"x": None}]}


# ------------------------------------------------------------------------------------------
# Reddit side: actions
# ------------------------------------------------------------------------------------------

def test_429_on_an_action_is_retried_later_and_sent_once(tmp_path):
    post = image_post("act429", "good.jpg")
    with SandboxServer([post], {"good.jpg": GOOD}, released=1) as server:
        server.add_fault(r"/api/comment", 429, headers={"retry-after": "0.5"}, times=1)
        daemon, logs = run_all(server, tmp_path, act=True)
        rows = statuses(daemon.store.db)
        assert rows["t3_act429"] == ("done", None)
        attempts = daemon.store.db.execute(
            "SELECT attempts FROM submissions WHERE fullname='t3_act429'").fetchone()[0]
        assert attempts == 2
        ok = [(w.kind, w.fullname) for w in server.writes if w.ok]
        assert sorted(ok) == [("comment", "t3_act429"), ("report", "t3_act429")]
        assert dict(daemon.store.db.execute("SELECT kind, status FROM actions").fetchall()) == {
            "report": "sent", "comment": "sent"}
        assert events(logs, "action_deferred")


def test_5xx_on_an_action_is_never_resent(tmp_path):
    """prawcore would resend a POST after a 5xx; Reddit may have applied the first one, so
    the requestor refuses the repeat and the action is recorded as unknown."""
    post = image_post("act503", "good.jpg")
    with SandboxServer([post], {"good.jpg": GOOD}, released=1) as server:
        server.add_fault(r"/api/comment", 503, times=5)
        daemon, _ = run_all(server, tmp_path, act=True)
        assert statuses(daemon.store.db)["t3_act503"] == ("done", None)
        comment_posts = [r for r in server.requests if r.path.startswith("/api/comment")]
        assert len(comment_posts) == 1
        assert dict(daemon.store.db.execute("SELECT kind, status FROM actions").fetchall()) == {
            "report": "sent", "comment": "unknown"}


# ------------------------------------------------------------------------------------------
# Image side
# ------------------------------------------------------------------------------------------

def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit PNG of width×height zeros (~50 kB): a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row * 1000) for _ in range(height // 1000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def noise_jpeg(size: int = 160) -> bytes:
    rng = random.Random(0)
    im = Image.frombytes("RGB", (size, size), bytes(rng.getrandbits(8) for _ in range(size * size * 3)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def image_case(tmp_path, image: bytes | None, *, fault=None, timeout_s: float = 30.0, **sections):
    """Serve ``image`` as /i/x.jpg (None: not served, a 404) for post t3_img001 next to the
    control posts, run the daemon until all are final; returns (daemon, server, row)."""
    images = {"good.jpg": GOOD}
    if image is not None:
        images["x.jpg"] = image
    posts = [*CONTROLS, image_post("img001", "x.jpg")]
    with SandboxServer(posts, images, released=len(posts)) as server:
        if fault is not None:
            fault(server)
        daemon, logs = run_all(server, tmp_path, timeout_s=timeout_s, **sections)
        assert_controls_done(daemon)
        row = daemon.store.db.execute(
            "SELECT status, reason, attempts FROM submissions WHERE fullname='t3_img001'"
        ).fetchone()
        image_row = daemon.store.db.execute(
            "SELECT status, format FROM images WHERE submission='t3_img001'").fetchone()
        daemon.close()
        return tuple(row), tuple(image_row), server


@pytest.mark.parametrize("name,image,fault,expected", [
    ("404", None, None, ("failed", "http_status:404", 1)),
    ("403", GOOD, lambda s: s.add_fault(r"^/i/x\.jpg$", 403, times=99), ("failed", "http_status:403", 1)),
    ("html-as-image", (IMAGES / "not_an_image.html").read_bytes(), None, ("failed", "not_an_image", 1)),
    ("decompression-bomb", png_bomb(), None, ("failed", "decompression_bomb", 1)),
    ("truncated-jpeg", (IMAGES / "truncated.jpg").read_bytes(), None, ("failed", "decode_failed", 1)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_broken_image_is_failed_with_its_reason_and_not_retried(tmp_path, name, image, fault, expected):
    row, _, _ = image_case(tmp_path, image, fault=fault)
    assert row == expected, name


def test_body_over_the_byte_cap(tmp_path):
    big = noise_jpeg()
    assert len(big) > 20_000
    row, image_row, _ = image_case(tmp_path, big, images={"max_bytes": 20_000})
    assert row == ("failed", "too_large", 1)
    assert image_row[0] == "too_large"


@pytest.mark.parametrize("file,fmt", [("animated.gif", "GIF"), ("still.webp", "WEBP"),
                                      ("cmyk.jpg", "JPEG")])
def test_unusual_but_valid_images_are_classified(tmp_path, file, fmt):
    row, image_row, _ = image_case(tmp_path, (IMAGES / file).read_bytes())
    assert row == ("done", None, 1)
    assert image_row == ("ok", fmt)


@pytest.mark.parametrize("target", [
    "http://localhost:{port}/i/good.jpg",          # loopback by name (not in allow_hosts)
    "http://[::1]:{port}/i/good.jpg",               # loopback, IPv6
    "http://10.20.30.40/i/good.jpg",                # private
    "http://169.254.169.254/latest/meta-data/",     # link-local: the cloud metadata service
], ids=["localhost", "ipv6-loopback", "private", "link-local"])
def test_redirect_to_a_private_address_is_refused(tmp_path, target):
    def fault(server):
        port = server.url.rsplit(":", 1)[1]
        server.add_fault(r"^/i/x\.jpg$", 302, headers={"location": target.format(port=port)},
                         times=99, body=b"")

    row, image_row, server = image_case(tmp_path, GOOD, fault=fault)
    assert row == ("failed", "blocked_address", 1)
    assert image_row[0] == "blocked_address"
    # the guard refused before connecting: the sandbox never saw the redirect's target
    assert sum(r.path == "/i/good.jpg" for r in server.requests) == len(CONTROLS)


def test_transient_image_error_is_retried_later(tmp_path):
    row, image_row, _ = image_case(
        tmp_path, GOOD, fault=lambda s: s.add_fault(r"^/i/x\.jpg$", 503, times=1))
    assert row == ("done", None, 2)
    assert image_row == ("ok", "JPEG")


def test_image_429_with_retry_after_is_retried_later(tmp_path):
    row, _, _ = image_case(tmp_path, GOOD, fault=lambda s: s.add_fault(
        r"^/i/x\.jpg$", 429, headers={"retry-after": "1"}, times=1))
    assert row == ("done", None, 2)


def test_persistent_image_error_gives_up_after_max_attempts(tmp_path):
    row, image_row, server = image_case(
        tmp_path, GOOD, fault=lambda s: s.add_fault(r"^/i/x\.jpg$", 503, times=99))
    assert row == ("failed", "http_status:503", 3)  # [daemon] max_attempts = 3 in these tests
    assert sum(r.path == "/i/x.jpg" for r in server.requests) == 3


def test_stalled_image_past_the_read_timeout_is_retried(tmp_path):
    row, _, _ = image_case(
        tmp_path, GOOD, fault=lambda s: s.add_fault(r"^/i/x\.jpg$", 200, delay_s=3.0, times=1,
                                                    body=GOOD),
        images={"read_timeout": 0.5})
    assert row == ("done", None, 2)


def test_daemon_survives_an_internal_error_and_retries(tmp_path):
    """A bug in a stage (here: the classifier raises) is recorded as a retry, then failed."""

    class Exploding(StubClassifier):
        def predict(self, images):
            raise RuntimeError("boom")

    posts = [image_post("bug001", "good.jpg")]
    with SandboxServer(posts, {"good.jpg": GOOD}, released=1) as server:
        daemon, logs = run_all(server, tmp_path, classifier=Exploding())
        assert statuses(daemon.store.db)["t3_bug001"] == ("failed", "internal_error: RuntimeError")
        assert daemon.stats.errors == 3
        assert all("traceback" in e for e in events(logs, "submission_error"))


def test_stop_during_budget_wait_ends_promptly(tmp_path):
    """A long Retry-After must not hold up SIGTERM: the wait ends when stop is set."""
    with SandboxServer(CONTROLS, {"good.jpg": GOOD}, released=2) as server:
        server.add_fault(NEW, 429, headers={"retry-after": "600"}, times=1)
        daemon = fast_daemon(server, tmp_path)
        stop = threading.Event()
        threading.Timer(1.0, stop.set).start()
        started = time.monotonic()
        daemon.run(stop=stop)
        assert time.monotonic() - started < 3.0
        daemon.close()
