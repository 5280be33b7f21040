"""Run recipe/backbone experiments on cached features; append one JSON line per run to
results/experiments.jsonl (all figures here are VALIDATION: leave-source-out CV on non-test
realart sources, PACS leave-one-object-out). Usage: python -m realart.experiments NAME..."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace

import numpy as np

from realart import data
from realart.extract import subset_indices
from realart.heads import Cache, Recipe, cv_sources, pacs_loo

OUT = data.EXP / "results"


def run(name: str, backbone: str, subset: str, r: Recipe, modes=("center",), loo: bool = True) -> dict:
    """One experiment: CV (+ PACS LOO); writes a JSON line and returns the summary."""
    t = time.time()
    cache = Cache(backbone, subset)
    idx = subset_indices(cache.items, subset)
    cv = cv_sources(cache, idx, r, modes)
    row = {"name": name, "backbone": backbone, "subset": subset, "recipe": asdict(r)}
    for m in modes:
        row[f"cv_{m}"] = cv[m]
    row["cv_folds_center"] = [{"macro_f1": f["macro_f1"], "recall": f["recall"]} for f in cv["folds"]["center"]]
    if loo:
        row["pacs_loo"] = pacs_loo(cache, idx, r)
    row["seconds"] = round(time.time() - t, 1)
    OUT.mkdir(exist_ok=True)
    with open(OUT / "experiments.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    np.savez(OUT / f"oof_{name}.npz", idx=cv["idx"], y=cv["y"], fold=cv["fold"],
             **{f"oof_{m}": cv["oof"][m] for m in modes})
    s = cv[modes[0]]
    print(f"{name:28s} {backbone} cvF1 mean {s['mean_macro_f1']:.3f} worst {s['worst_macro_f1']:.3f} "
          f"pooled {s['pooled']['macro_f1']:.3f} rec " + " ".join(f"{k[:4]}={v:.2f}" for k, v in s['pooled']['recall'].items())
          + (f" | PACS-LOO {row['pacs_loo']['mean_macro_f1']:.3f} (worst {row['pacs_loo']['worst_macro_f1']:.3f}, paint {row['pacs_loo']['mean_painting_recall']:.2f})" if loo else "")
          + f" [{row['seconds']}s]", flush=True)
    return row


BASE = Recipe(draws=("clean", "full1"), feats="all", C=0.001)


def _grid():
    """Recipe knobs on Lite0 (clean + full1 draws, cmp subset), CV only."""
    out = {}
    for C in (0.0003, 0.001):
        out[f"g_C{C}"] = (lambda C=C: run(f"g_C{C}", "lite0", "cmp", replace(BASE, C=C), loo=False))
    for pw in (0.2, 1.0):
        out[f"g_pacs{pw}"] = (lambda pw=pw: run(f"g_pacs{pw}", "lite0", "cmp", replace(BASE, pacs_weight=pw), loo=False))
    for cap in (30, 300):
        out[f"g_cap{cap}"] = (lambda cap=cap: run(f"g_cap{cap}", "lite0", "cmp", replace(BASE, source_cap=cap), loo=False))
    out["g_head1"] = lambda: run("g_head1", "lite0", "cmp", replace(BASE, headstone=1.0), loo=False)
    return out


PLANS = {**_grid(),
    "aug_none": lambda: run("aug_none", "lite0", "cmp", replace(BASE, draws=("clean",)), modes=("center", "tiles")),
    "aug_generic": lambda: run("aug_generic", "lite0", "cmp", replace(BASE, draws=("clean", "generic1")), modes=("center", "tiles"), loo=False),
    "aug_full": lambda: run("aug_full", "lite0", "cmp", BASE, modes=("center", "tiles"), loo=False),
    "cand_lite0": lambda: run("cand_lite0", "lite0", "cmp", replace(BASE, draws=("clean",), C=0.0003), modes=("center", "tiles")),
    "cand_lite0x": lambda: run("cand_lite0x", "lite0x", "cmp", replace(BASE, draws=("clean",), C=0.0003), modes=("center", "tiles")),
    "cand_lite0x_C1e-4": lambda: run("cand_lite0x_C1e-4", "lite0x", "cmp", replace(BASE, draws=("clean",), C=0.0001), loo=False),
    **{f"x_{k}": (lambda k=k, kw=kw: run(f"x_{k}", "lite0x", "cmp", replace(BASE, draws=("clean",), C=0.0003, **kw), loo=False))
       for k, kw in {"pacs0.2": {"pacs_weight": 0.2}, "pacs1.0": {"pacs_weight": 1.0}, "cap30": {"source_cap": 30},
                     "cap300": {"source_cap": 300}, "headstone1": {"headstone": 1.0}}.items()},
    "cand_lite0x_pacs1": lambda: run("cand_lite0x_pacs1", "lite0x", "cmp", replace(BASE, draws=("clean",), C=0.0003, pacs_weight=1.0), modes=("center", "tiles")),
    "cand_lite0x_pacs1_C1e-3": lambda: run("cand_lite0x_pacs1_C1e-3", "lite0x", "cmp", replace(BASE, draws=("clean",), C=0.001, pacs_weight=1.0), modes=("center", "tiles")),
    "bb_lite1_clean": lambda: run("bb_lite1_clean", "lite1", "cmp", replace(BASE, draws=("clean",))),
    "bb_lite2_clean": lambda: run("bb_lite2_clean", "lite2", "cmp", replace(BASE, draws=("clean",))),
    "bb_lite0": lambda: run("bb_lite0", "lite0", "cmp", BASE),
    "bb_lite1": lambda: run("bb_lite1", "lite1", "cmp", BASE),
    "bb_lite2": lambda: run("bb_lite2", "lite2", "cmp", BASE),
    "feat_top": lambda: run("feat_top", "lite0", "cmp", replace(BASE, draws=("clean",), feats="top"), loo=False),
    "bb_lite0_top": lambda: run("bb_lite0_top", "lite0", "cmp", replace(BASE, feats="top")),
    "bb_lite1_top": lambda: run("bb_lite1_top", "lite1", "cmp", replace(BASE, feats="top")),
    "bb_lite2_top": lambda: run("bb_lite2_top", "lite2", "cmp", replace(BASE, feats="top")),
}

if __name__ == "__main__":
    for n in sys.argv[1:]:
        PLANS[n]()
