"""The scheduled jobs: triggers, coalescing, crontab weekdays, and the child process: one that
dies is recorded as failed; a real one runs with no repository on its path
(:mod:`modbot.learning.scheduler`, :mod:`modbot.learning.child`)."""

from __future__ import annotations

import sys

import pytest
from support import SlowModel

from modbot.errors import ConfigError


def test_scheduler_jobs_coalesce_and_never_overlap(tmp_path):
    from modbot.config import Config
    from modbot.learning.scheduler import RetrainScheduler
    from modbot.learning.serving import SwappableClassifier

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


def scheduler_config(tmp_path):
    from modbot.config import Config

    return Config().replace(storage={"database": str(tmp_path / "m.db"),
                                     "image_cache": str(tmp_path / "cache")},
                            learning={"models_dir": str(tmp_path / "models"), "enabled": True})


def models_rows(config):
    from modbot.record import open_database

    db = open_database(config.storage.database)
    try:
        return list(db.query("SELECT * FROM models ORDER BY id"))
    finally:
        db.conn.close()


def test_a_child_process_that_dies_is_recorded_as_failed(tmp_path):
    from modbot.learning.scheduler import RetrainScheduler
    from modbot.learning.serving import SwappableClassifier

    config = scheduler_config(tmp_path)
    sched = RetrainScheduler(python="/bin/false")
    assert sched.run_retrain() is None                      # not started: nothing to run
    sched.start(SwappableClassifier(SlowModel("m0")), config)
    try:
        row = sched.run_retrain()
    finally:
        sched.shutdown()
    sched.shutdown()                                        # idempotent
    assert row["status"] == "failed" and "exited with status 1" in row["reason"]
    assert sched.last_result == row
    assert [(r["status"], r["finished_at"] is not None) for r in models_rows(config)] == [("failed", True)]
    assert not list((tmp_path / "models" / "logs").glob("*.config.json"))   # removed after the run


def test_config_travels_to_the_child_as_json():
    from modbot.config import Config
    from modbot.learning.child import config_from_json, config_to_json

    config = Config().replace(learning={"cron": "15 3 * * 1", "recall_floors": {"painting": 0.4},
                                        "trusted_media": ["drawing"]})
    assert config_from_json(config_to_json(config)) == config


@pytest.mark.slow
def test_the_child_process_runs_without_the_repository_on_its_path(tmp_path, monkeypatch):
    """The real child (``python -m modbot.learning.child``, TensorFlow loaded), started from
    another directory with no PYTHONPATH: it records its outcome itself (no labels: skipped)."""
    from modbot.learning.scheduler import RetrainScheduler
    from modbot.learning.serving import SwappableClassifier

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    config = scheduler_config(tmp_path)
    sched = RetrainScheduler(python=sys.executable)
    sched.start(SwappableClassifier(SlowModel("m0")), config)
    try:
        row = sched.run_retrain(trigger="test")
    finally:
        sched.shutdown()
    log_text = (tmp_path / "models" / "logs" / f"run-{row['id']}.log").read_text()
    assert row["status"] == "skipped", log_text
    assert "no training labels" in row["reason"] and row["trigger"] == "test"
