"""The Reddit API budget: the decision rules on a fake clock, then the real requestor through
praw against the sandbox (cap, x-ratelimit-* headers, idle polling, real timeout)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support import fast_budget, fast_daemon, image_post, run_until

from modbot.errors import ShuttingDown
from modbot.ratelimit import RequestBudget, parse_retry_after

GOOD = (Path(__file__).resolve().parent / "data" / "images" / "rgb.jpg").read_bytes()


class FakeClock:
    """Monotonic seconds that only move when the budget 'sleeps'."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self.now += seconds
        return False


def budget(clock: FakeClock, **kwargs) -> RequestBudget:
    return RequestBudget(clock=clock, sleep=clock.sleep, **kwargs)


def test_sliding_window_cap_is_exact():
    clock = FakeClock()
    b = budget(clock, per_minute=5, burst=5)
    sent_at = []
    for _ in range(12):
        b.acquire()
        sent_at.append(clock.now)
        clock.now += 1.0  # one request per second if nothing held it back
    # no 60-s window ever holds more than 5 sends
    for t in sent_at:
        assert sum(1 for u in sent_at if t <= u < t + 60) <= 5
    # the 6th waits for the 1st to age out, plus the 0.5-s margin for arrival jitter
    assert sent_at[5] == pytest.approx(sent_at[0] + 60.5)


def test_per_minute_must_respect_reddits_limit():
    with pytest.raises(ValueError):
        RequestBudget(per_minute=101)
    with pytest.raises(ValueError):
        RequestBudget(per_minute=0)


def test_retry_after_blocks_every_request():
    clock = FakeClock()
    b = budget(clock)
    b.acquire()
    b.observe(429, {"retry-after": "7"})
    assert b.delay() == pytest.approx(7)
    waited = b.acquire()
    assert waited == pytest.approx(7)


@pytest.mark.parametrize("value,expected", [("4", 4.0), ("2.5", 2.5), ("-3", 0.0), ("soon", None),
                                            (None, None)])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10)


def test_backoff_grows_is_capped_and_resets():
    clock = FakeClock()
    b = budget(clock, backoff_base_s=1.0, backoff_max_s=8.0)
    delays = []
    for status in (503, 502, None, 429, 500, 500):  # 429 without Retry-After backs off too
        b.observe(status, {})
        delays.append(round(b.delay(), 3))
        clock.now += b.delay()
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.observe(200, {})
    assert b.failures == 0
    b.observe(500, {})
    assert b.delay() == pytest.approx(1.0)


def test_ratelimit_headers_exhausted_wait_for_reset():
    clock = FakeClock()
    b = budget(clock)
    b.observe(200, {"x-ratelimit-remaining": "0.0", "x-ratelimit-used": "1000",
                    "x-ratelimit-reset": "42"})
    assert b.delay() == pytest.approx(43)  # whole seconds, rounded down by Reddit: +1


def test_ratelimit_headers_pace_when_scarce():
    clock = FakeClock()
    b = budget(clock, per_minute=90)
    # plenty left (Reddit's usual numbers): no pacing
    b.observe(200, {"x-ratelimit-remaining": "997.0", "x-ratelimit-used": "3",
                    "x-ratelimit-reset": "590"})
    assert b.delay() == 0
    # 10 left for 100 s: one every 10 s
    b.observe(200, {"x-ratelimit-remaining": "10.0", "x-ratelimit-used": "990",
                    "x-ratelimit-reset": "100"})
    assert b.delay() == pytest.approx(10)


def test_stop_turns_a_wait_into_shutting_down_but_lets_free_requests_go():
    clock = FakeClock()
    b = budget(clock)
    b.stop.set()
    b.acquire()  # nothing to wait for: still sent (an action in progress completes)
    b.observe(429, {"retry-after": "30"})
    with pytest.raises(ShuttingDown):
        b.acquire()
    assert b.sent == 1


def test_wait_pings_heartbeat():
    clock = FakeClock()
    beats = []
    b = budget(clock, heartbeat=lambda: beats.append(clock.now), heartbeat_every_s=5.0)
    b.observe(429, {"retry-after": "23"})
    b.acquire()
    assert len(beats) == 5  # 5+5+5+5+3 s
    assert max(clock.slept) <= 5.0


# ------------------------------------------------------------------------------------------
# Through praw against the sandbox
# ------------------------------------------------------------------------------------------

def oauth_requests(server):
    """Requests that count against Reddit's budget: API calls and token requests."""
    return [r for r in server.requests if not r.path.startswith(("/i/", "/_sandbox"))]


def test_client_cap_holds_under_pressure(tmp_path):
    """poll_interval 0 and a busy stream would send as fast as possible; the cap holds."""
    from modbot.sandbox.server import SandboxServer

    posts = [image_post(f"cap{i:02d}", "a.jpg") for i in range(40)]
    with SandboxServer(posts, {"a.jpg": GOOD}, released=2) as server:
        stop = threading.Event()
        b = fast_budget(per_minute=12)
        daemon = fast_daemon(server, tmp_path, budget=b, act=True, reddit={"poll_interval": 0.0})

        def releaser():
            while not stop.wait(0.1):
                server.release(1)

        threading.Thread(target=releaser, daemon=True).start()
        threading.Timer(4.0, stop.set).start()
        started = time.monotonic()
        daemon.run(stop=stop)  # blocked in a budget wait when stop comes: it must end at once
        assert time.monotonic() - started < 6.0
        daemon.close()
        sent = oauth_requests(server)
        # in any 60-s window at most 12: the run lasted ~4 s, so all of them count
        assert 8 <= len(sent) <= 12, len(sent)
        assert b.in_last_window() == len(sent)


def test_exhausted_ratelimit_headers_are_honoured(tmp_path):
    """The sandbox allows 5 requests per 3-s window and answers 429 past that; the daemon
    reads x-ratelimit-remaining and waits for the reset, so it never gets that 429."""
    from modbot.sandbox.server import SandboxServer

    with SandboxServer([image_post("rl0001", "missing.png")], {}, released=1,
                       ratelimit=(5, 3)) as server:
        daemon = fast_daemon(server, tmp_path, reddit={"poll_interval": 0.0})
        started = time.time()
        run_until(daemon, lambda: time.time() - started > 6.0)
        daemon.close()
        api = [r for r in oauth_requests(server) if r.path != "/api/v1/access_token"]
        assert len(api) >= 6  # it did go on polling, window after window
        assert all(r.status != 429 for r in api), [r.status for r in api]
        windows = {int(r.time // 3) for r in api}
        assert len(windows) >= 2
        for w in windows:
            assert sum(1 for r in api if int(r.time // 3) == w) <= 5


def test_idle_polling_does_not_busy_loop(tmp_path):
    from modbot.sandbox.server import SandboxServer

    with SandboxServer([], {}, released=0) as server:
        daemon = fast_daemon(server, tmp_path, reddit={"poll_interval": 0.5})
        started = time.time()
        run_until(daemon, lambda: time.time() - started > 3.0)
        daemon.close()
        polls = [r for r in server.requests if r.path.endswith("/new")]
        assert 3 <= len(polls) <= 8, len(polls)  # ~one per poll_interval, not thousands


def test_requests_are_spread_evenly_after_a_small_burst():
    """Issue 14: the 60-s window let 90 requests through at once and then blocked for 12–13 s,
    so a new post waited for its turn. Now only ``burst`` go back to back; after that they are
    60/(per_minute - burst) seconds apart — burst and pace together never exceed the window cap,
    so there is no stall either."""
    clock = FakeClock()
    b = budget(clock, per_minute=90, burst=10)
    sent_at = []
    for _ in range(200):
        b.acquire()
        sent_at.append(clock.now)
    gaps = [b2 - a for a, b2 in zip(sent_at, sent_at[1:])]
    assert gaps[:9] == [0.0] * 9
    assert max(gaps) == pytest.approx(60 / 80)  # never a stall longer than the even pace
    for t in sent_at:
        assert sum(1 for u in sent_at if t <= u < t + 60) <= 90
