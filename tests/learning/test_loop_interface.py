"""What the daemon sees of the learning loop (:mod:`modbot.learning`): one object built by
``learning_loop``, with the classifier to serve and the jobs to start and stop."""

from __future__ import annotations

import dataclasses

import pytest
from support import SlowModel, StubClassifier, fake_model_dir

from modbot.errors import ConfigError, ModelError


def loop_config(tmp_path, **learning):
    from modbot.config import Config

    return Config().replace(storage={"database": str(tmp_path / "m.db")},
                            learning={"models_dir": str(tmp_path / "models"), **learning})


def test_learning_loop_wraps_the_classifier_and_starts_and_stops_its_jobs(tmp_path):
    from modbot.learning import LearningLoop, learning_loop
    from modbot.learning.serving import SwappableClassifier

    stub = StubClassifier("painting")
    loop: LearningLoop = learning_loop(loop_config(tmp_path, enabled=True), stub)
    assert isinstance(loop.classifier, SwappableClassifier) and loop.classifier.current is stub
    assert loop.classifier.predict([object()])[0].model_version == "stub-1"
    assert loop.classifier.version == "stub-1" and loop.classifier.labels == stub.labels
    loop.start()
    try:
        jobs = {job.id for job in loop.scheduler.scheduler.get_jobs()}
        assert jobs == {"retrain", "sync_champion"}
    finally:
        loop.shutdown(wait=True)
    assert not loop.scheduler.scheduler.running
    loop.shutdown()                                                 # idempotent
    loop.start()                                                    # the daemon runs again
    loop.shutdown(wait=False)
    # an already swappable classifier is served as it is (no wrapper around the wrapper)
    swappable = SwappableClassifier(SlowModel("m0"))
    assert learning_loop(loop_config(tmp_path), swappable).classifier is swappable


def test_learning_loop_checks_learning_before_loading_a_model(tmp_path):
    from modbot.learning import learning_loop
    from modbot.learning.registry import ModelRegistry

    config = loop_config(tmp_path)
    unchecked = dataclasses.replace(config, learning=dataclasses.replace(config.learning,
                                                                         eval_fraction=2.0))
    with pytest.raises(ConfigError, match="eval_fraction"):
        learning_loop(unchecked)                                     # no model loaded: ConfigError
    reg = ModelRegistry(tmp_path / "models")
    reg.add(fake_model_dir(tmp_path / "a", "v1"), "v1")
    reg.set_pointer("v1", event="promoted")
    (reg.path("v1") / "labels.json").write_text('{"labels": []}')   # broken after promotion
    with pytest.raises(ModelError, match="v1/labels.json"):          # the champion is what
        learning_loop(loop_config(tmp_path))                         # it tried to load
