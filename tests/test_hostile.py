"""Hostile and odd posts (issue 12), each through the real daemon: praw → the sandbox on
127.0.0.1 → SQLite. Every post must end with a row and a reason; the daemon keeps running."""

from __future__ import annotations

import json
import math

import pytest
from support import DATA, all_final, fast_daemon, image_post, run_until, statuses

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


class _Trickle:
    """A loopback HTTP server that trickles: headers (``mode="headers"``) or the body
    (``mode="body"``) one byte every ``every_s`` seconds, for ever (until closed)."""

    def __init__(self, mode: str, every_s: float = 0.2) -> None:
        import socket
        import threading

        self.mode, self.every_s = mode, every_s
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slow.jpg"

    def _serve(self) -> None:
        import threading

        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn) -> None:
        try:
            conn.recv(65536)
            if self.mode == "body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not self.closed.wait(self.every_s):
                conn.sendall(b"X" if self.mode == "body" else b"X-Slow: y\r\n"[:1])
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_trickling_image_server_is_cut_at_the_total_deadline(tmp_path, mode):
    """Item 7: the read timeout restarts with every byte; the total deadline must not."""
    import time

    from modbot.domain import ImageRef
    from modbot.errors import ImageFetchError
    from modbot.images import ImageFetcher

    server = _Trickle(mode)
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

    server = _Trickle("body")
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
    server = _Trickle("body")
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
