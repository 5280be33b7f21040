"""Temperature and judge thresholds from VALIDATION (out-of-fold leave-source-out
predictions of one experiment). Usage: python -m realart.calibrate EXPERIMENT_NAME [MODE]
Writes results/calibration_<name>.json."""
from __future__ import annotations

import json
import sys
from collections import Counter

import numpy as np

from realart import data
from realart.heads import L, apply_T, fit_T, fit_judge, judge_rates, report


def per_source(items, idx, y, P) -> dict:
    """Accuracy and prediction counts per realart source (validation)."""
    src = np.array([items[i].source for i in idx])
    out = {}
    for s in sorted(set(src), key=lambda s: (int(y[src == s][0]), s)):
        m = src == s
        out[s] = {"medium": L[int(y[m][0])], "n": int(m.sum()), "accuracy": round(float(np.mean(P[m].argmax(1) == y[m])), 3),
                  "predicted": dict(Counter(L[k] for k in P[m].argmax(1)))}
    return out


def main(name: str, mode: str = "center") -> dict:
    z = np.load(data.EXP / "results" / f"oof_{name}.npz")
    P, y, idx = z[f"oof_{mode}"], z["y"], z["idx"]
    T = fit_T(P, y)
    Pc = apply_T(P, T)
    nll = lambda Q: float(-np.mean(np.log(Q[np.arange(len(y)), y] + 1e-12)))  # noqa: E731
    t = fit_judge(Pc, y, 0.02)
    items = data.all_items()
    res = {"experiment": name, "mode": mode, "n": int(len(y)), "temperature": round(T, 4),
           "nll_before": nll(P), "nll_after": nll(Pc), "thresholds": {k: round(v, 5) for k, v in t.items()},
           "validation_judge": judge_rates(Pc, y, t), "validation_report": report(y, P.argmax(1), list(range(5))),
           "per_source": per_source(items, idx, y, Pc)}
    (data.EXP / "results" / f"calibration_{name}_{mode}.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("temperature", "nll_before", "nll_after", "thresholds")}),
          json.dumps({k: res["validation_judge"][k] for k in ("false_flag_rate", "catch_rate")}))
    return res


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "center")
