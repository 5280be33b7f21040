"""Compare medium classifiers on PACS, held out by object, and run leave-one-object-out (LOO).

PACS (``../shared/data/pacs``; see ``bench/pacs_tree.py`` for the source and the mapping
art_painting → painting, cartoon → digital, sketch → drawing, photo → photography) holds five
objects. Every figure here holds out whole objects, never a random split:

- main split (the shipped model's): train = dog, elephant, person; validation = horse (epoch
  choice, temperature); test = giraffe (reported, never tuned on);
- LOO: for each object, train on the other four and test on it (fixed epochs, no validation).

Experiments (``--run``, several allowed; results are appended to ``--out`` as JSON lines and a
table is printed):

- ``lite0-linear``: EfficientNet-Lite0 (ImageNet, frozen) + softmax layer on pooled features.
- ``lite0-mlp``:    frozen Lite0 + a 256-unit ReLU layer + softmax.
- ``lite0-ft11``:   Lite0 with blocks 11–15 + head conv fine-tuned (an earlier shipped recipe).
- ``lite0-ft8``:    Lite0 with blocks 8–15 + head conv fine-tuned.
- ``mnv3``:         MobileNetV3-Small from scratch (no pretrained weights offline).
- ``loo-linear`` / ``loo-ft11``: LOO with the frozen-feature linear head / the fine-tuned recipe.
- ``loo-ft``:       LOO with fine-tuning from ``--fine-tune-from`` with ``--skip-blocks`` left
  out (the shipped recipe: ``--fine-tune-from 8 --skip-blocks 10 13 14 --epochs 6``).

``--objects`` restricts LOO to some held-out objects (the shipped model is the giraffe fold).

Lite0 experiments share one cache of frozen lower-block features (blocks 0–7) of every PACS
image: the clean image plus ``--copies`` augmented copies (the model's own augmentation
layers), written as ``.npy`` under ``--cache``. Runs on CPU; measured on 2 shared cores: 1 minute
for the clean copy and about 3 minutes per augmented copy at 160 px, about twice that at 224 px.
The figures in model/MODEL_CARD.md came from::

    python bench/compare_architectures.py --cache /tmp/feats --size 160 --copies 3 \
        --run lite0-linear lite0-mlp lite0-ft11 loo-linear
    python bench/compare_architectures.py --cache /tmp/feats224 --size 224 --copies 0 --run lite0-linear loo-linear
    python bench/compare_architectures.py --cache /tmp/feats --size 160 --run mnv3 --epochs 8
    python bench/compare_architectures.py --cache /tmp/feats224c3 --size 224 --copies 3 --run loo-ft \
        --fine-tune-from 8 --skip-blocks 10 13 14 --epochs 6 --objects dog horse person elephant \
        --out bench/results/loo_ft.jsonl      # the shipped recipe; ~15 min features + ~9 min a fold

Usage::

    python bench/compare_architectures.py --size 160 --run lite0-linear lite0-mlp lite0-ft11 loo-ft11
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent

from pacs_tree import DEFAULT_PACS, DEPICTION_TO_MEDIUM, SPLITS  # noqa: E402

from modbot.classify import apply_temperature  # noqa: E402
from modbot.ml.architectures import build_classifier, lite0_lower, lite0_upper  # noqa: E402
from modbot.ml.augment import augmentation_model  # noqa: E402
from modbot.ml.data import load_split  # noqa: E402
from modbot.ml.metrics import classification_report, expected_calibration_error, fit_temperature  # noqa: E402
from modbot.ml.tf import load_tensorflow  # noqa: E402  (importing it does not import TensorFlow)
from modbot.ml.training import lite0_features, lite0_pooled, predict_in_batches, train_on_copies  # noqa: E402

LABELS = ["digital", "painting", "drawing", "photography"]  # MEDIA order, as train_model writes
OBJECTS = ("dog", "elephant", "giraffe", "horse", "person")


def load_pacs(pacs: Path, size: int, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All PACS images preprocessed to ``size`` px (uint8), labels (index into LABELS) and
    object names; cached as .npy."""
    files, y, obj = [], [], []
    for depiction, medium in DEPICTION_TO_MEDIUM.items():
        for o in OBJECTS:
            for f in sorted((pacs / depiction / o).iterdir()):
                files.append(f)
                y.append(LABELS.index(medium))
                obj.append(o)
    xf = cache / f"x{size}.npy"
    if xf.is_file():
        x = np.load(xf)
    else:
        x, _, skipped = load_split({"all": files}, ["all"], (size, size), pacs)
        if skipped:
            raise SystemExit(f"unreadable PACS files: {skipped}")
        np.save(xf, x)
    return x, np.array(y), np.array(obj)


def lower_features(x: np.ndarray, size: int, copies: int, cache: Path, seed: int = 0) -> list[np.ndarray]:
    """Frozen Lite0 block-0–7 features: clean (copy 0) + ``copies`` augmented; cached."""
    out = []
    lower = augment = None
    for k in range(copies + 1):
        f = cache / f"f{size}_c{k}.npy"
        if not f.is_file():
            if lower is None:
                lower, augment = lite0_lower((size, size)), augmentation_model((size, size), seed=seed)
            t = time.monotonic()
            np.save(f, lite0_features(x, lower, augment=augment if k else None))
            print(f"cached copy {k} in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        out.append(np.load(f, mmap_mode="r"))
    return out


def pooled(copies: list[np.ndarray], size: int, cache: Path) -> list[np.ndarray]:
    """Frozen-backbone 1280-d embeddings of each copy (pretrained blocks 8–15 + head); cached."""
    out = []
    for k, feats in enumerate(copies):
        f = cache / f"p{size}_c{k}.npy"
        if not f.is_file():
            np.save(f, lite0_pooled(np.asarray(feats)))
        out.append(np.load(f))
    return out


def report(probs: np.ndarray, y: np.ndarray, temperature: float | None = None) -> dict[str, Any]:
    rep = classification_report([LABELS[i] for i in y], [LABELS[i] for i in probs.argmax(1)], LABELS)
    rep["ece"] = expected_calibration_error(probs, y)
    if temperature is not None:
        rep["ece_calibrated"] = expected_calibration_error(apply_temperature(probs, temperature), y)
        rep["temperature"] = temperature
    return rep


def head_model(dim: int, hidden: int | None, seed: int) -> Any:
    import keras

    inputs = keras.Input(shape=(dim,))
    x = keras.layers.Dropout(0.2, seed=seed)(inputs)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu")(x)
        x = keras.layers.Dropout(0.2, seed=seed + 1)(x)
    return keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax", name="medium")(x))


def run_one(name: str, train: np.ndarray, val: np.ndarray | None, test: np.ndarray, y: np.ndarray,
            feats: list[np.ndarray], emb: list[np.ndarray] | None, size: int, epochs: int | None,
            seed: int) -> dict[str, Any]:
    """Train experiment ``name`` on index arrays ``train`` (validation ``val``: may be None)
    and score ``test``. Returns the result row."""
    t0 = time.monotonic()
    y_val = y[val] if val is not None else np.zeros((0,), dtype=np.int64)
    if name in ("lite0-linear", "lite0-mlp", "loo-linear"):
        hidden = 256 if name == "lite0-mlp" else None
        model = head_model(emb[0].shape[1], hidden, seed)
        x_val = emb[0][val] if val is not None else np.zeros((0, emb[0].shape[1]))
        fit = train_on_copies(model, [e[train] for e in emb], y[train], x_val, y_val, LABELS,
                              epochs=epochs or 30, learning_rate=1e-3, seed=seed)
        p_val = predict_in_batches(model, x_val) if val is not None else None
        p_test = predict_in_batches(model, emb[0][test])
        detail = {"head": "dense softmax" if not hidden else f"dense {hidden} relu + softmax",
                  "trainable_params": int(model.count_params())}
    elif name in ("lite0-ft11", "lite0-ft8", "loo-ft11", "loo-ft"):
        start = 8 if name == "lite0-ft8" else 11
        skip: tuple[int, ...] = ()
        if name == "loo-ft":
            start, skip = ARGS.fine_tune_from, tuple(ARGS.skip_blocks)
        upper = lite0_upper(feats[0].shape[1:], len(LABELS), fine_tune_from=start, seed=seed, skip_blocks=skip)
        x_val = np.asarray(feats[0][val]) if val is not None else np.zeros((0, *feats[0].shape[1:]), np.float16)
        fit = train_on_copies(upper, [np.asarray(f[train]) for f in feats], y[train], x_val, y_val, LABELS,
                              epochs=epochs or 8, learning_rate=3e-4, seed=seed)
        p_val = predict_in_batches(upper, x_val) if val is not None else None
        p_test = predict_in_batches(upper, np.asarray(feats[0][test]))
        detail = {"fine_tune_from": start, "skip_blocks": list(skip),
                  "trainable_params": int(sum(np.prod(w.shape) for w in upper.trainable_weights))}
    elif name == "mnv3":
        x = np.load(Path(ARGS.cache) / f"x{size}.npy")
        model = build_classifier("mobilenet_v3_small", len(LABELS), (size, size), seed=seed, weights=None)
        fit = train_on_copies(model, [x[train].astype(np.float32)], y[train], x[val].astype(np.float32), y_val,
                              LABELS, epochs=epochs or 10, learning_rate=1e-3, seed=seed)
        p_val = predict_in_batches(model, x[val])
        p_test = predict_in_batches(model, x[test])
        detail = {"weights": None, "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights))}
    else:
        raise SystemExit(f"unknown experiment {name}")
    temperature = fit_temperature(p_val, y_val) if p_val is not None and len(y_val) else None
    row = {"experiment": name, "size": size, "seed": seed, "epochs": epochs, "best_epoch": fit["best_epoch"],
           "history": fit["history"], "seconds": round(time.monotonic() - t0, 1), **detail,
           "test": report(p_test, y[test], temperature)}
    if p_val is not None:
        row["validation"] = report(p_val, y_val, temperature)
    return row


def summary_line(row: dict[str, Any]) -> str:
    t = row["test"]
    rec = " ".join(f"{m[:5]} {t['per_class'][m]['recall']:.3f}" for m in LABELS)
    val = row.get("validation")
    v = f"val F1 {val['macro_f1']:.4f} | " if val else ""
    return (f"{row['experiment']:<14} {row.get('held_out', 'giraffe'):<9} {v}test acc {t['accuracy']:.4f} "
            f"F1 {t['macro_f1']:.4f} | recall {rec} | {row['seconds']} s")


ARGS: argparse.Namespace


def main(argv: list[str] | None = None) -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pacs", default=str(DEFAULT_PACS))
    parser.add_argument("--cache", default="/tmp/modbot-pacs-cache", help="folder for cached arrays")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--copies", type=int, default=3, help="augmented copies per image")
    parser.add_argument("--epochs", type=int, default=None, help="default: per experiment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", nargs="+", required=True)
    parser.add_argument("--fine-tune-from", type=int, default=11, help="loo-ft: first fine-tuned block")
    parser.add_argument("--skip-blocks", type=int, nargs="*", default=[], help="loo-ft: residual blocks left out")
    parser.add_argument("--objects", nargs="+", choices=OBJECTS, default=list(OBJECTS),
                        help="LOO: the held-out objects to run (default: all five)")
    parser.add_argument("--out", default="bench/results/compare.jsonl")
    ARGS = args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    load_tensorflow()
    x, y, obj = load_pacs(Path(args.pacs), args.size, cache)
    needs_feats = any(r.startswith(("lite0", "loo")) for r in args.run)
    feats = lower_features(x, args.size, args.copies, cache, args.seed) if needs_feats else []
    needs_emb = any(r in ("lite0-linear", "lite0-mlp", "loo-linear") for r in args.run)
    emb = pooled(feats, args.size, cache) if needs_emb else None
    in_split = {s: np.flatnonzero(np.isin(obj, objs)) for s, objs in SPLITS.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.run:
        if name.startswith("loo-"):
            rows = []
            for held in args.objects:
                train, test = np.flatnonzero(obj != held), np.flatnonzero(obj == held)
                row = run_one(name, train, None, test, y, feats, emb, args.size, args.epochs, args.seed)
                row["held_out"] = held
                rows.append(row)
                print(summary_line(row), flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            f1 = [r["test"]["macro_f1"] for r in rows]
            per_object = ", ".join(f"{r['held_out']} {r['test']['macro_f1']:.4f}" for r in rows)
            print(f"{name}: LOO macro-F1 mean {np.mean(f1):.4f}, min {np.min(f1):.4f} ({per_object})", flush=True)
        else:
            row = run_one(name, in_split["train"], in_split["val"], in_split["test"], y, feats, emb,
                          args.size, args.epochs, args.seed)
            print(summary_line(row), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
