"""Classification report and calibration metrics (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from modbot.classify import apply_temperature
from modbot.ml.metrics import classification_report, expected_calibration_error, fit_temperature


def test_classification_report_matches_hand_computation() -> None:
    labels = ["digital", "painting", "drawing"]
    y_true = ["digital", "digital", "digital", "painting", "painting", "drawing"]
    y_pred = ["digital", "digital", "painting", "painting", "digital", "painting"]
    rep = classification_report(y_true, y_pred, labels)
    assert rep["confusion"]["matrix"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert rep["accuracy"] == pytest.approx(3 / 6)
    d, p, dr = (rep["per_class"][k] for k in labels)
    assert (d["precision"], d["recall"], d["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (p["precision"], p["recall"], p["f1"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2), pytest.approx(0.4))
    assert (dr["precision"], dr["recall"], dr["f1"]) == (0.0, 0.0, 0.0)
    assert rep["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.0) / 3)
    # A label that occurs nowhere is reported but left out of the macro average.
    rep4 = classification_report(y_true, y_pred, labels + ["ink"])
    assert rep4["macro_f1"] == pytest.approx(rep["macro_f1"]) and rep4["per_class"]["ink"]["support"] == 0
    with pytest.raises(ValueError):
        classification_report(["digital"], ["sculpture"], labels)
    empty = classification_report([], [], labels)
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["macro_f1"] is None


def logits_to_probs(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fit_temperature_recovers_a_known_temperature_and_lowers_ece() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(4000, 4))
    true_t = 2.5  # labels drawn from softmax(logits / 2.5): softmax(logits) is over-confident
    p_true = apply_temperature(logits_to_probs(logits), true_t)
    y = np.array([rng.choice(4, p=p) for p in p_true])
    overconfident = logits_to_probs(logits)
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(true_t, rel=0.1)
    assert expected_calibration_error(apply_temperature(overconfident, t), y) < \
        expected_calibration_error(overconfident, y) / 2
    assert fit_temperature(np.zeros((0, 4)), np.zeros((0,), dtype=int)) == 1.0


def test_expected_calibration_error_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins (15 equal): 0.9 → two images, accuracy 0.5, |0.5 − 0.9| · 2/4 = 0.2;
    # 0.6 → one, right, |1 − 0.6| · 1/4 = 0.1; 0.7 → one, right, |1 − 0.7| · 1/4 = 0.075
    assert expected_calibration_error(probs, y) == pytest.approx(0.375)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros((0,), dtype=int)) == 0.0


def test_metrics_import_no_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys, modbot.ml.metrics, modbot.ml.data; "
            "print('TF' if 'tensorflow' in sys.modules else 'NO_TF')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "NO_TF", proc.stderr[-2000:]


def test_fit_flag_thresholds_keep_false_flags_within_the_budget():
    import numpy as np

    from modbot.ml.metrics import fit_flag_thresholds

    rng = np.random.default_rng(0)
    labels = ("digital", "painting")
    y = np.array([0] * 200 + [1] * 200)
    p_true = np.concatenate([rng.uniform(0.3, 1.0, 200), rng.uniform(0.05, 1.0, 200)])
    probs = np.zeros((400, 2))
    probs[np.arange(400), y] = p_true
    probs[np.arange(400), 1 - y] = 1 - p_true
    fitted = fit_flag_thresholds(probs, y, labels, 0.02)
    for k, medium in enumerate(labels):
        own = probs[y == k, k]
        assert (own < fitted[medium]).mean() <= 0.02  # within the budget ...
        assert (own <= fitted[medium]).mean() > 0.0   # ... and not trivially zero
    assert fit_flag_thresholds(probs[:200], y[:200], labels, 0.02).keys() == {"digital"}


def test_flag_rates_count_false_flags_catches_and_uncertain_posts():
    from modbot.ml.evaluate import flag_rates

    labels = ("digital", "painting", "photography")
    probs = [[0.9, 0.08, 0.02],   # a clear digital image
             [0.5, 0.45, 0.05],   # torn between digital and painting; truly painting
             [0.01, 0.04, 0.95]]  # a clear photo, truly digital (the model is wrong)
    truth = ["digital", "painting", "digital"]
    rates = flag_rates(probs, truth, labels, lambda m, fitted: 0.03)
    c = rates["counts"]
    assert c == {"correct": 3, "false_flags": 1, "uncertain": 1, "misstated": 6, "caught": 1}
    assert rates["false_flag_rate"] == 1 / 3 and rates["catch_rate"] == 1 / 6
    assert rates["thresholds"] == {"digital": 0.03, "painting": 0.03, "photography": 0.03}
