"""Downloads ahead of classification (``modbot.prefetch``): the stream's items pass unchanged
and in order, reading ahead stops at idle points, a prefetched image or error is exactly what the
fetcher gives, and the daemon still records every row in the same order and stops cleanly.
Real HTTP on loopback (the sandbox), real SQLite."""

from __future__ import annotations

import io
import threading
import time

import pytest
from support import all_final, fast_daemon, image_post, run_until, statuses

from modbot.domain import ImageRef
from modbot.errors import ImageHTTPStatusError
from modbot.images import ImageFetcher
from modbot.prefetch import Prefetcher
from modbot.sandbox.server import SandboxServer
from modbot.stream import post_from_data


def jpeg(seed: int, size=(320, 240)) -> bytes:
    from PIL import Image

    img = Image.new("RGB", size, ((seed * 40) % 256, (seed * 90) % 256, (seed * 150) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def text_post(i: int):
    return post_from_data({"id": f"p{i}", "title": "t", "is_self": True, "selftext": "x",
                           "subreddit": "Art"})


def test_ahead_keeps_items_in_order_and_never_reads_past_an_idle_point(tmp_path):
    pulled: list[object] = []
    items = [text_post(0), text_post(1), None, text_post(2), *[text_post(i) for i in range(3, 15)]]

    def source():
        for item in items:
            pulled.append(item)
            yield item

    prefetcher = Prefetcher(ImageFetcher(tmp_path), max_images=lambda: 20, depth=4)
    seen = []
    for item in prefetcher.ahead(source(), wanted=lambda p: True):
        seen.append(item)
        if item is None:
            # the idle point is handed on before anything after it was read (the stream would
            # be waiting its poll interval there)
            assert len(pulled) == 3
        elif len(seen) > 3:
            assert len(pulled) - len(seen) <= 4  # at most `depth` items ahead
    assert seen == items
    prefetcher.close()


def test_prefetched_images_and_errors_are_what_the_fetcher_gives(tmp_path):
    images = {"a.jpg": jpeg(1), "b.jpg": jpeg(2)}
    posts = [image_post("aaa", "a.jpg"), image_post("bbb", "missing.jpg")]
    with SandboxServer(posts, images, released=2) as server:
        fetcher = ImageFetcher(tmp_path / "cache", allow_hosts=["127.0.0.1"])
        prefetcher = Prefetcher(fetcher, max_images=lambda: 20)
        good = post_from_data({**posts[0], "url": f"{server.url}/i/a.jpg"})
        bad = post_from_data({**posts[1], "url": f"{server.url}/i/missing.jpg"})
        prefetcher.submit(good)
        prefetcher.submit(bad)
        assert prefetcher.pending == 2
        image = prefetcher.fetch(ImageRef(good.url, "direct"))
        direct = fetcher.fetch(ImageRef(good.url, "direct"))
        assert (image.sha256, image.width, image.height) == (direct.sha256, direct.width,
                                                             direct.height)
        with pytest.raises(ImageHTTPStatusError) as info:
            prefetcher.fetch(ImageRef(bad.url, "direct"))
        assert info.value.status == 404
        assert (prefetcher.hits, prefetcher.misses, prefetcher.pending) == (2, 0, 0)
        # an image nobody prefetched is downloaded on the spot
        assert prefetcher.fetch(ImageRef(good.url, "direct")).sha256 == direct.sha256
        assert prefetcher.misses == 1
        prefetcher.close()
        fetcher.close()


def test_daemon_records_rows_in_stream_order_with_downloads_ahead(tmp_path):
    images = {f"i{k}.jpg": jpeg(k) for k in range(6)}
    posts = []
    for i in range(24):
        extra = {}
        if i % 4 == 0:  # a gallery: three images, recorded in gallery order
            extra = {"is_gallery": True, "url": f"https://www.reddit.com/gallery/g{i}",
                     "gallery_data": {"items": [{"media_id": f"m{i}{k}", "id": k} for k in range(3)]},
                     "media_metadata": {f"m{i}{k}": {"status": "valid", "e": "Image", "m": "image/jpeg",
                                                     "s": {"u": "{base}/i/" + f"i{(i + k) % 6}.jpg",
                                                           "x": 320, "y": 240}}
                                        for k in range(3)}}
        posts.append(image_post(f"q{i:03d}", f"i{i % 6}.jpg", **extra))
    with SandboxServer(posts, images, released=24, image_latency_s=0.05) as server:
        daemon = fast_daemon(server, tmp_path)
        run_until(daemon, lambda: all_final(daemon, server))
        db = daemon.store.db
        assert {s for s, _ in statuses(db).values()} == {"done"}
        assert daemon.prefetcher.hits >= 30  # the downloads were done ahead
        order = [r[0] for r in db.execute(
            "SELECT fullname FROM submissions ORDER BY first_seen_at, rowid")]
        assert order == [p["name"] for p in posts]  # oldest first, as the stream yields them
        rows = db.execute("SELECT submission, position FROM images ORDER BY id").fetchall()
        assert [r[0] for r in rows] == sorted((r[0] for r in rows), key=order.index)
        for name in order:
            positions = [p for s, p in rows if s == name]
            assert positions == sorted(positions)
        assert db.execute("SELECT MAX(n_images) FROM verdicts").fetchone()[0] == 3
        daemon.close()


def test_stop_with_downloads_in_flight_abandons_cleanly(tmp_path):
    images = {"a.jpg": jpeg(3)}
    posts = [image_post(f"r{i:02d}", "a.jpg") for i in range(10)]
    with SandboxServer(posts, images, released=10, image_latency_s=1.0) as server:
        daemon = fast_daemon(server, tmp_path)
        stop = threading.Event()
        runner = threading.Thread(target=daemon.run, kwargs={"stop": stop})
        runner.start()
        deadline = time.monotonic() + 30
        while not statuses(daemon.store.db) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        runner.join(timeout=15)
        assert not runner.is_alive()
        rows = statuses(daemon.store.db)
        assert rows and {s for s, _ in rows.values()} <= {"done", "abandoned"}
        assert "abandoned" in {s for s, _ in rows.values()}
        daemon.close()
        assert daemon.prefetcher.pending == 0


def test_prepare_runs_on_decode_threads_and_a_failing_prepare_keeps_the_image(tmp_path):
    """``prepare`` runs once per prefetched image on a decode thread; if it raises, the image
    is handed out unprepared; an image fetched on the spot is never prepared."""
    import dataclasses

    images = {"a.jpg": jpeg(4), "b.jpg": jpeg(5)}
    posts = [image_post("aaa", "a.jpg"), image_post("bbb", "b.jpg")]
    threads = []

    def prepare(image):
        threads.append(threading.current_thread().name)
        if image.ref.url.endswith("b.jpg"):
            raise RuntimeError("a bug in preparing")
        return dataclasses.replace(image, fingerprint="prepared")

    with SandboxServer(posts, images, released=2) as server:
        fetcher = ImageFetcher(tmp_path / "cache", allow_hosts=["127.0.0.1"])
        prefetcher = Prefetcher(fetcher, max_images=lambda: 20, prepare=prepare, cpu_slots=1)
        a, b = (post_from_data({**p, "url": f"{server.url}/i/{n}"})
                for p, n in zip(posts, ("a.jpg", "b.jpg"), strict=True))
        prefetcher.submit(a)
        prefetcher.submit(b)
        got_a = prefetcher.fetch(ImageRef(a.url, "direct"))
        got_b = prefetcher.fetch(ImageRef(b.url, "direct"))
        assert got_a.fingerprint == "prepared"
        assert got_b.fingerprint is None and got_b.sha256 == fetcher.fetch(ImageRef(b.url, "direct")).sha256
        assert sorted(threads) == ["modbot-decode_0", "modbot-decode_0"]
        assert prefetcher.fetch(ImageRef(a.url, "direct")).fingerprint is None  # on the spot
        assert len(threads) == 2
        prefetcher.close()
        fetcher.close()


class InputSizeStub:
    """A stub classifier with an input size that notes, per image, whether its model input was
    prepared ahead (at that size) when it was classified."""

    labels = ("digital", "painting", "drawing", "photography")
    version = "stub-size-1"
    input_size = (224, 224)

    def __init__(self) -> None:
        self.prepared: list[bool] = []

    def predict(self, images):
        from modbot.classify import prepared_input
        from modbot.domain import Prediction

        self.prepared += [prepared_input(img, self.input_size) is not None for img in images]
        probs = {"digital": 0.01, "painting": 0.01, "drawing": 0.01, "photography": 0.97}
        return [Prediction(probs, self.version) for _ in images]


def test_daemon_classifies_inputs_prepared_ahead_and_writes_results_in_one_commit(tmp_path):
    """With downloads ahead, the model input of every prefetched image was prepared on a
    decode thread (found through the learning loop's swappable classifier); a post's images,
    predictions and verdict are written in one transaction, committed before its action rows
    (dry-run claims here: the stub flags every oil painting)."""
    from modbot.learning.serving import SwappableClassifier

    images = {f"i{k}.jpg": jpeg(k, (900, 600)) for k in range(12)}
    posts = [image_post(f"s{i:03d}", f"i{i}.jpg") for i in range(12)]
    stub = InputSizeStub()
    with SandboxServer(posts, images, released=12, image_latency_s=0.02) as server:
        daemon = fast_daemon(server, tmp_path, classifier=SwappableClassifier(stub))
        statements: list[str] = []
        daemon.store.db.conn.set_trace_callback(statements.append)
        run_until(daemon, lambda: all_final(daemon, server))
        daemon.store.db.conn.set_trace_callback(None)
        assert {s for s, _ in statuses(daemon.store.db).values()} == {"done"}
        assert len(stub.prepared) == 12
        assert sum(stub.prepared) == daemon.prefetcher.hits >= 10  # prefetched = prepared
        # split the daemon's statements into transactions and see what each wrote
        txs, current = [], None
        for sql in statements:
            head = sql.lstrip().upper()
            if head.startswith("BEGIN"):
                current = set()
            elif head.startswith("COMMIT"):
                txs.append(current)
                current = None
            elif head.startswith("INSERT INTO") and current is not None:
                current.add(head.split()[2])
        results = [t for t in txs if "VERDICTS" in t]
        assert len(results) == 12
        assert all({"IMAGES", "PREDICTIONS"} <= t and "ACTIONS" not in t for t in results)
        assert not any({"IMAGES", "PREDICTIONS"} & t for t in txs if "VERDICTS" not in t)
        claims = [i for i, t in enumerate(txs) if "ACTIONS" in t]
        verdicts = [i for i, t in enumerate(txs) if "VERDICTS" in t]
        assert len(claims) == 24  # report and comment per post, each committed on its own
        assert all(verdicts[k] < claims[2 * k] for k in range(12))
        daemon.close()


def test_prepare_ahead_fingerprints_only_when_asked_and_reposts_are_on(tmp_path):
    """``Daemon.prepare_ahead`` (run on the decode threads) leaves the model input on the image
    and, with ``fingerprint_ahead`` (the default) and reposts on, the image's fingerprint — the
    same one the repost stage would compute."""
    from modbot.classify import prepared_input
    from modbot.fingerprint import fingerprint

    images = {"a.jpg": jpeg(6, (640, 480))}
    with SandboxServer([image_post("fff", "a.jpg")], images, released=1) as server:
        daemon = fast_daemon(server, tmp_path, classifier=InputSizeStub())
        image = daemon.pipeline.fetcher.fetch(ImageRef(f"{server.url}/i/a.jpg", "direct"))
        assert daemon.fingerprint_ahead is True
        daemon.fingerprint_ahead = False
        assert daemon.prepare_ahead(image).fingerprint is None  # not asked: the stage computes it
        assert prepared_input(image.rgb, (224, 224)) is not None
        daemon.fingerprint_ahead = True
        assert daemon.config.reposts.enabled
        ready = daemon.prepare_ahead(image)
        assert ready.fingerprint.to_blob() == fingerprint(image.rgb).to_blob()
        assert (ready.sha256, ready.rgb) == (image.sha256, image.rgb)
        daemon.config = daemon.config.replace(reposts={"enabled": False})
        assert daemon.prepare_ahead(image).fingerprint is None
        daemon.close()
