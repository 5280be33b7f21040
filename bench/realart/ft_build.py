"""Build the served model of a fine-tuned recipe (``realart.finetune``), only after it won on
VALIDATION. Steps:

1. calibration on VALIDATION: the chosen run's out-of-fold probabilities at the chosen epoch
   (``$REALART_WORK/ft/oof_<RUN>.npz``, P float64 (epochs+1, n, 5)) are written to
   ``ft/oof_center.npz`` (idx int64 (n,), y int64 (n,), fold, P (n,5)); temperature
   (``heads.fit_T``) and judge thresholds (``heads.fit_judge`` at 2 % false flags, on calibrated
   probabilities) exactly as ``realart.calibrate`` → ``ft/calibration_<RUN>.json``;
2. training on ALL non-test realart sources + the cmp PACS with the same recipe and epoch count;
3. ``final.build_served`` (ImageNet backbone, per-part Normalization, Dense) with block 15 and
   the head conv replaced by the fine-tuned weights (by layer name; BN statistics are frozen so
   they are unchanged) → model dir with model.keras, labels.json (temperature, judge), metrics.json;
4. checks: Keras model on 48 images vs the training graph on cached maps (same temperature);
   int8 LiteRT export with the snapshot's check on 512 images (criterion: top-1 agreement
   ≥ 0.99, mean |Δp| ≤ 0.01; 256 other images calibrate); float16 if int8 fails;
   ``modbot.classify.load_classifier`` must give a LiteRTClassifier.

Usage: python -m realart.ft_build RUN EPOCHS LR_B LR_D OUT_DIR [--aug]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from realart import data
from realart.final import build_served, tap_channel_stats, write_model_dir
from realart.finetune import OUT, RECIPE, FtData, fit_run, pools
from realart.heads import apply_T, fit_judge, fit_T, judge_rates, report


def calibrate(run: str, epoch: int) -> dict:
    z = np.load(OUT / f"oof_{run}.npz")
    P, y, idx = z["P"][epoch], z["y"], z["idx"]
    np.savez(OUT / "oof_center.npz", idx=idx, y=y, fold=z["fold"], P=P)
    T = fit_T(P, y)
    Pc = apply_T(P, T)
    nll = lambda Q: float(-np.mean(np.log(Q[np.arange(len(y)), y] + 1e-12)))  # noqa: E731
    t = fit_judge(Pc, y, 0.02)
    res = {"run": run, "epoch": epoch, "n": int(len(y)), "temperature": round(T, 4), "nll_before": nll(P),
           "nll_after": nll(Pc), "thresholds": {k: round(v, 5) for k, v in t.items()},
           "validation_judge": judge_rates(Pc, y, t), "validation_report": report(y, P.argmax(1), list(range(5)))}
    (OUT / f"calibration_{run}.json").write_text(json.dumps(res, indent=2) + "\n")
    print("calibration (VALIDATION):", json.dumps({k: res[k] for k in ("temperature", "nll_before", "nll_after", "thresholds")}),
          json.dumps({k: res["validation_judge"][k] for k in ("false_flag_rate", "catch_rate")}), flush=True)
    return res


def main(run: str, epochs: int, lr_b: float, lr_d: float, out_dir: str, aug: bool) -> None:
    cal = calibrate(run, epochs)
    draws = ("clean", "full1") if aug else ("clean",)
    D = FtData(draws, 15)
    real, pacs = pools(D)
    tr = np.concatenate([real, pacs])
    t0 = time.time()
    trainer, _, secs = fit_run(D, tr, draws, 15, lr_b, lr_d, epochs, {})
    train_s = time.time() - t0
    head = trainer.head
    W, b = trainer.model.get_layer("medium").get_weights()
    rows = np.array([D.row[int(i)] for i in tr])
    stats = tap_channel_stats(D.stats["clean"][rows], "lite0x")
    model = build_served("lite0x", W, b, "all", head.mean, head.scale, stats)
    moved = []
    for lay in trainer.model.layers:
        if lay.name.startswith("block15_") or lay.name in ("top_conv", "top_bn"):
            model.get_layer(lay.name).set_weights(lay.get_weights())
            moved.append(lay.name)
    print("fine-tuned layers moved:", moved, flush=True)
    cv = json.loads((OUT / f"cv_{run}.json").read_text())
    val = {"what": "5-fold leave-source-out CV on non-test realart sources (out-of-fold), centre crop; epoch count chosen by fold mean",
           "run": run, "epoch": epochs, "cv": cv["by_epoch"][epochs], "baseline_epoch0": {k: cv["by_epoch"][0][k] for k in ("mean_macro_f1", "worst_macro_f1")},
           "judge": cal["validation_judge"], "nll_before_T": cal["nll_before"], "nll_after_T": cal["nll_after"]}
    metrics = {"split": "train = all non-test realart sources + PACS (subset cmp); validation = 5-fold leave-source-out out-of-fold predictions; test = held-out realart sources in test_sources.json (not scored here)",
               "training": {"backbone": "lite0x", "fine_tuned": "block15 + top_conv (BN frozen), from the ImageNet weights; head initialised from the L2 logistic regression",
                            "recipe": {"draws": list(draws), "C": RECIPE.C, "pacs_weight": RECIPE.pacs_weight, "source_cap": RECIPE.source_cap,
                                       "headstone": RECIPE.headstone, "lr_blocks": lr_b, "lr_dense": lr_d, "epochs": epochs, "dropout": 0.2, "batch": 64},
                            "n_train_images": int(len(tr)), "train_seconds": round(train_s, 1)},
               "validation": val, "calibration": {"temperature": cal["temperature"], "fitted_on": "validation (out-of-fold)"}}
    judge = {"rule": "flag when p(stated) < threshold[stated] (calibrated probabilities)", **cal["thresholds"]}
    out = Path(out_dir)
    write_model_dir(out, model, f"exp15-lite0x-ft15-224", 224, cal["temperature"], metrics, judge)

    from modbot.ml.keras_classifier import KerasClassifier
    clf = KerasClassifier.load(out)
    rng = np.random.default_rng(0)
    chk = rng.choice(real, 48, replace=False)
    X = np.concatenate([data.image_to_tensors(data.load_rgba(D.items[i].path), 224) for i in chk])
    pk = clf.predict_batch(X)
    ph = apply_T(trainer.predict(np.array([D.row[int(i)] for i in chk])), cal["temperature"])
    print("keras vs training graph: max |dp|", float(np.abs(pk - ph).max()), "top-1 agree", float((pk.argmax(1) == ph.argmax(1)).mean()), flush=True)

    from modbot.ml.export import export_tflite
    check_idx = rng.choice(tr, 512, replace=False)
    calib_idx = rng.choice(np.setdiff1d(tr, check_idx), 256, replace=False)
    load = lambda ids: np.concatenate([data.image_to_tensors(data.load_rgba(D.items[i].path), 224) for i in ids])  # noqa: E731
    Xc, Xq = load(check_idx), load(calib_idx)
    keys = ("max_abs_diff", "mean_abs_diff", "argmax_agreement", "passed", "bytes")
    rec = export_tflite(out, Xc, quantize="int8", calibration_images=Xq)
    print("int8 export:", json.dumps({k: rec.get(k) for k in keys}), flush=True)
    if not rec["passed"]:
        rec = export_tflite(out, Xc, quantize="float16")
        print("float16 export:", json.dumps({k: rec.get(k) for k in keys}), flush=True)
    from modbot.classify import load_classifier
    c2 = load_classifier(out)
    p2 = c2.predict_batch(X)
    print("load_classifier:", type(c2).__name__, "top-1 agree with Keras on 48:", float((p2.argmax(1) == pk.argmax(1)).mean()), flush=True)


if __name__ == "__main__":
    a = [x for x in sys.argv[1:] if not x.startswith("--")]
    main(a[0], int(a[1]), float(a[2]), float(a[3]), a[4], "--aug" in sys.argv)
