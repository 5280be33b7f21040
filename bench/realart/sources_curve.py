"""How does validation macro-F1 grow with the number of training sources? If more artists
were all the model needed, the curve would still be climbing steeply at the full set.
VALIDATION only: leave-source-out CV as everywhere (same 5 folds, same held-out sources), but
in each fold only a random share of the training realart sources is kept (at least one per
medium; PACS always in training); shipped recipe (lite0x clean features, C = 1e-3, PACS
weight 1.0), centre crop.

Usage: python -m realart.sources_curve [--seeds N]   (default 3 seeds per share)
"""
from __future__ import annotations

import json
import sys

import numpy as np

from realart import data
from realart.detail import RECIPE, Fused
from realart.extract import subset_indices
from realart.heads import K, fit_head, fold_summary, predict, realart_pool, report

SHARES = (0.25, 0.5, 0.75, 1.0)


def keep_sources(items: list[data.Item], idx: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The images of ``idx`` whose (medium, source) survives a random ``share`` of each
    medium's sources (at least one per medium)."""
    pairs: dict[int, list[str]] = {}
    for i in idx:
        pairs.setdefault(items[i].y, [])
        if items[i].source not in pairs[items[i].y]:
            pairs[items[i].y].append(items[i].source)
    kept = set()
    for y, srcs in pairs.items():
        n = max(1, round(share * len(srcs)))
        kept |= {(y, s) for s in rng.choice(sorted(srcs), n, replace=False)}
    return np.array([i for i in idx if (items[i].y, items[i].source) in kept])


def main(argv: list[str]) -> None:
    seeds = int(argv[argv.index("--seeds") + 1]) if "--seeds" in argv else 3
    cache = Fused(("clean",))
    items = cache.items
    idx = subset_indices(items, "cmp")
    folds = data.source_folds(items)
    real, pacs = realart_pool(items, idx)
    fold_of = np.array([folds[items[i].group] for i in real])
    y = np.array([items[i].y for i in real])
    out = {}
    for share in SHARES:
        runs = []
        for seed in range(seeds if share < 1.0 else 1):
            rng = np.random.default_rng([seed, int(share * 100)])
            oof, fs, n_src = np.zeros((len(real), K)), [], []
            for f in range(5):
                tr_real = keep_sources(items, real[fold_of != f], share, rng)
                n_src.append(len({(items[i].y, items[i].source) for i in tr_real}))
                head = fit_head(cache, np.concatenate([tr_real, pacs]), RECIPE)
                P = predict(cache, head, real[fold_of == f])
                oof[fold_of == f] = P
                fs.append(report(y[fold_of == f], P.argmax(1), list(range(K))))
            s = fold_summary(fs, y, oof)
            runs.append({"mean": s["mean_macro_f1"], "worst": s["worst_macro_f1"],
                         "drawing": s["mean_recall"]["drawing"], "sources": float(np.mean(n_src))})
        row = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
        row["spread"] = round(float(np.ptp([r["mean"] for r in runs])), 4)
        out[share] = row
        print(json.dumps({"share": share, **row}), flush=True)
    print("share  training medium×source pairs  CV macro-F1 mean / worst  drawing recall  (spread over seeds)")
    for share, r in out.items():
        print(f"{share:5.2f}  {r['sources']:6.1f}                     {r['mean']:.3f} / {r['worst']:.3f}"
              f"             {r['drawing']:.2f}   ({r['spread']:.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
