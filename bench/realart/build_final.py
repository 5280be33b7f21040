"""Train the final head on ALL non-test sources with the chosen recipe, assemble the served
Keras model, export int8 LiteRT (snapshot's check), then score the held-out TEST sources once.

Usage: python -m realart.build_final CONFIG.json OUT_DIR [--test]
CONFIG: {"backbone", "subset", "recipe": {...}, "temperature", "judge": {medium: thr},
         "version", "validation": {...figures to copy into metrics.json}}
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from realart import data
from realart.extract import subset_indices
from realart.final import build_served, tap_channel_stats, write_model_dir
from realart.heads import Cache, Head, Recipe, realart_pool, train_matrix
from realart.lite import BACKBONES


def main(cfg_path: str, out_dir: str, test: bool) -> None:
    cfg = json.loads(Path(cfg_path).read_text())
    r = Recipe(**{k: tuple(v) if k == "draws" else v for k, v in cfg["recipe"].items()})
    if r.head != "logreg":
        raise SystemExit("only logreg heads fold into the served Dense layer")
    backbone, subset = cfg["backbone"], cfg["subset"]
    size = BACKBONES[backbone][2]
    cache = Cache(backbone, subset)
    idx = subset_indices(cache.items, subset)
    real, pacs = realart_pool(cache.items, idx)
    t0 = time.time()
    head = Head(r).fit(*train_matrix(cache, np.concatenate([real, pacs]), r))
    d = len(head.mean)
    train_ids = np.concatenate([real, pacs])
    stats = tap_channel_stats(cache.get("clean")[train_ids], backbone) if r.feats == "all" else None
    model = build_served(backbone, head.W, head.b, r.feats, head.mean, head.scale, stats)
    out = Path(out_dir)
    metrics = {"split": "train = all non-test realart sources + PACS (subset %s); validation = 5-fold leave-source-out out-of-fold predictions; test = held-out realart sources in test_sources.json (scored once)" % subset,
               "training": {"backbone": backbone, "recipe": cfg["recipe"], "n_train_images": int(len(real) + len(pacs)),
                            "head_fit_seconds": round(time.time() - t0, 1)},
               "validation": cfg.get("validation", {}), "calibration": {"temperature": cfg["temperature"], "fitted_on": "validation (out-of-fold)"}}
    write_model_dir(out, model, cfg["version"], size, cfg["temperature"], metrics, cfg.get("judge"))

    # sanity: Keras model on clean images reproduces the head on cached features
    from modbot.ml.keras_classifier import KerasClassifier
    clf = KerasClassifier.load(out)
    rng = np.random.default_rng(0)
    chk = rng.choice(real, 48, replace=False)
    X = np.concatenate([data.image_to_tensors(data.load_rgba(cache.items[i].path), size) for i in chk])
    pk = clf.predict_batch(X)  # temperature applied
    from realart.heads import apply_T
    ph = apply_T(head.proba(cache.get("clean")[chk][:, :d]), cfg["temperature"])
    print("keras vs cached-head: max |dp|", float(np.abs(pk - ph).max()), "top-1 agree", float((pk.argmax(1) == ph.argmax(1)).mean()), flush=True)

    # int8 export with the snapshot's check on 512 validation-style images (non-test realart + PACS)
    from modbot.ml.export import export_tflite
    pool = np.concatenate([real, pacs])
    check_idx = rng.choice(pool, 512, replace=False)
    calib_idx = rng.choice(np.setdiff1d(pool, check_idx), 256, replace=False)
    load = lambda ids: np.concatenate([data.image_to_tensors(data.load_rgba(cache.items[i].path), size) for i in ids])  # noqa: E731
    rec = export_tflite(out, load(check_idx), quantize="int8", calibration_images=load(calib_idx))
    print("int8 export:", json.dumps({k: rec[k] for k in ("max_abs_diff", "mean_abs_diff", "argmax_agreement", "passed", "bytes")}), flush=True)

    if test:
        score_test(out, cache, cfg)


def score_test(out: Path, cache: Cache, cfg: dict) -> dict:
    """Score the held-out test sources ONCE through the served path (load_classifier → LiteRT
    int8, centre crop as served) and with the multi-crop tiles; write test.json."""
    from modbot.classify import load_classifier
    from realart.heads import fit_judge, judge_rates, report  # noqa: F401
    tests = data.test_sources()
    ids = [i for i, it in enumerate(cache.items) if it.dataset == "realart" and it.source in tests]
    clf = load_classifier(out)
    size = clf.input_size[0]
    y = np.array([cache.items[i].y for i in ids])
    P_c, P_t = [], []
    for i in ids:
        img = data.load_rgba(cache.items[i].path)
        P_c.append(clf.predict_batch(data.image_to_tensors(img, size, "center"))[0])
        P_t.append(clf.predict_batch(data.image_to_tensors(img, size, "tiles")).mean(0))
    P_c, P_t = np.array(P_c), np.array(P_t)
    res = {"served_by": type(clf).__name__, "n": len(ids), "sources": sorted(tests),
           "center": report(y, P_c.argmax(1), list(range(5))), "tiles": report(y, P_t.argmax(1), list(range(5))),
           "judge_center": judge_rates(P_c, y, cfg["judge"]), "judge_tiles": judge_rates(P_t, y, cfg["judge"]),
           "per_source_center_acc": {s: float(np.mean([P_c[k].argmax() == y[k] for k, i in enumerate(ids) if cache.items[i].source == s])) for s in sorted(tests)}}
    (out / "test.json").write_text(json.dumps(res, indent=2) + "\n")
    np.savez(out.parent / "test_probs.npz", ids=np.array(ids), y=y, P_center=P_c, P_tiles=P_t)
    print("TEST (once):", json.dumps({k: res[k]["macro_f1"] for k in ("center", "tiles")}), json.dumps(res["judge_center"]), flush=True)
    return res


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--test" in sys.argv)
