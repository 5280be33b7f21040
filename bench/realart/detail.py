"""Does seeing the artwork's texture help? ``detail<k>`` features (the centre square's central
1/k, zoomed to the model's input size, `realart.extract`) next to the served centre-crop
features. VALIDATION only (leave-source-out CV + PACS leave-one-object-out, as every row of
RESULTS.md); the recipe is the shipped one (lite0x, clean, C = 1e-3, PACS weight 1.0).

Variants: ``centre`` (the shipped features), ``detail<k>`` alone, ``concat<k>`` (one linear head
on [centre | detail<k>], 2 × 2,176 features) and ``avg<k>`` (mean of the two heads'
probabilities). Usage: python -m realart.detail [K ...] [--json]
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np

from realart.experiments import BASE
from realart.extract import subset_indices
from realart.heads import Cache, K, cv_sources, fold_summary, pacs_loo, report

RECIPE = replace(BASE, draws=("clean",), C=0.001, pacs_weight=1.0)


class Fused(Cache):
    """A Cache whose ``clean`` draw is built from other lite0x draws: ``parts`` joined along
    the feature axis (rows missing in any part are NaN)."""

    def __init__(self, parts: tuple[str, ...]):
        super().__init__("lite0x", "cmp")
        self.parts = parts

    def get(self, draw: str) -> np.ndarray:
        if draw == "clean" and self.parts != ("clean",):
            key = "+".join(self.parts)
            if key not in self._c:
                self._c[key] = np.concatenate([super(Fused, self).get(p) for p in self.parts], axis=1)
            return self._c[key]
        return super().get(draw)


def summary(cv: dict, loo: dict | None) -> dict:
    s = cv["center"]
    out = {"cv_mean_macro_f1": round(s["mean_macro_f1"], 4), "cv_worst_macro_f1": round(s["worst_macro_f1"], 4),
           "pooled_macro_f1": round(s["pooled"]["macro_f1"], 4),
           "mean_recall": {k: round(v, 3) for k, v in s["mean_recall"].items()},
           "worst_recall": {k: round(v, 3) for k, v in s["worst_recall"].items()}}
    if loo:
        out["pacs_loo_mean"] = round(loo["mean_macro_f1"], 4)
        out["pacs_loo_worst"] = round(loo["worst_macro_f1"], 4)
    return out


def run_variants(variants, idx: np.ndarray, loo: bool, no_loo: tuple[str, ...] = ()) -> dict:
    """CV (and, when ``loo``, PACS leave-one-object-out except for ``no_loo``) of each
    ``(name, cache)`` with `RECIPE`; prints each row as JSON as it comes; returns the rows."""
    rows = {}
    for name, cache in variants:
        cv = cv_sources(cache, idx, RECIPE)
        rows[name] = summary(cv, pacs_loo(cache, idx, RECIPE) if loo and name not in no_loo else None)
        print(json.dumps({name: rows[name]}), flush=True)
    return rows


def print_rows(rows: dict, width: int = 10) -> None:
    """One line per `summary` row: CV mean / worst, pooled, mean recall, PACS LOO."""
    for name, r in rows.items():
        print(f"{name:{width}s} CV {r['cv_mean_macro_f1']:.3f} / worst {r['cv_worst_macro_f1']:.3f}  pooled "
              f"{r['pooled_macro_f1']:.3f}  recall " + " ".join(f"{c[:3]} {v:.2f}" for c, v in r["mean_recall"].items())
              + (f"  PACS-LOO {r['pacs_loo_mean']:.3f} ({r['pacs_loo_worst']:.3f})" if "pacs_loo_mean" in r else ""))


def avg_cv(a: dict, b: dict) -> dict:
    """CV figures of the mean of two runs' out-of-fold probabilities (same folds)."""
    P = (a["oof"]["center"] + b["oof"]["center"]) / 2
    y, fold = a["y"], a["fold"]
    fs = [report(y[fold == f], P[fold == f].argmax(1), list(range(K))) for f in range(5)]
    return {"center": fold_summary(fs, y, P)}


def main(argv: list[str]) -> None:
    ks = [a for a in argv if not a.startswith("--")] or ["2", "4"]
    rows = {}
    base = Fused(("clean",))
    idx = subset_indices(base.items, "cmp")
    cv0 = cv_sources(base, idx, RECIPE)
    rows["centre"] = summary(cv0, None)
    for k in ks:
        d = f"detail{k}"
        cvd = cv_sources(Fused((d,)), idx, RECIPE)
        rows[d] = summary(cvd, None)
        fc = Fused(("clean", d))
        rows[f"concat{k}"] = summary(cv_sources(fc, idx, RECIPE), pacs_loo(fc, idx, RECIPE))
        rows[f"avg{k}"] = summary(avg_cv(cv0, cvd), None)
        print(json.dumps({k2: rows[k2] for k2 in (d, f"concat{k}", f"avg{k}")}), flush=True)
    print_rows(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
