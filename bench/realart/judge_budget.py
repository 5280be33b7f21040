"""Fit the judge's thresholds so that the false-flag budget holds on artists never seen.

A threshold fitted to flag 2 % of the correctly stated validation posts flags more on other
sources: the probabilities of a new artist's work are less sure. Measured here by nesting:
thresholds fitted on the out-of-fold predictions of four leave-source-out folds are applied to
the fifth (each fold is other artists). The fitting budget chosen is the largest on
:data:`GRID` whose false-flag rate, averaged over the five held-out folds, is within the target
(``[judge] false_flag_budget``, 2 %); the thresholds are then fitted at that budget on all
out-of-fold predictions. Every figure here is a VALIDATION figure (no test source is involved).

Usage (from ``bench/``)::

    python -m realart.judge_budget OOF_NPZ MODE TEMPERATURE [--target 0.02] [--json]

``OOF_NPZ``: ``y`` (N,) int true media (order ``realart.heads.L``), ``fold`` (N,) int, and
``oof_<MODE>`` (N, 5) float uncalibrated out-of-fold probabilities (as
``realart.experiments`` writes them, e.g. ``results/oof_cand_lite0x_pacs1_C1e-3.npz``);
``MODE``: ``center`` or ``tiles``; ``TEMPERATURE``: the mode's fitted temperature. Prints a
table and, with ``--json``, one JSON object with the chosen budget, the thresholds and the
nested figures.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from realart.heads import L, fit_judge, judge_rates

#: Fitting budgets tried (share of correctly stated validation posts flagged).
GRID = (0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02)


def calibrate(P: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log P / T)``, float64 ``(N, k)`` (as ``modbot.classify.apply_temperature``)."""
    z = np.log(np.clip(P, 1e-12, None)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nested(P: np.ndarray, y: np.ndarray, fold: np.ndarray, budget: float) -> dict:
    """Fit at ``budget`` on four folds, measure on the fifth; per-fold and mean false-flag and
    catch rates (calibrated ``P`` (N, k), ``y`` (N,), ``fold`` (N,))."""
    ff, catch = [], []
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        r = judge_rates(P[te], y[te], fit_judge(P[tr], y[tr], budget))
        ff.append(r["false_flag_rate"])
        catch.append(r["catch_rate"])
    return {"budget": budget, "false_flag_folds": [round(v, 4) for v in ff],
            "false_flag_mean": float(np.mean(ff)), "false_flag_worst": float(np.max(ff)),
            "catch_mean": float(np.mean(catch))}


def choose(P: np.ndarray, y: np.ndarray, fold: np.ndarray, target: float) -> dict:
    """The largest :data:`GRID` budget whose nested mean false-flag rate is ≤ ``target``
    (the smallest budget when none is), its thresholds fitted on all rows, and every row."""
    rows = [nested(P, y, fold, b) for b in GRID]
    ok = [r for r in rows if r["false_flag_mean"] <= target]
    best = ok[-1] if ok else rows[0]
    thresholds = fit_judge(P, y, best["budget"])
    return {"target": target, "chosen_budget": best["budget"], "nested": rows,
            "thresholds": {m: round(thresholds[m], 5) for m in L},
            "validation_pooled": {k: v for k, v in judge_rates(P, y, thresholds).items() if k != "per_stated"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("oof")
    ap.add_argument("mode", choices=("center", "tiles"))
    ap.add_argument("temperature", type=float)
    ap.add_argument("--target", type=float, default=0.02)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    z = np.load(a.oof)
    P = calibrate(z[f"oof_{a.mode}"], a.temperature)
    res = choose(P, z["y"], z["fold"], a.target)
    res.update(mode=a.mode, temperature=a.temperature, oof=a.oof)
    print(f"{'fit budget':>10} | {'held-out false flags, mean (worst fold)':>40} | catch (mean)")
    for r in res["nested"]:
        mark = "  <- chosen" if r["budget"] == res["chosen_budget"] else ""
        print(f"{r['budget']:>10.4f} | {r['false_flag_mean']:>30.2%} ({r['false_flag_worst']:.2%}) | "
              f"{r['catch_mean']:.1%}{mark}")
    print("thresholds:", res["thresholds"])
    if a.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
