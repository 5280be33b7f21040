"""Write the serving choices into a built model directory's ``labels.json``: the crop mode
(``"crops"``), the tiles' calibration (``crop_calibration.tiles``: temperature from
``realart.calibrate``'s tiles run) and, for both modes, the judge thresholds chosen by
:mod:`realart.judge_budget` (the fitting budget whose held-out-fold false-flag rate stays within
the target). Every input is a VALIDATION product; nothing here reads a test source.

Usage (from ``bench/``)::

    python -m realart.serving_config MODEL_DIR EXPERIMENT [--crops tiles] [--target 0.02]

``EXPERIMENT`` names ``results/oof_<EXPERIMENT>.npz`` and
``results/calibration_<EXPERIMENT>_{center,tiles}.json`` under the work directory
(``realart.data.EXP``). The model's own ``temperature`` (centre crop) is kept.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from realart import data
from realart.judge_budget import calibrate, choose

RULE = "flag when p(stated) < threshold[stated] (calibrated probabilities)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("experiment")
    ap.add_argument("--crops", choices=("centre", "tiles"), default="tiles")
    ap.add_argument("--target", type=float, default=0.02)
    a = ap.parse_args()
    res_dir = data.EXP / "results"
    z = np.load(res_dir / f"oof_{a.experiment}.npz")
    labels_path = Path(a.model_dir) / "labels.json"
    doc = json.loads(labels_path.read_text())
    t_tiles = json.loads((res_dir / f"calibration_{a.experiment}_tiles.json").read_text())["temperature"]
    fitted = {}
    for mode, key, temperature in (("centre", "center", doc["temperature"]), ("tiles", "tiles", t_tiles)):
        r = choose(calibrate(z[f"oof_{key}"], temperature), z["y"], z["fold"], a.target)
        chosen = next(row for row in r["nested"] if row["budget"] == r["chosen_budget"])
        fitted[mode] = {"rule": RULE, **r["thresholds"], "fit_budget": r["chosen_budget"],
                        "held_out_fold_false_flag_rate_mean": round(chosen["false_flag_mean"], 4),
                        "held_out_fold_catch_rate_mean": round(chosen["catch_mean"], 4)}
        print(mode, json.dumps(fitted[mode]))
    doc["judge"] = fitted["centre"]
    doc["crops"] = a.crops
    doc["crop_calibration"] = {"tiles": {
        "temperature": t_tiles, "judge": fitted["tiles"],
        "fitted_on": "validation: out-of-fold tiles predictions of the leave-source-out CV "
                     "(realart.calibrate, realart.judge_budget)"}}
    labels_path.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
