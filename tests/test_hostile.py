"""Hostile and odd posts (issue 12), each through the real daemon: praw → the sandbox on
127.0.0.1 → SQLite. Every post must end with a row and a reason; the daemon keeps running."""

from __future__ import annotations

import json
import math

import pytest
from support import DATA, all_final, fast_daemon, image_post, run_until, statuses

from modbot.sandbox.harness import TrickleServer
from modbot.sandbox.server import SandboxServer
from modbot.stream import post_from_data

GOOD = (DATA / "images" / "rgb.jpg").read_bytes()
NEW = r"/r/Art/new"


def listing(*children: dict) -> str:
    """A /new page as Reddit sends it, serialised by hand so odd values survive."""
    return json.dumps({"kind": "Listing", "data": {
        "after": None, "before": None, "children": [{"kind": "t3", "data": c} for c in children]}})


def test_odd_text_and_values_are_recorded_with_a_row(tmp_path):
    """Item 10: a lone surrogate in title/author/flair, a flair that is not a string, and a
    created_utc of 10**400 — each post gets its row; the daemon neither crashes nor loops."""
    control = image_post("ctl001", "good.jpg")
    with SandboxServer([control], {"good.jpg": GOOD}, released=1) as server:
        base = server.url
        odd = [
            image_post("odd001", "good.jpg", title="Dusk\udc80, me, oil on canvas, 2020",
                       author="artist\ud800"),
            image_post("odd002", "good.jpg", link_flair_text={"text": "Digital"}),
            image_post("odd003", "good.jpg", link_flair_text="Oil\udfff"),
        ]
        for post in odd:
            post["url"] = post["url"].format(base=base)
        page = listing(*odd).replace('"created_utc_placeholder"', "1")
        # created_utc = 10**400 cannot be written by json.dumps as a float: splice it in
        huge = image_post("odd004", "good.jpg")
        huge["url"] = huge["url"].format(base=base)
        huge["created_utc"] = "HUGE"
        page = listing(*odd, huge).replace('"HUGE"', "1" + "0" * 400)
        server.add_fault(NEW, 200, body=page, headers={"content-type": "application/json"}, times=1)
        daemon = fast_daemon(server, tmp_path)
        names = [f"t3_{p['id']}" for p in (*odd, huge)]
        run_until(daemon, lambda: all(statuses(daemon.store.db).get(n, ("?",))[0] == "done"
                                      for n in names) and all_final(daemon, server), timeout_s=30)
        rows = {r["fullname"]: r for r in daemon.store.db.query("SELECT * FROM submissions")}
        assert rows["t3_odd001"]["title"] == "Dusk?, me, oil on canvas, 2020"
        assert rows["t3_odd001"]["author"] == "artist?"
        assert rows["t3_odd001"]["stated_medium"] == "painting"
        assert rows["t3_odd002"]["link_flair_text"] is None
        assert rows["t3_odd003"]["link_flair_text"] == "Oil?"
        assert rows["t3_odd004"]["created_utc"] == 0.0
        assert daemon.stats.errors == 0


@pytest.mark.parametrize("value", [10**400, float("inf"), float("nan"), -5, 1e20, "soon", None])
def test_created_utc_outside_time_is_zero(value):
    assert post_from_data({"id": "abc", "created_utc": value}).created_utc == 0.0


def test_created_utc_in_range_is_kept():
    post = post_from_data({"id": "abc", "created_utc": 1_600_000_000})
    assert post.created_utc == 1_600_000_000.0 and math.isfinite(post.created_utc)


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_trickling_image_server_is_cut_at_the_total_deadline(tmp_path, mode):
    """Item 7: the read timeout restarts with every byte; the total deadline must not."""
    import time

    from modbot.domain import ImageRef
    from modbot.errors import ImageFetchError
    from modbot.images import ImageFetcher

    server = TrickleServer(mode)
    try:
        with ImageFetcher(tmp_path, read_timeout=1.0, total_timeout=1.5,
                          allow_hosts=["127.0.0.1"]) as fetcher:
            started = time.monotonic()
            with pytest.raises(ImageFetchError, match="longer than 1.5 s") as info:
                fetcher.fetch(ImageRef(server.url, "direct"))
            assert time.monotonic() - started < 3.0
            assert info.value.retryable
    finally:
        server.close()


def test_cancel_cuts_a_trickling_download_at_once(tmp_path):
    import threading
    import time

    from modbot.domain import ImageRef
    from modbot.errors import ImageFetchError
    from modbot.images import ImageFetcher

    server = TrickleServer("body")
    try:
        with ImageFetcher(tmp_path, read_timeout=5.0, total_timeout=60.0,
                          allow_hosts=["127.0.0.1"]) as fetcher:
            fetcher.cancel = threading.Event()
            threading.Timer(0.5, fetcher.cancel.set).start()
            started = time.monotonic()
            with pytest.raises(ImageFetchError, match="cancelled"):
                fetcher.fetch(ImageRef(server.url, "direct"))
            assert time.monotonic() - started < 1.5
    finally:
        server.close()


def test_a_post_linking_a_trickling_server_does_not_hold_the_stream(tmp_path):
    """Item 7 through the daemon: the slow post is retried and finally failed with a reason;
    the posts after it are done meanwhile."""
    server = TrickleServer("body")
    try:
        slow = image_post("slow01", "x.jpg")
        slow["url"] = server.url
        control = image_post("ctl001", "good.jpg")
        with SandboxServer([slow, control], {"good.jpg": GOOD}, released=2) as sandbox:
            daemon = fast_daemon(sandbox, tmp_path, images={"total_timeout": 0.5, "read_timeout": 0.3})
            run_until(daemon, lambda: all_final(daemon, sandbox), timeout_s=30)
            rows = statuses(daemon.store.db)
            assert rows["t3_ctl001"] == ("done", None)
            assert rows["t3_slow01"][0] == "failed"
            assert "fetch_failed" in rows["t3_slow01"][1]
    finally:
        server.close()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (root only), filled up: writes fail with ENOSPC until ``free()``."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    filler = mount / "filler"
    try:
        with open(filler, "wb") as handle:
            handle.write(b"\0" * 4096 * 1024)
    except OSError:
        pass  # full now
    try:
        yield mount, filler
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_defers_posts_without_using_up_their_attempts(tmp_path, tiny_disk):
    """Item 9: with the image cache's disk full, posts were retried max_attempts times and then
    failed for good (29 of 36 lost in one run). Now they wait, and finish once space returns."""
    import time

    mount, filler = tiny_disk
    posts = [image_post(f"dsk{i:03d}", "good.jpg") for i in range(4)]
    with SandboxServer(posts, {"good.jpg": GOOD}, released=4) as server:
        daemon = fast_daemon(server, tmp_path, storage={"image_cache": str(mount / "cache")},
                             daemon={"retry_base_s": 0.2, "max_attempts": 2})
        started = time.monotonic()

        def freed_after_a_while():
            rows = statuses(daemon.store.db)
            if filler.exists() and time.monotonic() - started > 2.0:
                assert all(rows[f"t3_{p['id']}"][0] == "retry" for p in posts), rows
                assert all("disk_full" in rows[f"t3_{p['id']}"][1] for p in posts), rows
                filler.unlink()
            return not filler.exists() and all_final(daemon, server)

        run_until(daemon, freed_after_a_while, timeout_s=30)
        rows = statuses(daemon.store.db)
        assert all(rows[f"t3_{p['id']}"] == ("done", None) for p in posts), rows
        attempts = [r[0] for r in daemon.store.db.execute("SELECT attempts FROM submissions")]
        assert attempts == [1, 1, 1, 1]


def _mismatch_post(pid: str) -> dict:
    return image_post(pid, "good.jpg", title="Rain, me, digital, 2021")  # the stub says photo


def test_posts_already_removed_are_skipped_and_removal_is_checked_before_acting(tmp_path):
    """Item 15: posts with removed_by_category were judged and acted on like live ones. Now a
    post removed when streamed is skipped; one removed by a moderator between streaming and
    acting gets no report or comment (Reddit is read right before sending)."""
    import threading

    from support import sandbox_reddit

    removed = _mismatch_post("rem001")
    removed["removed_by_category"] = "automod_filtered"
    live = _mismatch_post("liv001")
    later = image_post("lat001", "slow.jpg", title="Rain, me, digital, 2021")
    with SandboxServer([removed, live, later], {"good.jpg": GOOD, "slow.jpg": GOOD},
                       released=3) as server:
        server.add_latency(r"^/i/slow\.jpg$", 1.5)  # modbot is busy downloading lat001 ...
        moderator = sandbox_reddit(server)
        remover = threading.Timer(0.7, lambda: moderator.submission("lat001").mod.remove())
        remover.start()  # ... when a moderator removes it
        daemon = fast_daemon(server, tmp_path, act=True)
        run_until(daemon, lambda: all_final(daemon, server), timeout_s=30)
        remover.join()
        rows = statuses(daemon.store.db)
        assert rows["t3_rem001"] == ("skipped", "removed:automod_filtered")
        sent = {(w.kind, w.fullname) for w in server.writes if w.ok and w.kind in ("report", "comment")}
        assert sent == {("report", "t3_liv001"), ("comment", "t3_liv001")}
        actions = {r["kind"]: r["status"] for r in daemon.store.db.query(
            "SELECT kind, status FROM actions WHERE submission = 't3_lat001'")}
        assert actions == {"report": "skipped", "comment": "skipped"}


def test_a_lost_database_does_not_make_modbot_act_twice(tmp_path):
    """Item 11: "never twice" rested on the local database alone; with it replaced by an empty
    one, modbot reported and commented again. Now it reads its own earlier report and comment
    on Reddit first and records them as sent."""
    posts = [_mismatch_post(f"dup{i:03d}") for i in range(3)]
    with SandboxServer(posts, {"good.jpg": GOOD}, released=3) as server:
        first = fast_daemon(server, tmp_path / "a", act=True)
        run_until(first, lambda: all_final(first, server), timeout_s=30)
        first.close()
        before = [w for w in server.writes if w.kind in ("report", "comment")]
        assert len(before) == 6
        second = fast_daemon(server, tmp_path / "b", act=True)  # a new, empty database
        run_until(second, lambda: all_final(second, server), timeout_s=30)
        after = [w for w in server.writes if w.kind in ("report", "comment")]
        assert len(after) == 6  # nothing sent again
        rows = list(second.store.db.query("SELECT kind, status, error FROM actions"))
        assert len(rows) == 6 and all(r["status"] == "sent" and r["error"] == "found on Reddit"
                                      for r in rows)


def test_a_second_daemon_on_the_same_database_is_refused(tmp_path):
    """Item 11: two daemons on one database were not prevented (each with its own budget)."""
    from modbot.errors import StoreError
    from modbot.record import Store

    first = Store(tmp_path / "modbot.db", exclusive=True)
    try:
        with pytest.raises(StoreError, match="another modbot daemon"):
            Store(tmp_path / "modbot.db", exclusive=True)
        Store(tmp_path / "modbot.db").close()  # readers and tools are not locked out
    finally:
        first.close()
    Store(tmp_path / "modbot.db", exclusive=True).close()  # released with the first


def test_a_zeroed_index_page_stops_the_daemon_at_start(tmp_path):
    """Item 11: a zeroed unique index let sent actions be claimed again; no integrity check
    ran at start. Now the daemon refuses a database that fails PRAGMA quick_check."""
    import sqlite3

    from modbot.errors import StoreError
    from modbot.record import Store

    path = tmp_path / "modbot.db"
    from modbot.medium import stated_medium

    store = Store(path)
    for i in range(400):
        post = post_from_data(image_post(f"x{i}", "good.jpg"))
        store.begin(post, stated_medium(post.title, None))
        store.claim_action(post.fullname, "report", status="intent", text="r")
        store.complete_action(post.fullname, "report", status="sent")
        store.finish(post.fullname, "done")
    store.close()
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    index = next(name for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'actions'")
        if sql and "UNIQUE" in sql.upper())
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [index]).fetchone()[0]
    conn.close()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\0" * page_size)
    with pytest.raises(StoreError, match="integrity check"):
        Store(path, exclusive=True)


def test_a_post_begun_max_attempts_times_is_set_aside_at_start(tmp_path):
    """Item 7: a post that hung or killed the daemon was resumed first on every restart. After
    max_attempts unfinished starts it is failed with a reason, and the stream goes on."""
    from modbot.medium import stated_medium
    from modbot.record import Store

    stuck = image_post("stk001", "stuck.jpg")
    control = image_post("ctl001", "good.jpg")
    with SandboxServer([stuck, control], {"good.jpg": GOOD, "stuck.jpg": GOOD}, released=2) as server:
        store = Store(tmp_path / "modbot.db")
        post = post_from_data({**stuck, "url": stuck["url"].format(base=server.url)})
        for _ in range(3):  # three starts that never finished it (kill -9 mid-post)
            store.begin(post, stated_medium(post.title, None))
        store.close()
        daemon = fast_daemon(server, tmp_path, daemon={"max_attempts": 3})
        run_until(daemon, lambda: all_final(daemon, server), timeout_s=30)
        rows = statuses(daemon.store.db)
        assert rows["t3_stk001"] == ("failed", "unfinished_after_max_attempts")
        assert rows["t3_ctl001"] == ("done", None)
        assert not [r for r in server.requests if r.path.endswith("stuck.jpg")]


def test_an_earlier_repost_report_is_not_taken_for_the_mismatch_report(tmp_path):
    """modbot's own repost report already on Reddit (a lost database) must not stop the
    mismatch report: only a report that starts like [actions] report_template counts."""
    from support import sandbox_reddit

    mis = _mismatch_post("rep001")
    with SandboxServer([mis], {"good.jpg": GOOD}, released=1) as server:
        sandbox_reddit(server).submission("rep001").report("modbot repost (other_author): https://redd.it/x")
        daemon = fast_daemon(server, tmp_path, act=True)
        run_until(daemon, lambda: all_final(daemon, server), timeout_s=30)
        reports = [w.text for w in server.writes if w.kind == "report" and w.fullname == "t3_rep001"]
        assert len(reports) == 2 and reports[1].startswith("modbot: looks like")
        status = daemon.store.action_status("t3_rep001", "report")
        assert status == "sent"
