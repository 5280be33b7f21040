"""Render the experiment tables (markdown) from results/experiments.jsonl. All CV figures are
VALIDATION figures. Usage: python -m realart.report > results/tables.md"""
from __future__ import annotations

import json

from realart import data
from realart.heads import L


def rows() -> list[dict]:
    out = {}
    for line in open(data.EXP / "results" / "experiments.jsonl"):
        r = json.loads(line)
        out[r["name"]] = r  # last run of a name wins
    return list(out.values())


def source_balanced(name: str, mode: str) -> dict | None:
    """Per-class mean over sources of per-source accuracy (each source counts once), from
    the experiment's out-of-fold predictions; and their mean."""
    import numpy as np
    f = data.EXP / "results" / f"oof_{name}.npz"
    if not f.exists():
        return None
    z = np.load(f)
    if f"oof_{mode}" not in z:
        return None
    items = data.all_items()
    src = np.array([items[i].source for i in z["idx"]])
    y, P = z["y"], z[f"oof_{mode}"]
    acc = {s: (int(y[src == s][0]), float(np.mean(P[src == s].argmax(1) == y[src == s]))) for s in set(src)}
    per = {L[c]: float(np.mean([a for (k, a) in acc.values() if k == c])) for c in range(len(L))}
    per["mean"] = float(np.mean([a for (_, a) in acc.values()]))
    return per


def fmt_recipe(r: dict) -> str:
    x = r["recipe"]
    return f"draws={'+'.join(x['draws'])}, feats={x['feats']}, C={x['C']}, pacs_w={x['pacs_weight']}, cap={x['source_cap']}, headstone×{x['headstone']}"


def main() -> None:
    print("| experiment | backbone | recipe | mode | CV macro-F1 mean | worst fold | pooled macro-F1 | pooled recall " + " / ".join(c[:4] for c in L) + " | worst-fold recall " + " / ".join(c[:4] for c in L) + " | source-balanced recall " + " / ".join(c[:4] for c in L) + " (mean) | PACS LOO mean (worst) | PACS painting recall |")
    print("|" + "---|" * 11)
    for r in rows():
        for m in ("center", "tiles"):
            k = f"cv_{m}"
            if k not in r:
                continue
            s = r[k]
            loo = r.get("pacs_loo")
            print(f"| {r['name']} | {r['backbone']} | {fmt_recipe(r)} | {m} | {s['mean_macro_f1']:.3f} | {s['worst_macro_f1']:.3f} | {s['pooled']['macro_f1']:.3f} | "
                  + " / ".join(f"{s['pooled']['recall'][c]:.2f}" for c in L) + " | "
                  + " / ".join(f"{s['worst_recall'][c]:.2f}" for c in L) + " | "
                  + ((lambda sb: " / ".join(f"{sb[c]:.2f}" for c in L) + f" ({sb['mean']:.3f})")(source_balanced(r["name"], m)) if source_balanced(r["name"], m) else "") + " | "
                  + (f"{loo['mean_macro_f1']:.3f} ({loo['worst_macro_f1']:.3f}) | {loo['mean_painting_recall']:.2f} |" if loo and m == "center" else " | |"))


if __name__ == "__main__":
    main()
