"""Markdown tables (VALIDATION) of the fine-tuning runs ``ft/cv_*.json`` next to the baseline
experiment ``cand_lite0x_pacs1_C1e-3`` (results/experiments.jsonl). Prints to stdout.
Usage: python -m realart.ft_report RUN...
"""
from __future__ import annotations

import json
import sys

from realart import data
from realart.finetune import OUT

L = data.LABELS


def rec(r: dict) -> str:
    return " / ".join(f"{r.get(c, float('nan')):.2f}" for c in L)


def main(runs: list[str]) -> None:
    base = [json.loads(x) for x in open(data.EXP / "results" / "experiments.jsonl")]
    base = [x for x in base if x["name"] == "cand_lite0x_pacs1_C1e-3"][-1]
    print("| run | epoch | CV macro-F1 mean | worst fold | per-fold macro-F1 | pooled macro-F1 | pooled recall dig / pai / dra / pho / scu | worst-fold recall dig / pai / dra / pho / scu |")
    print("|---|---|---|---|---|---|---|---|")
    c = base["cv_center"]
    print(f"| baseline cand_lite0x_pacs1_C1e-3 | – | {c['mean_macro_f1']:.3f} | {c['worst_macro_f1']:.3f} | "
          + " / ".join(f"{f['macro_f1']:.3f}" for f in base["cv_folds_center"])
          + f" | {c['pooled']['macro_f1']:.3f} | {rec(c['pooled']['recall'])} | {rec(c['worst_recall'])} |")
    for run in runs:
        r = json.loads((OUT / f"cv_{run}.json").read_text())
        for b in r["by_epoch"]:
            worst = {k: min(fr[k] for fr in b["fold_recall"] if k in fr) for k in L}
            print(f"| {run} | {b['epoch']} | {b['mean_macro_f1']:.3f} | {b['worst_macro_f1']:.3f} | "
                  + " / ".join(f"{v:.3f}" for v in b["fold_macro_f1"])
                  + f" | {b['pooled']['macro_f1']:.3f} | {rec(b['pooled']['recall'])} | {rec(worst)} |")
        import numpy as np
        print(f"\n{run}: sec/epoch (per fold-epoch, training rows ×{len(r['draws'])} draws): median "
              f"{float(np.median(r['sec_per_epoch'])):.1f}, n={len(r['sec_per_epoch'])}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
