"""Does training on all of PACS (7,935 images) instead of the 100-per-cell subset (2,000)
help? VALIDATION only, the shipped recipe otherwise (lite0x clean features, C = 1e-3, PACS
weight 1.0: PACS's total weight per class is the same either way, only its variety grows).

Both heads are scored on the same images: leave-source-out CV on non-test realart (as every
row of RESULTS.md) and PACS leave-one-object-out on **every** image of the held-out object
(the cmp head never saw any of them either). The old-master proxy is PACS art_painting recall.
Usage: python -m realart.pacs_all [--json]
"""
from __future__ import annotations

import json
import sys

import numpy as np

from realart import data
from realart.detail import RECIPE, summary
from realart.extract import subset_indices
from realart.heads import Cache, cv_sources, fit_head, predict, realart_pool, report


def pacs_loo_all(cache: Cache, train_idx: np.ndarray, every: np.ndarray) -> dict:
    """Train on realart + the PACS of ``train_idx`` outside object o; score all PACS of o."""
    items = cache.items
    real, pacs_tr = realart_pool(items, train_idx)
    _, pacs_all = realart_pool(items, every)
    obj_tr = np.array([items[i].group for i in pacs_tr])
    obj_all = np.array([items[i].group for i in pacs_all])
    res = {}
    for o in data.PACS_OBJECTS:
        head = fit_head(cache, np.concatenate([real, pacs_tr[obj_tr != o]]), RECIPE)
        va = pacs_all[obj_all == o]
        y = np.array([items[i].y for i in va])
        res[o] = report(y, predict(cache, head, va).argmax(1), [0, 1, 2, 3])
    return {"mean_macro_f1": round(float(np.mean([res[o]["macro_f1"] for o in data.PACS_OBJECTS])), 4),
            "worst_macro_f1": round(float(np.min([res[o]["macro_f1"] for o in data.PACS_OBJECTS])), 4),
            "mean_painting_recall": round(float(np.mean([res[o]["recall"]["painting"] for o in data.PACS_OBJECTS])), 4),
            "worst_painting_recall": round(float(np.min([res[o]["recall"]["painting"] for o in data.PACS_OBJECTS])), 4),
            "n": int(sum(res[o]["n"] for o in data.PACS_OBJECTS))}


def main(argv: list[str]) -> None:
    cache = Cache("lite0x", "all")
    every = subset_indices(cache.items, "all")
    rows = {}
    for name, idx in (("pacs_cmp_2000", subset_indices(cache.items, "cmp")), ("pacs_all_7935", every)):
        rows[name] = {**summary(cv_sources(cache, idx, RECIPE), None), "pacs_loo_all": pacs_loo_all(cache, idx, every)}
        r = rows[name]
        p = r["pacs_loo_all"]
        print(f"{name:14s} CV {r['cv_mean_macro_f1']:.3f} / worst {r['cv_worst_macro_f1']:.3f}  pooled {r['pooled_macro_f1']:.3f}"
              f"  PACS-LOO (all {p['n']} images) {p['mean_macro_f1']:.3f} (worst {p['worst_macro_f1']:.3f})"
              f"  painting recall {p['mean_painting_recall']:.3f} (worst {p['worst_painting_recall']:.3f})", flush=True)
    if "--json" in argv:
        print(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
