"""Classification and calibration metrics, numpy only (no TensorFlow).

Used by :mod:`modbot.ml.training` (epoch choice, held-out figures), ``modbot evaluate``, the
learning loop's champion/challenger comparison and ``bench/compare_architectures.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from modbot.classify import apply_temperature

#: Confidence bins of :func:`expected_calibration_error` (15, as in Guo et al. 2017).
ECE_BINS = 15


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    ``y_true`` and ``y_pred`` are equally long sequences of label names; ``labels`` fixes the
    order of ``per_class`` and of the confusion matrix rows (true) and columns (predicted).
    A label's precision (recall) is 0.0 when it was never predicted (never true), as with
    scikit-learn's ``zero_division=0``; F1 is 0.0 when precision + recall is 0.
    ``macro_f1`` is the unweighted mean F1 over labels that occur in ``y_true`` or ``y_pred``
    (a label absent from both has no meaningful F1 and is left out of the mean).

    Returns ``{"n", "accuracy", "macro_f1", "per_class": {label: {"precision", "recall",
    "f1", "support"}}, "confusion": {"labels": [...], "matrix": [[int]]}}``; floats are
    Python floats (``accuracy``/``macro_f1`` are ``None`` when ``n`` is 0).
    Raises ``ValueError`` on length mismatch or a value not in ``labels``.
    """
    labels = list(labels)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items, y_pred {len(y_pred)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"repeated labels: {labels}")
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    matrix = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        if t not in index or p not in index:
            raise ValueError(f"label not in {labels}: {t if t not in index else p!r}")
        matrix[index[t], index[p]] += 1
    n = int(matrix.sum())
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else None,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
    }


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature ``T`` minimising the negative log-likelihood of ``softmax(log(probs) / T)``
    on labelled data (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

    ``probs`` float ``(N, k)`` rows summing to 1, ``y`` int ``(N,)`` class indices. Golden-section search
    over ``log T`` in [−3, 3] (T ≈ 0.05 … 20). Returns 1.0 for empty input.
    """
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = apply_temperature(probs, math.exp(log_t))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    lo, hi = -3.0, 3.0
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-1 confidence: the support-weighted mean of
    ``|accuracy − mean confidence|`` over ``bins`` equal-width confidence bins (Guo et al.
    2017; 15 bins as there). ``probs`` ``(N, k)``, ``y`` ``(N,)``; 0.0 for empty input."""
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def fit_flag_thresholds(probs: np.ndarray, y: np.ndarray, labels: Sequence[str],
                        budget: float) -> dict[str, float]:
    """Judge thresholds fitted to a false-flag budget, one per medium.

    ``probs``: calibrated probabilities, float ``(N, K)``; ``y``: true label indices, int
    ``(N,)``; ``budget``: the share (0–1) of correctly stated posts of each medium that may be
    flagged. For medium ``m`` the threshold is the ``budget``-quantile (``method="lower"``) of
    ``p_m`` over the images whose true medium is ``m``: a post stating ``m`` is flagged when
    ``p_m`` falls below it (:func:`modbot.judge.judge`). With fewer than ``1/budget`` images of
    a medium this is their lowest probability (no validation image would be flagged). A medium
    without images gets no threshold. Raises ``ValueError`` for mismatched shapes or a budget
    outside 0–1.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    if probs.ndim != 2 or probs.shape != (len(y), len(labels)):
        raise ValueError(f"probs {probs.shape} does not match y ({len(y)},) and {len(labels)} labels")
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"budget must be 0-1, got {budget}")
    fitted: dict[str, float] = {}
    for k, medium in enumerate(labels):
        own = probs[y == k, k]
        if own.size:
            fitted[medium] = float(np.quantile(own, budget, method="lower"))
    return fitted
