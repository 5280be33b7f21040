"""Does a larger input help? The shipped features (Lite0, every stage's statistics) computed on
the whole centre crop at 224 px (shipped) vs 320 px (`lite0x320`: same weights, the network is
fully convolutional; finer strokes, same framing). VALIDATION only: leave-source-out CV and PACS
leave-one-object-out, the shipped recipe (C = 1e-3, PACS weight 1.0).
Usage: python -m realart.resolution [--json]
"""
from __future__ import annotations

import json
import sys

from realart.detail import RECIPE, summary
from realart.extract import subset_indices
from realart.heads import Cache, cv_sources, pacs_loo


def main(argv: list[str]) -> None:
    rows = {}
    for backbone in ("lite0x", "lite0x320"):
        cache = Cache(backbone, "cmp")
        idx = subset_indices(cache.items, "cmp")
        rows[backbone] = summary(cv_sources(cache, idx, RECIPE), pacs_loo(cache, idx, RECIPE))
        r = rows[backbone]
        print(f"{backbone:10s} CV {r['cv_mean_macro_f1']:.3f} / worst {r['cv_worst_macro_f1']:.3f}  pooled "
              f"{r['pooled_macro_f1']:.3f}  recall " + " ".join(f"{c[:3]} {v:.2f}" for c, v in r["mean_recall"].items())
              + f"  PACS-LOO {r['pacs_loo_mean']:.3f} ({r['pacs_loo_worst']:.3f})", flush=True)
    if "--json" in argv:
        print(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
