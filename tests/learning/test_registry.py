"""The model registry: versions, the atomic champion pointer, rollback
(:mod:`modbot.learning.registry`)."""

from __future__ import annotations

import threading

import pytest
from support import fake_model_dir, fresh_db

from modbot.errors import InputError, ModelError


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


def test_the_daemon_serves_the_champion_else_the_configured_model(tmp_path):
    from modbot.config import Config
    from modbot.learning import serving_model_dir
    from modbot.learning.registry import ModelRegistry

    config = Config().replace(learning={"models_dir": str(tmp_path / "models")})
    assert serving_model_dir(config) is None                               # the shipped model
    configured = config.replace(storage={"model_dir": str(tmp_path / "mine")})
    assert serving_model_dir(configured) == str(tmp_path / "mine")
    reg = ModelRegistry(tmp_path / "models")
    reg.add(fake_model_dir(tmp_path / "a", "v1"), "v1")
    reg.set_pointer("v1", event="promoted")
    assert serving_model_dir(configured) == str(reg.path("v1"))            # the champion wins
    (reg.path("v1") / "labels.json").unlink()                              # pointer to a gone version
    with pytest.raises(ModelError):
        serving_model_dir(configured)


def _aged_registry(tmp_path, names):
    """A registry holding ``names`` added one minute apart, in that order."""
    import os
    import time

    from modbot.learning.registry import ModelRegistry

    reg = ModelRegistry(tmp_path / "models")
    t0 = time.time() - 3600
    for k, name in enumerate(names):
        reg.add(fake_model_dir(tmp_path / "src" / name, name), name)
        os.utime(reg.path(name), (t0 + 60 * k, t0 + 60 * k))
    return reg


def test_prune_keeps_the_newest_the_champion_its_predecessor_and_the_baseline(tmp_path):
    from modbot.learning.registry import RegistryPruneReport, baseline_versions, set_champion
    from modbot.learning.retrain import prune_versions

    db = fresh_db(tmp_path)
    # names deliberately out of name order: age decides, not the name
    reg = _aged_registry(tmp_path, ["pacs-base", "v9-a", "v10-b", "v11-c", "v12-d", "v13-e", "v14-f"])
    db["models"].insert({"version": "pacs-base", "status": "baseline", "trigger": "adopted",
                         "started_at": 0.0})
    set_champion(reg, "v10-b", event="promoted", db=db)
    set_champion(reg, "v11-c", event="rollback", db=db)   # previous = v10-b
    assert baseline_versions(db) == {"pacs-base"}

    dry = reg.prune(2, protect=baseline_versions(db), dry_run=True)
    assert isinstance(dry, RegistryPruneReport) and dry.dry_run
    assert dry.removed == ["v9-a", "v12-d"] and dry.bytes_freed > 0
    assert len(reg.versions()) == 7                      # a dry run changes nothing

    prune_versions(reg, db, 2)                           # what a promotion runs
    assert reg.versions() == sorted(["pacs-base", "v10-b", "v11-c", "v13-e", "v14-f"])
    assert reg.champion() == "v11-c" and reg.champion_dir() == reg.path("v11-c")
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp-")]
    again = reg.prune(2, protect=baseline_versions(db))
    assert again.removed == [] and again.bytes_freed == 0

    prune_versions(reg, db, 0)                           # 0 = keep every version
    assert len(reg.versions()) == 5
    with pytest.raises(InputError):
        reg.prune(0)


def test_an_interrupted_prune_leaves_no_half_version_and_is_finished_next_time(tmp_path):
    import os

    reg = _aged_registry(tmp_path, ["v1", "v2", "v3"])
    # a prune killed between the rename and the delete leaves a hidden folder, never a half
    # version that `versions()` or a rollback could pick up
    os.rename(reg.path("v1"), reg.root / ".tmp-pruned-v1")
    assert reg.versions() == ["v2", "v3"]
    reg.prune(5)
    assert sorted(p.name for p in reg.root.iterdir()) == ["v2", "v3"]


def test_models_prune_command_dry_run_json_and_refusals(tmp_path):
    import json

    from click.testing import CliRunner

    from modbot.cli import main
    from modbot.fsutil import file_lock
    from modbot.learning.registry import set_champion
    from modbot.learning.retrain import RETRAIN_LOCK

    db = fresh_db(tmp_path)
    reg = _aged_registry(tmp_path, ["v1", "v2", "v3", "v4"])
    set_champion(reg, "v4", event="promoted", db=db)
    db.conn.close()
    config = tmp_path / "modbot.toml"
    config.write_text(f'[storage]\ndatabase = "{tmp_path / "modbot.db"}"\n'
                      f'[learning]\nmodels_dir = "{reg.root}"\nkeep_versions = 1\n', encoding="utf-8")

    def run(*args):
        return CliRunner().invoke(main, ["--config", str(config), "models", "prune", *args],
                                  catch_exceptions=False)

    res = run("--dry-run", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["removed"] == ["v1", "v2"] and len(reg.versions()) == 4
    with file_lock(reg.root / RETRAIN_LOCK):              # a retraining run holds the registry
        res = run()
    assert res.exit_code == 1 and "retraining run" in res.output and len(reg.versions()) == 4
    res = run("--keep", "2")
    assert res.exit_code == 0 and "deleted 1 version" in res.output
    assert reg.versions() == ["v2", "v3", "v4"]
    res = run()                                          # [learning] keep_versions = 1
    assert res.exit_code == 0 and reg.versions() == ["v3", "v4"]   # the champion + the newest other


def test_a_copied_version_counts_as_added_when_it_was_copied(tmp_path):
    import os
    import time

    from modbot.learning.registry import ModelRegistry

    src = fake_model_dir(tmp_path / "old-model", "old")
    os.utime(src, (1_000_000_000, 1_000_000_000))        # a model folder made in 2001
    reg = ModelRegistry(tmp_path / "models")
    before = time.time() - 1
    reg.add(src, "old")
    assert reg.added_at("old") >= before                  # not the source's 2001 time
