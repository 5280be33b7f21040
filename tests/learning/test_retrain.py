"""The learning loop: labels and their precedence, the fixed evaluation split, evicted images,
the model registry, the promotion gates, the live swap, the scheduler, and one end-to-end run:
a weak champion streams sandbox posts, moderators label them, the scheduled retraining trains
a challenger in a child process while the daemon keeps streaming, promotes it, the daemon
swaps it in live, a shuffled-label challenger is refused, and a rollback is served live."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from support import REPO, make_daemon, run_until_recorded
from modbot.domain import MEDIA, Prediction
from modbot.errors import ConfigError, InputError, ModelError

PACS_SAMPLE = REPO / "tests" / "data" / "pacs_sample"
LEARNING_PACS = REPO / "tests" / "data" / "learning_pacs"
TITLES = REPO / "tests" / "data" / "rart_titles_sample.jsonl"


# --- helpers ---------------------------------------------------------------------------------


def fresh_db(tmp_path):
    from modbot.record import open_database

    return open_database(tmp_path / "modbot.db")


def add_submission(db, fullname, stated, *, images, verdict=None, seen_at=100.0):
    """A processed submission with its images (sha256, url) and an optional verdict kind."""
    db["submissions"].insert({"fullname": fullname, "id": fullname[3:], "subreddit": "Art",
                              "status": "done", "attempts": 1, "stated_medium": stated,
                              "first_seen_at": seen_at, "updated_at": seen_at})
    for pos, (sha, url) in enumerate(images):
        db["images"].insert({"submission": fullname, "position": pos, "url": url, "status": "ok",
                             "sha256": sha, "path": f"/cache/{sha}.jpg"})
    if verdict:
        db["verdicts"].insert({"submission": fullname, "kind": verdict, "stated": stated,
                               "predicted": stated if verdict == "match" else "digital",
                               "confidence": 0.9, "created_at": seen_at})


def add_review(db, fullname, true_medium, *, at, decision="confirm"):
    db["reviews"].insert({"submission": fullname, "decision": decision, "true_medium": true_medium,
                          "moderator": "mod", "created_at": at})


def sha(n: int) -> str:
    return f"{n:064x}"


# --- labels ----------------------------------------------------------------------------------


def test_review_outranks_stated_and_policy_decides_the_rest(tmp_path):
    from modbot.learning.labels import LabelPolicy, gather_labels

    db = fresh_db(tmp_path)
    add_submission(db, "t3_a", "painting", images=[(sha(1), "u1")], verdict="mismatch")
    add_review(db, "t3_a", "photography", at=200.0)             # moderator: it is a photo
    add_submission(db, "t3_b", "drawing", images=[(sha(2), "u2")], verdict="match")
    add_submission(db, "t3_c", "digital", images=[(sha(3), "u3")], verdict="mismatch")
    add_submission(db, "t3_d", "drawing", images=[(sha(4), "u4")], verdict="uncertain")
    # the same image posted twice with different stated media: a conflict
    add_submission(db, "t3_e", "painting", images=[(sha(5), "u5")], verdict="match")
    add_submission(db, "t3_f", "digital", images=[(sha(5), "u5")], verdict="match")
    db["collect_runs"].insert({"id": 1, "subreddit": "Art", "listing": "new", "per_medium": 5,
                               "media": "[]", "status": "done", "started_at": 1.0})
    db["collected_posts"].insert({"fullname": "t3_g", "run_id": 1, "subreddit": "Art",
                                  "stated_medium": "ink", "stated_source": "title", "status": "ok",
                                  "sha256": sha(6), "image_url": "u6", "collected_at": 50.0})

    def labels(**policy):
        got = gather_labels(db, LabelPolicy(**policy), cutoff=1000.0)
        return {lb.sha256: (lb.medium, lb.source, lb.detail) for lb in got.labels}, got

    agreed, got = labels(stated="agreed")
    assert agreed == {sha(1): ("photography", "review", "confirm"),   # review beats stated
                      sha(2): ("drawing", "stated", "agreed"),        # model agreed
                      sha(6): ("ink", "collected", "collected")}
    assert got.dropped["conflicting_statements"] == 1
    assert got.dropped["policy:stated"] == 2                          # t3_c, t3_d
    assert got.by_source() == {"review": 1, "stated": 1, "collected": 1}

    trusted, _ = labels(stated="none", trusted_media=("drawing",), collected=False)
    assert trusted == {sha(1): ("photography", "review", "confirm"),
                       sha(2): ("drawing", "stated", "trusted"),
                       sha(4): ("drawing", "stated", "trusted")}       # trusted whatever the verdict
    everything, _ = labels(stated="all")
    assert everything[sha(3)] == ("digital", "stated", "all")

    # the cut-off: a later review is not used; the latest review before it is
    add_review(db, "t3_a", "digital", at=2000.0)
    assert gather_labels(db, LabelPolicy(), cutoff=1000.0).labels[0].medium == "photography"
    assert gather_labels(db, LabelPolicy(), cutoff=3000.0).labels[0].medium == "digital"
    early = gather_labels(db, LabelPolicy(stated="all"), cutoff=150.0)
    assert sha(1) in {lb.sha256 for lb in early.labels if lb.source == "stated"}

    with pytest.raises(ConfigError):
        LabelPolicy(stated="sometimes")
    with pytest.raises(ConfigError):
        LabelPolicy(trusted_media=("oil",))


def test_evaluation_split_is_fixed_and_stratified(tmp_path):
    from modbot.learning.labels import Label, assign_splits

    db = fresh_db(tmp_path)

    def label(n, medium):
        return Label(sha(n), medium, "review", "confirm", f"t3_{n}", None, None, 1.0)

    first = [label(i, "painting") for i in range(20)] + [label(100 + i, "drawing") for i in range(8)]
    sides = assign_splits(db, first, 0.25, now=1.0)
    assert sum(s == "eval" for k, s in sides.items() if int(k, 16) < 100) == 5     # round(0.25·20)
    assert sum(s == "eval" for k, s in sides.items() if int(k, 16) >= 100) == 2    # round(0.25·8)

    # more labels later: old images keep their side, new ones top each medium up to 25 %
    relabelled = [label(i, "digital") if i == 0 else label(i, "painting") for i in range(20)]
    more = relabelled + [label(100 + i, "drawing") for i in range(8)] + \
        [label(200 + i, "photography") for i in range(12)] + [label(20 + i, "painting") for i in range(20)]
    again = assign_splits(db, more, 0.25, now=2.0)
    assert all(again[k] == v for k, v in sides.items())
    photo = [again[sha(200 + i)] for i in range(12)]
    assert photo.count("eval") == 3
    painting_eval = sum(again[lb.sha256] == "eval" for lb in more if lb.medium == "painting")
    assert painting_eval == round(0.25 * 39)               # 4 kept + 6 new of the 39 paintings
    assert again[sha(0)] == "eval"                          # relabelled, but stays held out
    rows = db.execute("SELECT COUNT(*) FROM label_splits").fetchone()[0]
    assert rows == len({lb.sha256 for lb in more})
    with pytest.raises(ValueError):
        assign_splits(db, more, 1.0)


def test_evicted_images_are_downloaded_again_or_skipped_with_a_reason(tmp_path):
    from modbot.imagecache import find_cached
    from modbot.images import ImageFetcher
    from modbot.learning.labels import Label, locate_images
    from modbot.sandbox.server import SandboxServer

    original = (PACS_SAMPLE / "painting" / "giraffe_pic_003.jpg").read_bytes()
    other = (PACS_SAMPLE / "digital" / "giraffe_pic_003.jpg").read_bytes()
    cache = tmp_path / "cache"
    with SandboxServer([], {"a.jpg": original, "b.jpg": other}) as server:
        with ImageFetcher(cache, allow_hosts=["127.0.0.1"]) as fetcher:
            from modbot.domain import ImageRef

            got = fetcher.fetch(ImageRef(f"{server.url}/i/a.jpg", "direct"))
            digest = got.sha256

            def label(url):
                return Label(digest, "painting", "review", "confirm", "t3_x", got.path, url, 1.0)

            assert locate_images([label(None)], cache)[0].path == Path(got.path)   # cached
            Path(got.path).unlink()                                                 # evicted
            assert locate_images([label(None)], cache)[0].reason == "evicted"
            assert locate_images([label(f"{server.url}/i/a.jpg")], cache)[0].reason == "evicted"
            back = locate_images([label(f"{server.url}/i/a.jpg")], cache, fetcher=fetcher)[0]
            assert back.reason is None and back.path.read_bytes() == original
            assert find_cached(cache, digest) == back.path

            back.path.unlink()
            gone = locate_images([label(f"{server.url}/i/missing.jpg")], cache, fetcher=fetcher)[0]
            assert gone.path is None and gone.reason == "evicted_refetch_failed:http_status"
            changed = locate_images([label(f"{server.url}/i/b.jpg")], cache, fetcher=fetcher)[0]
            assert changed.path is None and changed.reason == "evicted_changed"


# --- registry --------------------------------------------------------------------------------


def fake_model_dir(path: Path, version: str, labels=("digital", "painting")) -> Path:
    path.mkdir(parents=True)
    (path / "labels.json").write_text(json.dumps({"labels": list(labels), "version": version,
                                                  "input_size": [32, 32]}))
    (path / "model.keras").write_bytes(b"not used here")
    return path


def test_registry_pointer_is_atomic_and_rollback_restores(tmp_path):
    from modbot.learning.registry import ModelRegistry, rollback, set_champion

    db = fresh_db(tmp_path)
    reg = ModelRegistry(tmp_path / "models")
    assert reg.champion() is None and reg.versions() == []
    reg.add(fake_model_dir(tmp_path / "a", "v1"), "v1")
    reg.add(fake_model_dir(reg.work_dir("t") / "m", "v2"), "v2", move=True)
    assert reg.versions() == ["v1", "v2"]
    with pytest.raises(InputError):
        reg.add(tmp_path / "a", "v1")                   # versions are never overwritten
    with pytest.raises(InputError):
        reg.path("../escape")
    set_champion(reg, "v1", event="promoted", db=db, run_id=1)

    # readers see the old or the new pointer, never a torn file, while it flips 300 times
    errors, seen = [], set()
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                seen.add(reg.champion())
            except Exception as exc:  # noqa: BLE001 - any failure is the bug we look for
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(300):
        reg.set_pointer("v2" if i % 2 == 0 else "v1", event="promoted")
    done.set()
    t.join()
    assert errors == [] and seen == {"v1", "v2"}
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".CHAMPION")]  # no temp files

    rollback(reg, "v2", db=db, by="alice", note="test")
    assert reg.champion() == "v2" and reg.pointer()["event"] == "rollback"
    with pytest.raises(InputError):
        rollback(reg, "v9", db=db)
    assert reg.champion() == "v2"
    events = db.execute("SELECT version, event, by FROM champion_history ORDER BY id").fetchall()
    assert events == [("v1", "promoted", None), ("v2", "rollback", "alice")]


# --- gates -----------------------------------------------------------------------------------


def test_promotion_gates_margin_and_recall_floor():
    from modbot.config import LearningConfig
    from modbot.learning.retrain import decide
    from modbot.ml.training import classification_report

    labels = ["digital", "painting", "photography"]
    truth = ["digital"] * 10 + ["painting"] * 10 + ["photography"] * 10
    champion = classification_report(truth, ["digital"] * 10 + ["painting"] * 10 + ["painting"] * 10, labels)
    better = classification_report(truth, ["digital"] * 10 + ["painting"] * 9 + ["photography"]
                                   + ["photography"] * 7 + ["painting"] * 3, labels)
    lopsided = classification_report(truth, ["digital"] * 10 + ["painting"] * 4 + ["photography"] * 6
                                     + ["photography"] * 10, labels)
    assert better["macro_f1"] > champion["macro_f1"] + 0.2

    ok, why = decide(champion, better, LearningConfig(margin=0.05, recall_floor=0.5))
    assert ok and "macro-F1" in why
    ok, why = decide(champion, better, LearningConfig(margin=0.5))
    assert not ok and "margin" in why
    ok, why = decide(champion, champion, LearningConfig(margin=0.0, recall_floor=0.0))
    assert not ok                                           # a tie keeps the champion
    # macro-F1 improves, but painting recall 0.4 is below its floor
    assert lopsided["macro_f1"] > champion["macro_f1"]
    ok, why = decide(champion, lopsided, LearningConfig(margin=0.0, recall_floor=0.5))
    assert not ok and "painting 0.400 < 0.50" in why
    ok, _ = decide(champion, lopsided, LearningConfig(margin=0.0, recall_floor=0.5,
                                                      recall_floors={"painting": 0.3}))
    assert ok


# --- live swap -------------------------------------------------------------------------------


class SlowModel:
    """A real (if trivial) classifier: constant probabilities, slow enough to overlap swaps."""

    def __init__(self, version, labels=("digital", "painting"), delay=0.002, broken=False):
        self.version, self.labels, self.delay, self.broken = version, labels, delay, broken

    def predict(self, images):
        out = []
        for _ in images:
            time.sleep(self.delay)
            probs = {m: 1.0 / len(self.labels) for m in self.labels}
            if self.broken:
                probs = {m: 0.9 for m in self.labels}
            out.append(Prediction(probabilities=probs, model_version=self.version))
        return out


def test_swappable_classifier_classifies_each_call_with_one_model():
    from modbot.learning.retrain import SwappableClassifier

    swappable = SwappableClassifier(SlowModel("m0"))
    mixed, wrong_version, calls = [], [], []
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            preds = swappable.predict([object()] * 5)
            versions = {p.model_version for p in preds}
            calls.append(versions)
            if len(versions) != 1:
                mixed.append(versions)
            if swappable.version not in versions:       # what the daemon records afterwards
                wrong_version.append((swappable.version, versions))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(1, 40):
        swappable.swap(SlowModel(f"m{i}", labels=("digital", "painting", "photography")[: 2 + i % 2]))
        time.sleep(0.003)
    stop.set()
    for t in threads:
        t.join()
    assert swappable.swaps == 39 and swappable.current.version == "m39"
    assert len(calls) > 20 and len({v for c in calls for v in c}) > 3   # swaps did overlap calls
    assert mixed == [] and wrong_version == []

    with pytest.raises(ModelError):
        swappable.swap(SlowModel("bad", broken=True))       # fails its warm-up
    assert swappable.current.version == "m39"


def test_scheduler_jobs_coalesce_and_never_overlap(tmp_path):
    from modbot.config import Config
    from modbot.learning.retrain import RetrainScheduler, SwappableClassifier

    config = Config().replace(storage={"database": str(tmp_path / "m.db")},
                              learning={"models_dir": str(tmp_path / "models"), "cron": "15 3 * * 1",
                                        "misfire_grace_s": 600.0, "enabled": True})
    sched = RetrainScheduler()
    sched.start(SwappableClassifier(SlowModel("m0")), config)
    try:
        job = sched.scheduler.get_job("retrain")
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 600
        assert job.next_run_time.weekday() == 0              # crontab 1 = Monday (not APScheduler's)
        assert (job.next_run_time.hour, job.next_run_time.minute) == (3, 15)
        sync = sched.scheduler.get_job("sync_champion")
        # two instances may start (so APScheduler never warns while a slow swap runs); only one
        # works, the other returns at once on RetrainScheduler._sync_lock
        assert sync.max_instances == 2 and sync.coalesce is True
        assert sched.sync_champion() is False               # no champion in the registry yet
    finally:
        sched.shutdown()
    sched = RetrainScheduler()
    sched.start(SwappableClassifier(SlowModel("m0")), config.replace(learning={"interval_s": 90.0}))
    assert "interval[0:01:30]" in str(sched.scheduler.get_job("retrain").trigger)
    sched.shutdown()
    # retraining switched off: only the champion watcher runs (rollbacks are still served live)
    sched = RetrainScheduler()
    sched.start(SwappableClassifier(SlowModel("m0")), config.replace(learning={"enabled": False}))
    assert sched.scheduler.get_job("retrain") is None and sched.scheduler.get_job("sync_champion")
    sched.shutdown()
    with pytest.raises(ConfigError):
        RetrainScheduler().start(SwappableClassifier(SlowModel("m0")),
                                 config.replace(learning={"cron": "not a cron line"}))
    with pytest.raises(TypeError):
        RetrainScheduler().start(SlowModel("m0"), config)


def test_failed_and_skipped_runs_are_recorded_never_raised(tmp_path):
    from modbot.config import Config
    from modbot.record import open_database
    from modbot.learning.retrain import RetrainScheduler, SwappableClassifier, retrain_once

    config = Config().replace(storage={"database": str(tmp_path / "m.db"),
                                       "image_cache": str(tmp_path / "cache")},
                              learning={"models_dir": str(tmp_path / "models"), "enabled": True})
    # no labels at all: skipped, with the reason
    skipped = retrain_once(config)
    assert skipped.status == "skipped" and "no training labels" in skipped.reason
    # a champion directory that does not exist: failed, recorded with the error
    broken = retrain_once(config.replace(storage={"model_dir": str(tmp_path / "nope")}))
    assert broken.status == "failed" and "ModelError" in broken.reason
    bad = retrain_once(config.replace(learning={"eval_fraction": 1.5}))
    assert bad.status == "failed" and "eval_fraction" in bad.reason
    # the scheduled job: a child process that dies is recorded as failed by the parent
    sched = RetrainScheduler(python="/bin/false")
    sched.start(SwappableClassifier(SlowModel("m0")), config)
    try:
        row = sched.run_retrain()
    finally:
        sched.shutdown()
    assert row["status"] == "failed" and "exited with status 1" in row["reason"]
    db = open_database(config.storage.database)
    rows = db.execute("SELECT id, status, finished_at IS NOT NULL FROM models ORDER BY id").fetchall()
    db.conn.close()
    assert [r[1] for r in rows] == ["skipped", "baseline", "failed", "failed", "failed"]
    assert all(r[2] for r in rows)                          # every run has an end


def test_crontab_weekday_numbers_follow_crontab():
    from modbot.learning.retrain import crontab_day_names

    assert crontab_day_names("0") == "sun" and crontab_day_names("7") == "sun"
    assert crontab_day_names("1-5") == "mon,tue,wed,thu,fri"
    assert crontab_day_names("*/2") == "sun,tue,thu,sat"
    assert crontab_day_names("0,6") == "sun,sat"
    assert crontab_day_names("mon-fri") == "mon-fri" and crontab_day_names("*") == "*"
    with pytest.raises(ValueError):
        crontab_day_names("3-1")


def test_learning_modules_do_not_import_tensorflow():
    code = ("import sys, modbot.cli.learning, modbot.learning.retrain, modbot.learning.collect, modbot.learning.labels, "
            "modbot.learning.registry; print(sorted(m for m in ('tensorflow', 'keras', 'praw', 'apscheduler') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"


# --- end to end ------------------------------------------------------------------------------


def image_post(pid: str, title: str, image: str, *, medium: str, flair: str | None = None) -> dict:
    """A minimal i.redd.it-style image submission for the sandbox (see ``modbot.sandbox``)."""
    return {"id": pid, "name": f"t3_{pid}", "title": title, "author": f"sandbox_artist_{pid[-2:]}",
            "subreddit": "Art", "url": "{base}/i/" + image, "url_overridden_by_dest": "{base}/i/" + image,
            "domain": "i.redd.it", "post_hint": "image", "is_self": False, "link_flair_text": flair,
            "_sandbox_truth": {"kind": "image", "medium": medium, "stated": medium}}


def titles_by_medium(sample_posts) -> dict[str, list[str]]:
    """Real r/Art titles (tests/data/rart_titles_sample.jsonl) by stated medium; photography
    titles come from the demo sample (r/Art 2020 has almost none)."""
    from modbot.medium import stated_medium

    out: dict[str, list[str]] = {}
    for line in TITLES.read_text(encoding="utf-8").splitlines():
        title = json.loads(line)["title"]
        out.setdefault(stated_medium(title).medium, []).append(title)
    for p in sample_posts:
        if p["_sandbox_truth"].get("stated") == "photography" and not p.get("link_flair_text"):
            out.setdefault("photography", []).append(p["title"])
    return out


def labelled_posts(sample_posts) -> tuple[list[dict], dict[str, bytes]]:
    """Sandbox posts for the 32 images of tests/data/learning_pacs, with real r/Art titles
    stating their medium."""
    from modbot.medium import stated_medium

    titles = titles_by_medium(sample_posts)
    posts, images = [], {}
    for medium in ("digital", "painting", "drawing", "photography"):
        for k, f in enumerate(sorted((LEARNING_PACS / medium).iterdir())):
            title = titles[medium][k % len(titles[medium])]
            assert stated_medium(title).medium == medium
            images[f"lp_{medium}_{f.name}"] = f.read_bytes()
            posts.append(image_post(f"lp{medium[:3]}{k}", title, f"lp_{medium}_{f.name}", medium=medium))
    return posts, images


@pytest.fixture(scope="module")
def weak_model(tmp_path_factory):
    """A deliberately weak champion: 9 images, 32 px, one epoch, and no photography class."""
    from modbot.learning.retrain import _trainer_kwargs as trainer_kwargs
    from modbot.ml.training import train_model

    root = tmp_path_factory.mktemp("weak")
    for medium in ("digital", "painting", "drawing"):
        (root / "tree" / medium).mkdir(parents=True)
        for f in (PACS_SAMPLE / medium).iterdir():
            (root / "tree" / medium / f.name).symlink_to(f)
    train_model(root / "tree", root / "model", **trainer_kwargs(
        train_model, {"arch": "cnn", "image_size": 32, "epochs": 1, "batch_size": 4, "seed": 0,
                      "version": "weak-no-photo", "verbose": 0, "export": False}))
    return root / "model"


def review_everything(db, truth: dict[str, str]) -> int:
    """Moderators record the true medium of every judged post (dismiss when it was stated)."""
    from modbot.cli.review import record_review

    n = 0
    for fullname, stated in db.execute("SELECT submission, stated FROM verdicts").fetchall():
        medium = truth.get(fullname)
        if medium not in MEDIA:
            continue
        if medium == stated:
            record_review(db, fullname, "dismiss", moderator="mod_a")
        else:
            record_review(db, fullname, "confirm", true_medium=medium, moderator="mod_a")
        n += 1
    return n


def test_scheduled_retraining_promotes_swaps_live_and_refuses_a_worse_model(tmp_path, sample, weak_model):
    from modbot.classify import KerasClassifier
    from modbot.cli import main
    from modbot.cli.learning import COMMANDS
    from modbot.learning.registry import ModelRegistry
    from modbot.learning.retrain import RetrainScheduler, SwappableClassifier, retrain_once
    from modbot.sandbox.sample import truth_by_fullname
    from modbot.sandbox.server import SandboxServer

    posts, images = sample
    extra, extra_images = labelled_posts(posts)
    pacs_posts = [p for p in posts if p["_sandbox_truth"]["kind"] == "image"
                  and "pacs" in p["url"] and not p["_sandbox_truth"]["wrong_stated"]]
    live = [image_post(f"lv{i:04d}", pacs_posts[i % len(pacs_posts)]["title"],
                       pacs_posts[i % len(pacs_posts)]["url"].rsplit("/", 1)[1],
                       medium=pacs_posts[i % len(pacs_posts)]["_sandbox_truth"]["medium"])
            for i in range(300)]
    truth = {k: v["medium"] for k, v in truth_by_fullname(posts + extra).items()}
    learning = {"enabled": True, "models_dir": str(tmp_path / "models"), "eval_fraction": 0.3, "min_train_labels": 10,
                "min_eval_labels": 5, "new_medium_min_labels": 5, "margin": 0.0, "recall_floor": 0.0,
                "stated_labels": "none", "arch": "lite0", "image_size": 96, "epochs": 2, "batch_size": 8,
                "interval_s": 3600.0, "watch_interval_s": 0.5, "nice": 5, "timeout_s": 300.0}

    with SandboxServer(posts + extra + live, {**images, **extra_images},
                       released=len(posts) + len(extra)) as server:
        swappable = SwappableClassifier(KerasClassifier.load(weak_model))
        daemon = make_daemon(server, tmp_path, swappable, learning=learning,
                             storage={"model_dir": str(weak_model)})
        run_until_recorded(daemon, server)
        db = daemon.store.db
        assert review_everything(db, truth) >= 65

        # the scheduled job fires now; posts keep arriving while the challenger trains
        scheduler = RetrainScheduler()
        scheduler.start(daemon, daemon.config, first_run_at=datetime.now(timezone.utc))
        stop = threading.Event()
        after_swap = []

        def releaser():
            while not stop.is_set() and server.pending:
                if scheduler.last_result is not None and swappable.swaps:
                    after_swap.append(server.release(1))
                    if len(after_swap) >= 5:
                        return
                else:
                    server.release(1)
                stop.wait(0.25)

        feeder = threading.Thread(target=releaser)
        feeder.start()
        deadline = time.monotonic() + 240

        def until():
            assert time.monotonic() < deadline, "retraining did not finish in time"
            row = scheduler.last_result
            if row is None or row["status"] != "promoted":
                return row is not None
            return db.execute("SELECT COUNT(*) FROM predictions WHERE model_version = ?",
                              [row["version"]]).fetchone()[0] > 0

        try:
            daemon.run(stop=threading.Event(), until=until)
        finally:
            stop.set()
            feeder.join()
        row = scheduler.last_result
        assert row["status"] == "promoted", row
        counts = json.loads(row["data_counts"])
        assert counts["labels"]["by_source"] == {"review": counts["labels"]["total"]}
        assert "photography" in json.loads(row["labels"])           # the new medium was added
        assert counts["excluded_media"] == {"sculpture": 1}         # 1 label < 5
        assert row["challenger_macro_f1"] > row["champion_macro_f1"]
        champion_rep = json.loads(row["champion_metrics"])
        assert champion_rep["per_class"]["photography"]["recall"] == 0.0
        assert set(json.loads(row["challenger_metrics"])["per_class"]) == set(champion_rep["per_class"])
        # the daemon kept streaming while the challenger trained
        during = db.execute("SELECT COUNT(*) FROM submissions WHERE updated_at BETWEEN ? AND ?",
                            [row["train_started_at"], row["train_finished_at"]]).fetchone()[0]
        assert during >= 1
        # swapped live: the daemon serves the promoted model and records its version
        assert swappable.current.version == row["version"]
        assert ModelRegistry(learning["models_dir"]).champion() == row["version"]
        versions = {v for (v,) in db.execute("SELECT DISTINCT model_version FROM predictions")}
        assert versions == {"weak-no-photo", row["version"]}
        for fullname, version in db.execute("SELECT submission, model_version FROM verdicts"):
            preds = {v for (v,) in db.execute(
                "SELECT model_version FROM predictions WHERE submission = ?", [fullname])}
            assert preds == {version}                                # one model per post

        # a deliberately worse challenger (shuffled labels) is refused; the champion stays
        # (a tiny CNN, to keep the test short: the gates judge it like any challenger)
        worse = retrain_once(daemon.config.replace(learning={"arch": "cnn", "image_size": 32,
                                                             "epochs": 1}),
                             trigger="test", shuffle_labels=True)
        assert worse.status == "refused", worse
        assert worse.challenger_macro_f1 < worse.champion_macro_f1
        assert worse.champion_version == row["version"]
        assert ModelRegistry(learning["models_dir"]).champion() == row["version"]

        # modbot models lists every run; rollback restores the baseline, served live
        for command in COMMANDS:
            if command.name not in main.commands:
                main.add_command(command)
        cfg = tmp_path / "modbot.toml"
        cfg.write_text(f'[storage]\ndatabase = "{daemon.config.storage.database}"\n'
                       f'[learning]\nmodels_dir = "{learning["models_dir"]}"\n')
        runner = CliRunner()
        listed = runner.invoke(main, ["--config", str(cfg), "models", "--json"])
        assert listed.exit_code == 0, listed.output
        doc = json.loads(listed.stdout)
        assert doc["champion"] == row["version"]
        assert {r["version"]: r["status"] for r in doc["runs"]} == {
            worse.version: "refused", row["version"]: "promoted", "weak-no-photo": "baseline"}
        assert set(doc["versions"]) == {"weak-no-photo", row["version"]}
        table = runner.invoke(main, ["--config", str(cfg), "models"], env={"COLUMNS": "250"})
        assert row["version"] + " *" in table.stdout
        back = runner.invoke(main, ["--config", str(cfg), "models", "rollback", "weak-no-photo",
                                    "--note", "test"])
        assert back.exit_code == 0, back.output
        assert scheduler.sync_champion() is True
        assert swappable.current.version == "weak-no-photo"
        assert runner.invoke(main, ["--config", str(cfg), "models", "rollback", "nope"]).exit_code == 1
        scheduler.shutdown()
        daemon.close()
