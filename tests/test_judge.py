"""The judge is a pure function: no server, no model."""

import pytest

from modbot.config import Config
from modbot.domain import Prediction, VerdictKind
from modbot.judge import combine, judge

LABELS = ("digital", "drawing", "painting", "photography", "sculpture")


def pred(fitted=None, **probs):
    full = {m: 0.0 for m in LABELS}
    full.update(probs)
    return Prediction(full, "test-v1", flag_thresholds=fitted or {})


def at(threshold):
    return lambda medium, model_thresholds: threshold


def test_flagged_only_when_the_stated_medium_is_improbable():
    assert judge("painting", [pred(painting=0.9, digital=0.1)], flag_below=at(0.05)).kind is VerdictKind.MATCH
    v = judge("digital", [pred(painting=0.97, digital=0.03)], flag_below=at(0.05))
    assert v.kind is VerdictKind.MISMATCH
    assert v.predicted == "painting" and v.confidence == pytest.approx(0.97)
    assert "3.0%" in v.reason
    # another medium ranks first, but the stated one stays plausible: quiet
    v = judge("digital", [pred(painting=0.7, digital=0.3)], flag_below=at(0.05))
    assert v.kind is VerdictKind.UNCERTAIN


def test_the_threshold_is_the_stated_mediums():
    thresholds = {"digital": 0.35}
    v = judge("digital", [pred(painting=0.7, digital=0.3)],
              flag_below=lambda m, fitted: thresholds.get(m, 0.05))
    assert v.kind is VerdictKind.MISMATCH
    v = judge("painting", [pred(painting=0.3, digital=0.7)],
              flag_below=lambda m, fitted: thresholds.get(m, 0.05))
    assert v.kind is VerdictKind.UNCERTAIN


def test_config_overrides_the_models_fitted_threshold_which_overrides_the_default():
    fitted = {"digital": 0.2}
    images = [pred(fitted, painting=0.85, digital=0.15)]
    judge_config = Config().judge
    assert judge_config.default_threshold < 0.15
    assert judge("digital", images, flag_below=judge_config.threshold_for).kind is VerdictKind.MISMATCH
    own = Config().replace(judge={"thresholds": {"digital": 0.1}}).judge
    assert judge("digital", images, flag_below=own.threshold_for).kind is VerdictKind.UNCERTAIN
    bare = [pred(painting=0.85, digital=0.15)]  # a model without fitted thresholds
    assert judge("digital", bare, flag_below=judge_config.threshold_for).kind is VerdictKind.UNCERTAIN


def test_not_judged_when_unknown_or_outside_labels_or_no_images():
    assert judge("unknown", [pred(painting=1.0)], flag_below=at(0.5)).kind is VerdictKind.NOT_JUDGED
    v = judge("ink", [pred(painting=1.0)], flag_below=at(0.5))
    assert v.kind is VerdictKind.NOT_JUDGED and "ink" in v.reason
    assert judge("painting", [], flag_below=at(0.5)).kind is VerdictKind.NOT_JUDGED


def test_gallery_uses_mean_probabilities():
    # two images lean painting, one is a confident photo of the canvas: the mean stays painting
    images = [pred(painting=0.8, photography=0.2), pred(painting=0.7, photography=0.3),
              pred(photography=0.95, painting=0.05)]
    probs = combine(images)
    assert probs["painting"] == pytest.approx((0.8 + 0.7 + 0.05) / 3)
    assert sum(probs.values()) == pytest.approx(1.0)
    v = judge("painting", images, flag_below=at(0.05))
    assert v.kind is VerdictKind.MATCH


def test_combine_refuses_mixed_label_sets():
    with pytest.raises(ValueError):
        combine([pred(painting=1.0), Prediction({"painting": 1.0}, "other")])
