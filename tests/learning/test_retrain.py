"""One retraining run: the promotion gates, and runs that fail or are skipped recorded,
never raised (:mod:`modbot.learning.retrain`)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from support import REPO

from modbot.record import open_database


def test_promotion_gates_margin_and_recall_floor():
    from modbot.config import LearningConfig
    from modbot.learning.retrain import decide
    from modbot.ml.metrics import classification_report

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
    # the champion never finds photography (recall 0): a challenger that finds some of it
    # (0.3, still under the floor) is not held to 0.5 there — but must not do worse than 0
    partial = classification_report(truth, ["digital"] * 10 + ["painting"] * 10
                                    + ["photography"] * 3 + ["painting"] * 7, labels)
    ok, why = decide(champion, partial, LearningConfig(margin=0.0, recall_floor=0.5))
    assert ok, why
    ok, why = decide(partial, champion, LearningConfig(margin=-1.0, recall_floor=0.5))
    assert not ok and "photography 0.000 < 0.30" in why


def test_failed_and_skipped_runs_are_recorded_never_raised(tmp_path):
    from modbot.config import Config
    from modbot.learning.retrain import retrain_once
    from modbot.record import open_database

    config = Config().replace(storage={"database": str(tmp_path / "m.db"),
                                       "image_cache": str(tmp_path / "cache")},
                              learning={"models_dir": str(tmp_path / "models"), "enabled": True})
    # no labels at all: skipped, with the reason
    skipped = retrain_once(config)
    assert skipped.status == "skipped" and "no training labels" in skipped.reason
    # a champion directory that does not exist: failed, recorded with the error
    broken = retrain_once(config.replace(storage={"model_dir": str(tmp_path / "nope")}))
    assert broken.status == "failed" and "ModelError" in broken.reason
    # a [learning] value that load_config/Config.replace would refuse: the run checks it too
    unchecked = dataclasses.replace(config, learning=dataclasses.replace(config.learning,
                                                                         eval_fraction=1.5))
    bad = retrain_once(unchecked)
    assert bad.status == "failed" and "eval_fraction" in bad.reason
    db = open_database(config.storage.database)
    rows = db.execute("SELECT id, status, finished_at IS NOT NULL FROM models ORDER BY id").fetchall()
    db.conn.close()
    assert [r[1] for r in rows] == ["skipped", "baseline", "failed", "failed"]
    assert all(r[2] for r in rows)                          # every run has an end


def test_a_run_waits_while_the_image_cache_is_being_pruned(tmp_path):
    """retrain_once reads the cache under a shared lock: while a pruning round holds it
    exclusively the run waits, and it ends once the round has (never reading a half-pruned
    cache); meanwhile a pruning round cannot start during the run (tests/cli/test_cache.py)."""
    import threading

    from modbot.config import Config
    from modbot.fsutil import file_lock
    from modbot.imagecache import CACHE_IN_USE_LOCK
    from modbot.learning.retrain import retrain_once

    config = Config().replace(storage={"database": str(tmp_path / "m.db"),
                                       "image_cache": str(tmp_path / "cache")},
                              learning={"models_dir": str(tmp_path / "models")})
    results = []
    with file_lock(tmp_path / "cache" / CACHE_IN_USE_LOCK) as pruning:  # as prune_image_cache
        assert pruning
        run = threading.Thread(target=lambda: results.append(retrain_once(config)))
        run.start()
        run.join(timeout=3.0)
        assert run.is_alive() and not results          # waiting for the pruning round
    run.join(timeout=120)
    assert len(results) == 1 and results[0].status == "skipped"


def test_a_run_left_running_by_a_dead_process_is_marked_failed(tmp_path):
    from modbot.config import Config
    from modbot.learning.retrain import retrain_once, start_run
    from modbot.record import open_database

    config = Config().replace(storage={"database": str(tmp_path / "m.db"),
                                       "image_cache": str(tmp_path / "cache")},
                              learning={"models_dir": str(tmp_path / "models")})
    db = open_database(config.storage.database)
    stale = start_run(db, trigger="schedule", now=1.0)         # its process died
    result = retrain_once(config)
    row = db["models"].get(stale)
    db.conn.close()
    assert result.status == "skipped" and result.run_id != stale
    assert row["status"] == "failed" and row["reason"].startswith("abandoned")


def test_learning_modules_do_not_import_tensorflow():
    code = ("import sys, modbot.cli.learning, modbot.learning, modbot.learning.retrain, modbot.learning.collect, "
            "modbot.learning.labels, modbot.learning.registry, modbot.learning.scheduler, "
            "modbot.learning.serving, modbot.learning.child; print(sorted(m for m in ('tensorflow', 'keras', 'praw', 'apscheduler') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_shipped_model_learns_from_stated_media_with_its_head_refitted(tmp_path, sandbox, shipped_classifier):
    """The real daemon judges the demo sample (praw → sandbox); one retraining run with the
    packaged [learning] defaults refits the shipped model's head on the stated media the judge
    did not flag, evaluates both models, and — when promoted — serves the challenger through
    its checked int8 LiteRT export, without TensorFlow in the daemon."""
    from support import make_daemon, run_until_recorded

    from modbot.classify import LiteRTClassifier, load_classifier
    from modbot.learning.registry import ModelRegistry
    from modbot.learning.retrain import retrain_once

    daemon = make_daemon(sandbox, tmp_path, shipped_classifier)
    run_until_recorded(daemon, sandbox)
    config = daemon.config.replace(learning={"min_train_labels": 10, "min_eval_labels": 5,
                                             "models_dir": str(tmp_path / "models")})
    daemon.close()
    result = retrain_once(config)
    assert result.recipe == "head" and result.status in ("promoted", "refused"), result.reason
    db = open_database(config.storage.database)
    row = db.execute("SELECT params, data_counts, n_train FROM models WHERE id = ?", [result.run_id]).fetchone()
    flagged = {r[0] for r in db.execute("SELECT submission FROM verdicts WHERE kind = 'mismatch'")}
    db.conn.close()
    assert json.loads(row[0])["recipe_used"] == "head"
    labels = json.loads(row[1])["labels"]
    assert set(labels["by_source"]) == {"stated"} and set(labels["by_detail"]) == {"stated:unflagged"}
    # the sample has mis-stated posts; the ones the judge flagged did not become labels
    assert flagged and json.loads(row[1])["dropped_candidates"].get("policy:stated", 0) >= 1
    assert row[2] >= 10
    if result.status == "promoted":
        served = load_classifier(ModelRegistry(config.learning.models_dir).path(result.version))
        assert isinstance(served, LiteRTClassifier) and served.version == result.version
