"""Nuisance attribute projection (NAP): remove the directions in which artists of the same
medium differ before fitting the linear head, so that it cannot separate media by an
artist's style. VALIDATION only (leave-source-out CV, PACS leave-one-object-out), shipped
recipe otherwise (lite0x clean features, C = 1e-3, PACS weight 1.0).

In the standardised feature space Z (d = 2,176), for every (medium, source) of the training
realart images with ≥ ``MIN_IMAGES`` images the source mean minus the medium's mean over its
sources is a nuisance vector; the top-``k`` right singular vectors V of those vectors span the
nuisance subspace, P = I − (1 − α) V Vᵀ shrinks it (α = 0 removes it), and the head is fitted
on Z P. P W is again one linear map, so a NAP head serves as the shipped Dense layer would.

Usage: python -m realart.nuisance [K:ALPHA ...]   (default 5:0 10:0 20:0 30:0 20:0.3)
"""
from __future__ import annotations

import json
import sys

import numpy as np

from realart.detail import RECIPE, Fused, summary
from realart.extract import subset_indices
from realart.heads import Head, cv_sources, pacs_loo

MIN_IMAGES = 5


class NAPHead(Head):
    """`Head` (standardise → logistic regression) with the nuisance projection folded into W."""

    def __init__(self, r, items, tr, k: int, alpha: float):
        super().__init__(r)
        self.groups = np.array([items[i].source if items[i].dataset == "realart" else "" for i in tr])
        self.k, self.alpha = k, alpha

    def fit(self, X, y, w):
        assert len(X) == len(self.groups)
        mean, scale = X.mean(0), X.std(0) + 1e-3
        Z = (X - mean) / scale
        vecs = []
        for c in np.unique(y):
            mus = [Z[(y == c) & (self.groups == g)].mean(0) for g in np.unique(self.groups[y == c])
                   if g and np.sum((y == c) & (self.groups == g)) >= MIN_IMAGES]
            if len(mus) >= 2:
                mus = np.array(mus)
                vecs.append(mus - mus.mean(0))
        D = np.concatenate(vecs)
        V = np.linalg.svd(D, full_matrices=False)[2][: self.k].T  # (d, k)
        self.V = V
        Zp = Z - (1 - self.alpha) * (Z @ V) @ V.T
        super().fit(Zp * scale + mean, y, w)  # same standardisation → the head sees Z P
        # fold P into W: logits = Z P W + b = Z (P W) + b
        self.W = (self.W - (1 - self.alpha) * V @ (V.T @ self.W)).astype(np.float32)
        return self


def main(argv: list[str]) -> None:
    specs = [a for a in argv if not a.startswith("--")] or ["5:0", "10:0", "20:0", "30:0", "20:0.3"]
    cache = Fused(("clean",))
    idx = subset_indices(cache.items, "cmp")
    rows = {"shipped": summary(cv_sources(cache, idx, RECIPE), None)}
    for s in specs:
        k, a = int(s.split(":")[0]), float(s.split(":")[1])
        make = lambda r, items, tr, k=k, a=a: NAPHead(r, items, tr, k, a)
        loo = pacs_loo(cache, idx, RECIPE, make) if "--loo" in argv else None
        rows[f"nap_k{k}_a{a}"] = summary(cv_sources(cache, idx, RECIPE, make=make), loo)
        r = rows[f"nap_k{k}_a{a}"]
        print(f"nap k={k:3d} α={a:.2f}  CV {r['cv_mean_macro_f1']:.3f} / worst {r['cv_worst_macro_f1']:.3f}  pooled "
              f"{r['pooled_macro_f1']:.3f}  recall " + " ".join(f"{c[:3]} {v:.2f}" for c, v in r["mean_recall"].items())
              + (f"  PACS-LOO {r['pacs_loo_mean']:.3f}" if loo else ""), flush=True)
    r = rows["shipped"]
    print(f"shipped          CV {r['cv_mean_macro_f1']:.3f} / worst {r['cv_worst_macro_f1']:.3f}  pooled {r['pooled_macro_f1']:.3f}")
    if "--json" in argv:
        print(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
