"""Write the final model's config from an experiment (its recipe) and its VALIDATION
calibration (temperature, judge thresholds). Usage:
python -m realart.make_config EXPERIMENT MODE VERSION OUT.json"""
from __future__ import annotations

import json
import sys

from realart import data
from realart.report import rows, source_balanced


def main(name: str, mode: str, version: str, out: str) -> None:
    r = {x["name"]: x for x in rows()}[name]
    cal = json.loads((data.EXP / "results" / f"calibration_{name}_{mode}.json").read_text())
    val = {"what": "5-fold leave-source-out CV on non-test realart sources (out-of-fold); PACS leave-one-object-out",
           "experiment": name, "mode": mode, "cv": r[f"cv_{mode}"], "source_balanced_recall": source_balanced(name, mode),
           "pacs_loo": r.get("pacs_loo"), "judge": cal["validation_judge"], "nll_before_T": cal["nll_before"],
           "nll_after_T": cal["nll_after"]}
    cfg = {"backbone": r["backbone"], "subset": r["subset"], "recipe": r["recipe"], "temperature": cal["temperature"],
           "judge": {"rule": "flag when p(stated) < threshold[stated] (calibrated probabilities)", **cal["thresholds"]},
           "version": version, "validation": val}
    open(out, "w").write(json.dumps(cfg, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
