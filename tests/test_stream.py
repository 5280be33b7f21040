"""The stream's cold start and poll shape, through unmodified praw against the sandbox on
loopback: paging back with ``after=`` until a recorded submission, the backlog oldest first, a
gap recorded when paging could not reach back, and "poll again at once after a full page,
wait after a short one"."""

from __future__ import annotations

import threading

import pytest
from support import fast_daemon, run_until, statuses

from modbot import stream as stream_module
from modbot.sandbox.server import SandboxServer
from modbot.stream import BacklogEnd, make_reddit, stream_posts

NEW = "/r/Art/new"


def self_post(i: int) -> dict:
    """A text post (skipped at once by the daemon: nothing to download)."""
    pid = f"s{i:05d}"
    return {"id": pid, "name": f"t3_{pid}", "title": f"Post {i}", "author": "someone",
            "subreddit": "Art", "is_self": True, "is_video": False, "selftext": "hello",
            "url": f"/r/Art/comments/{pid}/x/", "permalink": f"/r/Art/comments/{pid}/x/"}


def reddit_for(server):
    """A budgeted praw.Reddit (as the daemon makes it) talking to ``server``."""
    from support import CREDENTIAL_KEYS, fast_budget

    from modbot.config import Config

    config = Config().replace(reddit={"oauth_url": server.url, "reddit_url": server.url,
                                      "short_url": server.url, "request_timeout": 5.0})
    creds = {k: v for k, v in server.praw_kwargs().items() if k in CREDENTIAL_KEYS}
    return make_reddit(config, budget=fast_budget(), **creds)


def take(stream, n_posts: int, *, max_nones: int = 20) -> list:
    """Items of ``stream`` until ``n_posts`` posts were yielded or ``max_nones`` idle points
    passed (Nones kept, to check the shape)."""
    out = []
    for item in stream:
        out.append(item)
        if sum(i is not None for i in out) >= n_posts or out.count(None) >= max_nones:
            break
    return out


def listing_calls(server) -> list[dict]:
    return [r.query for r in server.requests if r.path.rstrip("/").removesuffix(".json") == NEW]


def test_cold_start_pages_back_to_the_oldest_and_yields_oldest_first():
    posts = [self_post(i) for i in range(250)]
    with SandboxServer(posts, {}, released=250) as server:
        stop = threading.Event()
        ends: list[BacklogEnd] = []
        stream = stream_posts(reddit_for(server), "Art", poll_interval=0.05, stop=stop,
                              is_recorded=lambda f: False, on_backlog_end=ends.append)
        items = take(stream, 250)
        stop.set()
        got = [p.fullname for p in items if p is not None]
        assert got == [p["name"] for p in posts]  # every one, oldest first, once
        calls = listing_calls(server)
        assert [c.get("after") for c in calls[:3]] == [None, "t3_s00150", "t3_s00050"]
        assert all(c["limit"] == "100" for c in calls[:3])
        assert len(ends) == 1 and ends[0].reason == "listing_end" and ends[0].posts == 250
        assert ends[0].oldest == "t3_s00000"


def test_cold_start_stops_at_a_recorded_submission_and_skips_recorded_ones():
    posts = [self_post(i) for i in range(250)]
    recorded = {p["name"] for p in posts[:30]} | {posts[40]["name"]}
    with SandboxServer(posts, {}, released=250) as server:
        stop = threading.Event()
        ends: list[BacklogEnd] = []
        stream = stream_posts(reddit_for(server), "Art", poll_interval=0.05, stop=stop,
                              is_recorded=recorded.__contains__, on_backlog_end=ends.append)
        items = take(stream, 219)
        stop.set()
        got = [p.fullname for p in items if p is not None]
        # the page holding a recorded post ends the paging: 3 pages, none further back
        assert got == [p["name"] for p in posts[30:] if p["name"] not in recorded]
        assert ends == []
        assert sum("after" in c for c in listing_calls(server)) == 2


def test_a_backlog_longer_than_reddit_lists_is_a_recorded_gap(tmp_path, monkeypatch):
    """Two pages stand in for Reddit's ten (the ~1,000-post window): 250 waiting, the oldest
    recorded before, so 50 posts between could never be listed — a ``backlog_gaps`` row."""
    monkeypatch.setattr(stream_module, "BACKLOG_PAGES", 2)
    posts = [self_post(i) for i in range(251)]
    with SandboxServer(posts, {}, released=1) as server:
        daemon = fast_daemon(server, tmp_path)
        run_until(daemon, lambda: len(statuses(daemon.store.db)) == 1)
        server.release_all()
        run_until(daemon, lambda: len(statuses(daemon.store.db)) == 201)
        rows = list(daemon.store.db.query("SELECT * FROM backlog_gaps"))
        assert len(rows) == 1
        gap = rows[0]
        assert (gap["subreddits"], gap["pages"], gap["posts"], gap["reason"]) == (
            "Art", 2, 200, "page_limit")
        assert gap["oldest_fullname"] == "t3_s00051"
        assert gap["newest_recorded_utc"] is not None
        assert gap["newest_recorded_utc"] <= gap["oldest_created_utc"]
        # the 50 that were never listed are not recorded; the 200 listed all are
        recorded = statuses(daemon.store.db)
        assert "t3_s00050" not in recorded and "t3_s00051" in recorded
        daemon.close()


def test_first_start_without_history_records_no_gap(tmp_path, monkeypatch):
    monkeypatch.setattr(stream_module, "BACKLOG_PAGES", 1)
    posts = [self_post(i) for i in range(150)]
    with SandboxServer(posts, {}, released=150) as server:
        daemon = fast_daemon(server, tmp_path)
        run_until(daemon, lambda: len(statuses(daemon.store.db)) == 100)
        assert daemon.store.db.execute("SELECT COUNT(*) FROM backlog_gaps").fetchone()[0] == 0
        daemon.close()


def test_full_page_polls_again_at_once_short_page_waits():
    """150 new posts after the cold start: a full page (100) is followed by another poll
    straight away (no idle point between), the short page (50) by an idle point (None)."""
    posts = [self_post(i) for i in range(160)]
    with SandboxServer(posts, {}, released=10) as server:
        stop = threading.Event()
        stream = stream_posts(reddit_for(server), "Art", poll_interval=0.3, stop=stop,
                              is_recorded=lambda f: False)
        first = take(stream, 10)
        assert [p.fullname for p in first if p is not None] == [p["name"] for p in posts[:10]]
        server.release(150)
        items = take(stream, 150)
        stop.set()
        got = [i for i in items if i is not None]
        assert [p.fullname for p in got] == [p["name"] for p in posts[10:]]
        # the 150 arrive with no idle point (None) between the full page and the next
        first_new = next(k for k, i in enumerate(items) if i is not None)
        assert None not in items[first_new:]
        befores = [c.get("before") for c in listing_calls(server) if "before" in c]
        assert befores[-2:] == ["t3_s00009", "t3_s00109"]


@pytest.mark.parametrize("interval", [0.3])
def test_idle_polls_follow_poll_interval(interval):
    """Idle: one poll per poll_interval (each followed by one idle point), not a busy loop."""
    with SandboxServer([self_post(0)], {}, released=1) as server:
        stop = threading.Event()
        stream = stream_posts(reddit_for(server), "Art", poll_interval=interval, stop=stop,
                              is_recorded=lambda f: False)
        items = []
        for item in stream:
            items.append(item)
            if sum(i is None for i in items) >= 5:
                break
        stop.set()
        assert [i.fullname for i in items if i is not None] == ["t3_s00000"]
        assert len(listing_calls(server)) == 5  # one request per idle point
