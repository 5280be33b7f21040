"""The repost finder inside the real daemon: praw → the sandbox on 127.0.0.1 → images →
fingerprints in SQLite → findings → a report on the sandbox, at most once per submission (also
across a restart on the same database). Images are generated with Pillow; the CNN is the
``StubClassifier`` (not what these tests are about)."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageDraw, ImageFilter
from support import all_final, fast_daemon, image_post, run_until

from modbot.sandbox.server import SandboxServer


def picture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A painting-like picture: a gradient with random blurred shapes (seeded)."""
    rng = random.Random(seed)
    w, h = size
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    d = ImageDraw.Draw(im)
    for _ in range(30):
        x0, y0 = rng.randint(-40, w), rng.randint(-40, h)
        box = (x0, y0, x0 + rng.randint(30, w // 2), y0 + rng.randint(30, h // 2))
        fill = tuple(rng.randint(0, 255) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
    return im.filter(ImageFilter.GaussianBlur(2))


def encode(im: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


ORIGINAL = picture(1)
W, H = ORIGINAL.size
IMAGES = {
    "original.jpg": encode(ORIGINAL, quality=85),
    # another author's copy: cropped by ~6 %, rescaled, recompressed
    "stolen.jpg": encode(ORIGINAL.crop((30, 10, W - 8, H - 25)).resize((500, 350)), quality=60),
    # the author's own repost, larger and as PNG
    "own_again.png": encode(ORIGINAL.resize((900, 675)), "PNG"),
    "unrelated.jpg": encode(picture(2), quality=85),
}

POSTS = [
    image_post("orig01", "original.jpg", title="Dusk over the bay, alice_paints, oil on canvas, 2020",
               author="alice_paints"),
    image_post("stol01", "stolen.jpg", title="Sunset, me, digital, 2021", author="bob_copies"),
    image_post("unre01", "unrelated.jpg", title="Rain, me, oil on canvas, 2021", author="carol_x"),
    image_post("agin01", "own_again.png", title="Dusk over the bay, me, oil on canvas, 2020",
               author="alice_paints"),
]


def findings(db) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for r in db.execute("SELECT submission, kind, match_submission, match_author, distance, "
                        "mirrored FROM repost_findings ORDER BY submission, id"):
        out.setdefault(r[0], []).append(tuple(r[1:]))
    return out


def repost_reports(server) -> list[tuple[str, str]]:
    return [(w.fullname, w.text) for w in server.writes if w.kind == "report"]


@pytest.fixture
def server():
    with SandboxServer(POSTS, IMAGES, released=1) as srv:  # the original first
        yield srv


def test_daemon_finds_records_and_reports_a_repost_once(server, tmp_path):
    daemon = fast_daemon(server, tmp_path, reposts={"report": "on"})
    run_until(daemon, lambda: all_final(daemon, server))
    assert findings(daemon.store.db) == {}  # nothing earlier
    server.release(3)
    run_until(daemon, lambda: all_final(daemon, server))
    db = daemon.store.db
    found = findings(db)
    assert set(found) == {"t3_stol01", "t3_agin01"}, found
    kind, match, author, dist, mirrored = found["t3_stol01"][0]
    # alice's title names alice as the artist: a known original, posted by someone else now
    assert (kind, match, author, mirrored) == ("known_original", "t3_orig01", "alice_paints", 0)
    assert 0 <= dist <= 44
    assert found["t3_agin01"][0][:3] == ("same_author", "t3_orig01", "alice_paints")
    n_fp = db.execute("SELECT COUNT(*) FROM repost_fingerprints WHERE source = 'daemon'").fetchone()[0]
    assert n_fp == 4
    reports = repost_reports(server)
    assert sorted(f for f, _ in reports) == ["t3_agin01", "t3_stol01"]
    text = dict(reports)["t3_stol01"]
    assert "https://redd.it/orig01" in text and "known_original" in text and len(text) <= 100
    rows = db.execute("SELECT submission, status FROM actions WHERE kind = 'repost_report' "
                      "ORDER BY submission").fetchall()
    assert [tuple(r) for r in rows] == [("t3_agin01", "sent"), ("t3_stol01", "sent")]
    daemon.close()

    # a crash after the report: the post is processed again on the next start, finds the
    # same repost, and does not report it a second time
    again = fast_daemon(server, tmp_path, reposts={"report": "on"})
    again.store.finish("t3_stol01", "abandoned", reason="shutdown")
    run_until(again, lambda: all_final(again, server))
    assert again.store.status_of("t3_stol01") == "done"
    assert findings(again.store.db)["t3_stol01"][0][:2] == ("known_original", "t3_orig01")
    assert len(repost_reports(server)) == 2
    again.close()


def test_findings_are_recorded_without_reporting_by_default(server, tmp_path):
    daemon = fast_daemon(server, tmp_path)
    server.release(3)
    run_until(daemon, lambda: all_final(daemon, server))
    found = findings(daemon.store.db)
    assert found["t3_stol01"][0][:2] == ("known_original", "t3_orig01")
    assert "t3_unre01" not in found and "t3_orig01" not in found
    assert repost_reports(server) == []
    assert daemon.store.db.execute(
        "SELECT COUNT(*) FROM actions WHERE kind = 'repost_report'").fetchone()[0] == 0
    daemon.close()


def test_disabled_finder_stores_nothing(server, tmp_path):
    daemon = fast_daemon(server, tmp_path, reposts={"enabled": False, "report": "on"})
    server.release(3)
    run_until(daemon, lambda: all_final(daemon, server))
    db = daemon.store.db
    assert db.execute("SELECT COUNT(*) FROM repost_fingerprints").fetchone()[0] == 0
    assert findings(db) == {} and repost_reports(server) == []
    daemon.close()


def test_review_report_and_similar_show_the_finding(server, tmp_path):
    import json

    from click.testing import CliRunner

    from modbot.cli import main

    daemon = fast_daemon(server, tmp_path)
    server.release(3)
    run_until(daemon, lambda: all_final(daemon, server))
    daemon.close()
    db = str(tmp_path / "modbot.db")
    runner = CliRunner()

    shown = runner.invoke(main, ["review", "--db", db, "show", "stol01"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "known_original" in shown.output and "https://redd.it/orig01" in shown.output
    detail = json.loads(runner.invoke(main, ["review", "--db", db, "show", "orig01",
                                             "--format", "json"]).output)
    assert {(r["submission"], r["later"]) for r in detail["reposts"]} == {
        ("t3_stol01", True), ("t3_agin01", True)}

    rep = json.loads(runner.invoke(main, ["report", "--db", db, "--format", "json"]).output)
    assert rep["reposts"]["submissions"] == 2
    assert rep["reposts"]["by_kind"] == {"known_original": 1, "other_author": 0, "same_author": 1}
    table = runner.invoke(main, ["report", "--db", db], terminal_width=200)
    assert "Reposts: 2 posts" in table.output

    copy = tmp_path / "copy.jpg"
    ORIGINAL.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((320, 240)).save(copy)
    found = runner.invoke(main, ["similar", "--db", db, str(copy), "--format", "json"])
    assert found.exit_code == 0, found.output
    rows = json.loads(found.output)
    # the cropped copy is not found from the whole picture: stored crop windows serve a cropped
    # *query* (the repost), not a cropped original
    assert {r["submission"] for r in rows} == {"t3_orig01", "t3_agin01"}
    assert all(r["mirrored"] for r in rows)
    text = runner.invoke(main, ["similar", "--db", db, str(copy)]).output
    assert "https://redd.it/orig01" in text and "mirrored" in text
    url = f"{server.url}/i/unrelated.jpg"
    by_url = runner.invoke(main, ["similar", "--db", db, url, "--allow-host", "127.0.0.1",
                                  "--format", "json"])
    assert by_url.exit_code == 0, by_url.output
    assert [r["submission"] for r in json.loads(by_url.output)] == ["t3_unre01"]
    blocked = runner.invoke(main, ["similar", "--db", db, url])  # loopback refused by the guard
    assert blocked.exit_code == 1 and "Error" in blocked.output


def test_a_repost_of_a_collected_post_is_found(tmp_path):
    """``modbot collect`` fingerprints what it collects; the daemon later finds a copy of it."""
    from support import sandbox_reddit

    from modbot.images import ImageFetcher
    from modbot.learning.collect import collect
    from modbot.record import open_database

    with SandboxServer(POSTS[:1], IMAGES, released=1) as history:
        db = open_database(tmp_path / "modbot.db")
        with ImageFetcher(tmp_path / "cache", allow_hosts=["127.0.0.1"]) as fetcher:
            result = collect(sandbox_reddit(history), db, fetcher, subreddit="Art", per_medium=5,
                             media=("painting",))
        assert result.kept == 1
        rows = db.execute("SELECT submission, source, author, artist FROM repost_fingerprints"
                          ).fetchall()
        assert [tuple(r) for r in rows] == [("t3_orig01", "collect", "alice_paints", "alice_paints")]
        db.conn.close()
    with SandboxServer(POSTS[1:3], IMAGES) as server:
        server.release(2)  # made now: after the collected post
        daemon = fast_daemon(server, tmp_path)
        run_until(daemon, lambda: all_final(daemon, server))
        found = findings(daemon.store.db)
        assert list(found) == ["t3_stol01"]
        assert found["t3_stol01"][0][:3] == ("known_original", "t3_orig01", "alice_paints")
        source = daemon.store.db.execute(
            "SELECT match_source FROM repost_findings WHERE submission = 't3_stol01'").fetchone()[0]
        assert source == "collect"
        daemon.close()


def test_restarted_daemon_builds_its_index_before_ready(server, tmp_path):
    """On a restart the repost index is built from SQLite before systemd is told READY (the
    first post does not wait for it), with every stored fingerprint in it."""
    from modbot.notify import Notifier

    daemon = fast_daemon(server, tmp_path)
    server.release(3)
    run_until(daemon, lambda: all_final(daemon, server))
    daemon.close()
    at_ready: list[int] = []

    class Recording(Notifier):
        def ready(self, status: str = "streaming") -> bool:
            index = again.pipeline.reposts._index  # the stage's index as READY is sent
            at_ready.append(-1 if index is None else len(index))
            return super().ready(status)

    again = fast_daemon(server, tmp_path, notifier=Recording(env={}))
    run_until(again, lambda: True)
    assert at_ready == [4]
    again.close()


def test_single_blas_thread_limits_numpy_blas():
    """``single_blas_thread`` (called by the daemon and ``modbot collect``) leaves numpy's BLAS
    one thread (checked in a fresh interpreter: the limit is process-wide)."""
    import subprocess
    import sys

    code = ("from modbot.fingerprint import single_blas_thread; import numpy; "
            "from threadpoolctl import threadpool_info; single_blas_thread(); "
            "print(sorted({i['num_threads'] for i in threadpool_info() "
            "if i['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1]"
