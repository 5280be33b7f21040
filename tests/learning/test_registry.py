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
