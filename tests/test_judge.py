"""The judge is a pure function: no server, no model."""

import pytest

from modbot.domain import Prediction, VerdictKind
from modbot.judge import combine, judge

LABELS = ("digital", "drawing", "painting", "photography")


def pred(**probs):
    full = {m: 0.0 for m in LABELS}
    full.update(probs)
    return Prediction(full, "test-v1")


def at(threshold):
    return lambda medium: threshold


def test_match_mismatch_uncertain():
    assert judge("painting", [pred(painting=0.9, digital=0.1)], threshold_for=at(0.6)).kind is VerdictKind.MATCH
    v = judge("digital", [pred(painting=0.9, digital=0.1)], threshold_for=at(0.6))
    assert v.kind is VerdictKind.MISMATCH
    assert v.predicted == "painting" and v.confidence == pytest.approx(0.9)
    v = judge("digital", [pred(painting=0.55, digital=0.45)], threshold_for=at(0.6))
    assert v.kind is VerdictKind.UNCERTAIN


def test_threshold_is_per_predicted_medium():
    thresholds = {"painting": 0.95}
    v = judge("digital", [pred(painting=0.9, digital=0.1)],
              threshold_for=lambda m: thresholds.get(m, 0.5))
    assert v.kind is VerdictKind.UNCERTAIN


def test_not_judged_when_unknown_or_outside_labels_or_no_images():
    assert judge("unknown", [pred(painting=1.0)], threshold_for=at(0.5)).kind is VerdictKind.NOT_JUDGED
    v = judge("ink", [pred(painting=1.0)], threshold_for=at(0.5))
    assert v.kind is VerdictKind.NOT_JUDGED and "ink" in v.reason
    assert judge("painting", [], threshold_for=at(0.5)).kind is VerdictKind.NOT_JUDGED


def test_gallery_uses_mean_probabilities():
    # two images lean painting, one is a confident photo of the canvas: the mean stays painting
    images = [pred(painting=0.8, photography=0.2), pred(painting=0.7, photography=0.3),
              pred(photography=0.95, painting=0.05)]
    probs = combine(images)
    assert probs["painting"] == pytest.approx((0.8 + 0.7 + 0.05) / 3)
    assert sum(probs.values()) == pytest.approx(1.0)
    v = judge("painting", images, threshold_for=at(0.5))
    assert v.kind is VerdictKind.MATCH


def test_combine_refuses_mixed_label_sets():
    with pytest.raises(ValueError):
        combine([pred(painting=1.0), Prediction({"painting": 1.0}, "other")])
