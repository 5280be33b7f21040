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
