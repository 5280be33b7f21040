"""Train a medium classifier on a folder-per-medium image tree; write a model directory.

:func:`train_model` reads the trees (:mod:`modbot.ml.data`), trains one of the named
architectures (:mod:`modbot.ml.architectures`), and writes ``model.keras``, ``labels.json``
(with the calibration temperature, :func:`modbot.ml.metrics.fit_temperature`),
``metrics.json``, a generated ``MODEL_CARD.md`` (:mod:`modbot.ml.card`) and a checked LiteRT
export ``model.tflite`` (:mod:`modbot.ml.export`); see :mod:`modbot.classify` for the layout.

The shipped recipe, ``lite0``, caches features: the frozen lower blocks of EfficientNet-Lite0
run once per image — on the clean image and on a few copies augmented by the model's own
augmentation layers (:func:`lite0_features`) — and the top blocks, head conv and softmax layer
are fine-tuned on those cached features (:func:`train_on_copies`), one random copy per image
and epoch. The trained layers are then put back into one Keras model that holds the
augmentation layers (inactive at inference), the ``(x − 127)/128`` scaling, the backbone and
the head. The other architectures are trained end to end.

TensorFlow is imported by the functions that need it, not when this module is imported.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from modbot.classify import (
    CARD_FILE,
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    TFLITE_FILE,
    LiteRTClassifier,
    apply_temperature,
)
from modbot.ml.architectures import (
    CACHE_BLOCK,
    DEFAULT_FINE_TUNE_FROM,
    DEFAULT_SKIP_BLOCKS,
    Architecture,
    assemble_lite0,
    build_classifier,
    get_architecture,
    lite0_layers_from,
    lite0_lower,
    lite0_upper,
)
from modbot.ml.augment import augmentation_model
from modbot.ml.backbones import check_skip_blocks, load_lite0_weights
from modbot.ml.card import render_model_card
from modbot.ml.data import (
    TrainingDataError,
    class_counts,
    load_eval_split,
    load_split,
    scan_tree,
)
from modbot.ml.export import (
    INT8_CALIBRATION_IMAGES,
    QUANTIZATIONS,
    deflate_keras_file,
    export_tflite,
    write_json,
)
from modbot.ml.keras_classifier import KerasClassifier
from modbot.ml.metrics import (
    ECE_BINS,
    classification_report,
    expected_calibration_error,
    fit_flag_thresholds,
    fit_temperature,
)
from modbot.ml.tf import load_keras, load_tensorflow

log = logging.getLogger("modbot.ml.training")

#: Defaults of :func:`train_model`.
DEFAULT_BATCH_SIZE = 32
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_AUG_COPIES = 3


# ---- feature caching and the training loop


def lite0_features(x: np.ndarray, lower: Any, *, augment: Any = None, batch_size: int = 64,
                   progress: Any = None) -> np.ndarray:
    """Run ``lower`` (:func:`modbot.ml.architectures.lite0_lower`) over uint8 images ``x``
    ``(N, H, W, 3)``, through ``augment`` (training mode) first when given. Returns float16
    ``(N, h, w, c)``. ``progress(done, total)`` is called after each batch when given. Raises
    ``ValueError`` for no images."""
    tf = load_tensorflow()

    @tf.function(reduce_retracing=True)
    def run(batch: Any) -> Any:
        batch = tf.cast(batch, tf.float32)
        if augment is not None:
            batch = augment(batch, training=True)
        return tf.cast(lower(batch, training=False), tf.float16)

    out = None
    for i in range(0, len(x), batch_size):
        f = np.asarray(run(x[i : i + batch_size]))
        if out is None:
            out = np.empty((len(x), *f.shape[1:]), dtype=np.float16)
        out[i : i + len(f)] = f
        if progress is not None:
            progress(min(i + batch_size, len(x)), len(x))
    if out is None:
        raise ValueError("no images")
    return out


def lite0_pooled(features: np.ndarray, *, cache_block: int = CACHE_BLOCK, batch_size: int = 128) -> np.ndarray:
    """Frozen-backbone embeddings: run the pretrained blocks ``cache_block`` … 15 + head conv +
    global average pooling over cached lower features ``(N, h, w, c)``. Returns float32
    ``(N, 1280)``."""
    tf, keras = load_tensorflow(), load_keras()
    inputs = keras.Input(shape=features.shape[1:], name="lite0_features")
    x = lite0_layers_from(inputs, first_block=cache_block, stem=False, head=True, trainable_bn=False)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(x))
    load_lite0_weights(model, "imagenet")
    run = tf.function(lambda b: model(tf.cast(b, tf.float32), training=False), reduce_retracing=True)
    return np.concatenate([np.asarray(run(features[i : i + batch_size]))
                           for i in range(0, len(features), batch_size)])


def predict_in_batches(model: Any, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """``model`` (inference mode) over ``x`` ``(N, ...)`` in batches; returns float64
    probabilities ``(N, k)``."""
    tf = load_tensorflow()
    run = tf.function(lambda b: model(tf.cast(b, tf.float32), training=False), reduce_retracing=True)
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]))
    return np.concatenate([np.asarray(run(x[i : i + batch_size]), dtype=np.float64)
                           for i in range(0, len(x), batch_size)])


def _epoch_inputs(copies: Sequence[np.ndarray], order: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """float32 inputs of one epoch: at position ``j`` the image ``order[j]`` taken from copy
    ``pick[order[j]]``."""
    x_ep = np.empty((len(order), *copies[0].shape[1:]), dtype=np.float32)
    chosen = pick[order]  # the copy used for the image at each position of this epoch
    for k, arr in enumerate(copies):
        positions = np.flatnonzero(chosen == k)
        x_ep[positions] = arr[order[positions]]
    return x_ep


def train_on_copies(
    model: Any,
    copies: Sequence[np.ndarray],
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    labels: Sequence[str],
    *,
    epochs: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = 3e-4,
    seed: int = 0,
    verbose: int = 0,
) -> dict[str, Any]:
    """Train ``model`` (its trainable part) on precomputed inputs, one augmented copy per image
    and epoch.

    ``copies`` are K arrays of equal shape ``(N, ...)``: copy 0 the clean images' inputs,
    copies 1… augmented ones; each epoch takes, for every image, one copy at random (seeded).
    ``y`` int ``(N,)`` indices into ``labels``. Adam with ``learning_rate`` cosine-decayed to 0
    over all epochs, sparse cross-entropy, class weights ``n / (k · n_class)``. After each epoch
    the validation set (``x_val``, ``y_val``; may be empty) is scored and the weights of the
    epoch with the best validation macro-F1 are restored at the end (without validation: the
    last epoch's). Returns ``{"best_epoch", "history": [{"epoch", "loss", "accuracy",
    "val_accuracy", "val_macro_f1"}], "class_weight": {index: weight}}``.
    """
    keras = load_keras()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(y)
    steps = math.ceil(n / batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps * epochs)),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    counts = np.bincount(y, minlength=len(labels))
    class_weight = {i: float(n / (len(labels) * c)) for i, c in enumerate(counts) if c > 0}
    best: tuple[float, int, list[Any]] | None = None
    history: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        pick = rng.integers(0, len(copies), size=n)
        order = rng.permutation(n)
        h = model.fit(_epoch_inputs(copies, order, pick), y[order], batch_size=batch_size, epochs=1,
                      class_weight=class_weight, shuffle=False, verbose=verbose)
        row: dict[str, Any] = {"epoch": epoch, "loss": round(float(h.history["loss"][-1]), 4),
                               "accuracy": round(float(h.history["accuracy"][-1]), 4)}
        if len(y_val):
            pred = predict_in_batches(model, x_val).argmax(axis=1)
            rep = classification_report([labels[i] for i in y_val], [labels[i] for i in pred], labels)
            row.update(val_accuracy=round(rep["accuracy"], 4), val_macro_f1=round(rep["macro_f1"], 4))
            if best is None or rep["macro_f1"] > best[0]:
                best = (rep["macro_f1"], epoch, model.get_weights())
            log.info("epoch %d: loss %.4f, val accuracy %.4f, macro-F1 %.4f",
                     epoch, row["loss"], rep["accuracy"], rep["macro_f1"])
        history.append(row)
    if best is not None:
        model.set_weights(best[2])
    return {"best_epoch": best[1] if best is not None else epochs, "history": history,
            "class_weight": class_weight}


# ---- train_model, step by step


@dataclass
class _Options:
    """The checked arguments of :func:`train_model`."""

    arch: Architecture
    size: tuple[int, int]
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    fine_tune_from: int | None
    aug_copies: int
    weights: Any
    skip_blocks: tuple[int, ...]
    quantize: str
    verbose: int


@dataclass
class _Splits:
    """Preprocessed uint8 images ``(N, H, W, 3)`` and int64 label indices of each split."""

    labels: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    split: str
    info: dict[str, Any] = field(default_factory=dict)


#: The share of correctly stated validation images a fitted judge threshold may flag, when the
#: caller gives none (the packaged ``[judge] false_flag_budget``).
DEFAULT_FALSE_FLAG_BUDGET = 0.02


def _check_options(arch: str, image_size: int | tuple[int, int] | None, epochs: int | None, batch_size: int,
                   val_fraction: float, learning_rate: float | None, aug_copies: int, export: bool,
                   quantize: str | None, skip_blocks: Sequence[int], **rest: Any) -> _Options:
    """Arguments of :func:`train_model` with the architecture's defaults filled in; raises
    ``ValueError`` for a bad one."""
    spec = get_architecture(arch)
    image_size = spec.image_size if image_size is None else image_size
    epochs = spec.epochs if epochs is None else epochs
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"image_size must be at least 8 px, got {image_size!r}")
    if epochs < 1 or batch_size < 1 or aug_copies < 0:
        raise ValueError("epochs and batch_size must be >= 1, aug_copies >= 0")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    quantize = quantize or spec.quantize
    if export and quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, not {quantize!r}")
    if quantize == "int8" and arch != "lite0":
        raise ValueError("int8 export is implemented for arch='lite0' only")
    return _Options(arch=spec, size=size, epochs=epochs, batch_size=batch_size,
                    learning_rate=spec.learning_rate if learning_rate is None else learning_rate,
                    aug_copies=aug_copies, quantize=quantize, skip_blocks=check_skip_blocks(skip_blocks), **rest)


def _load_training_tree(data_root: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """``(x, y, labels, skipped)`` of the training tree: labels are the media with at least one
    readable image (MEDIA order); raises ``TrainingDataError`` for fewer than two."""
    train_files = scan_tree(data_root)
    x_all, y_all, skipped = load_split(train_files, list(train_files), size, data_root)
    present = [m for i, m in enumerate(train_files) if (y_all == i).any()]
    if len(present) < 2:
        raise TrainingDataError(f"{data_root}: need readable images of at least two media, found {present}")
    for m in train_files:
        if m not in present:
            log.warning("medium folder %s has no readable images; it is left out of the labels", m)
    remap = np.array([present.index(m) if m in present else -1 for m in train_files])
    return x_all, remap[y_all], present, skipped


def _stratified_split(y: np.ndarray, n_labels: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask ``(N,)`` of a seeded random ``fraction`` of each class (the validation set)."""
    val_idx: list[int] = []
    for i in range(n_labels):
        idx = np.flatnonzero(y == i)
        rng.shuffle(idx)
        val_idx.extend(idx[: int(round(len(idx) * fraction))].tolist())
    mask = np.zeros(len(y), dtype=bool)
    mask[val_idx] = True
    return mask


def _load_splits(data_root: Path, val_dir: Any, test_dir: Any, size: tuple[int, int], val_fraction: float,
                 seed: int, rng: np.random.Generator) -> _Splits:
    """Read the training tree and the validation (a folder, or a split of the training tree)
    and test (optional) trees; see :func:`train_model`."""
    x_all, y_all, labels, skipped_train = _load_training_tree(data_root, size)
    info: dict[str, Any] = {}
    if val_dir is not None:
        x_train, y_train = x_all, y_all
        x_val, y_val, skipped_val = load_eval_split(Path(val_dir), labels, size, "validation")
        split = f"train = {data_root}; validation = {val_dir} (separate folder)"
        info["val"] = {"dir": str(val_dir), "counts": class_counts(y_val, labels), "skipped": skipped_val}
    else:
        mask = _stratified_split(y_all, len(labels), val_fraction, rng)
        x_train, y_train, x_val, y_val = x_all[~mask], y_all[~mask], x_all[mask], y_all[mask]
        split = (
            f"train/validation = stratified random {1 - val_fraction:.0%}/{val_fraction:.0%} split of "
            f"{data_root} (seed {seed}); near-duplicates make such validation figures optimistic"
        )
        info["val"] = {"dir": None, "counts": class_counts(y_val, labels), "skipped": []}
    info["train"] = {"dir": str(data_root), "counts": class_counts(y_train, labels), "skipped": skipped_train}
    x_test = y_test = None
    if test_dir is not None:
        x_test, y_test, skipped_test = load_eval_split(Path(test_dir), labels, size, "test")
        split += f"; test = {test_dir} (held out, evaluated once at the end)"
        info["test"] = {"dir": str(test_dir), "counts": class_counts(y_test, labels), "skipped": skipped_test}
    return _Splits(labels, x_train, y_train, x_val, y_val, x_test, y_test, split, info)


def _weights_note(weights: Any) -> str | None:
    """How ``weights`` is recorded in ``metrics.json``: ``"imagenet"``, a path, or ``None``."""
    return None if weights is None else str(weights)


def _train_lite0(opts: _Options, d: _Splits) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The two-stage Lite0 recipe (see :func:`train_model`): ``(whole model, fit result,
    training facts for metrics.json)``."""
    t0 = time.monotonic()
    lower = lite0_lower(opts.size, weights=opts.weights, skip_blocks=opts.skip_blocks)
    augment = augmentation_model(opts.size, seed=opts.seed)
    log.info("computing frozen Lite0 features: clean + %d augmented copies of %d images",
             opts.aug_copies, len(d.y_train))
    copies = [lite0_features(d.x_train, lower)]
    copies += [lite0_features(d.x_train, lower, augment=augment) for _ in range(opts.aug_copies)]
    f_val = lite0_features(d.x_val, lower) if len(d.y_val) else np.zeros((0, *copies[0].shape[1:]), np.float16)
    t_features = time.monotonic()
    upper = lite0_upper(copies[0].shape[1:], len(d.labels), fine_tune_from=opts.fine_tune_from,
                        weights=opts.weights, seed=opts.seed, skip_blocks=opts.skip_blocks)
    fit = train_on_copies(upper, copies, d.y_train, f_val, d.y_val, d.labels, epochs=opts.epochs,
                          batch_size=opts.batch_size, learning_rate=opts.learning_rate, seed=opts.seed,
                          verbose=opts.verbose)
    model = assemble_lite0(upper, opts.size, len(d.labels), seed=opts.seed, skip_blocks=opts.skip_blocks)
    facts = {"fine_tune_from": opts.fine_tune_from, "cache_block": CACHE_BLOCK, "aug_copies": opts.aug_copies,
             "skip_blocks": list(opts.skip_blocks), "weights": _weights_note(opts.weights),
             "feature_seconds": round(t_features - t0, 1),
             "trainable_params": int(sum(np.prod(w.shape) for w in upper.trainable_weights))}
    return model, fit, facts


def _train_end_to_end(opts: _Options, d: _Splits) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """An architecture with a builder (``cnn``, ``mobilenet_v3_small``), trained on the images:
    ``(model, fit result, training facts)``."""
    cnn = opts.arch.name == "cnn"
    model = build_classifier(opts.arch.name, len(d.labels), opts.size, seed=opts.seed,
                             weights=None if cnn else opts.weights)
    fit = train_on_copies(model, [d.x_train.astype(np.float32)], d.y_train, d.x_val.astype(np.float32), d.y_val,
                          d.labels, epochs=opts.epochs, batch_size=opts.batch_size,
                          learning_rate=opts.learning_rate, seed=opts.seed, verbose=opts.verbose)
    return model, fit, {"weights": None if cnn else _weights_note(opts.weights)}


def _save_model(model: Any, out: Path, labels: list[str], version: str, size: tuple[int, int]) -> dict[str, Any]:
    """Write ``model.keras`` (uncompiled, deflated) and ``labels.json`` (temperature 1) into
    ``out``, removing a stale ``model.tflite``; return the labels document."""
    keras = load_keras()
    out.mkdir(parents=True, exist_ok=True)
    if (out / TFLITE_FILE).exists():
        (out / TFLITE_FILE).unlink()
    # Save an uncompiled model sharing the trained layers: the optimizer's state would triple
    # the file for no use at inference.
    keras.Model(model.inputs, model.outputs, name=model.name).save(out / MODEL_FILE)
    deflate_keras_file(out / MODEL_FILE)
    labels_doc: dict[str, Any] = {
        "labels": labels,
        "version": version,
        "input_size": [size[0], size[1]],
        "input": "RGB uint8 0-255, centre-cropped and bicubic-resized by modbot.classify.preprocess",
        "temperature": 1.0,
    }
    write_json(out / LABELS_FILE, labels_doc)
    return labels_doc


def _evaluate(probs: np.ndarray | None, y: np.ndarray | None, labels: list[str],
              temperature: float) -> dict[str, Any] | None:
    """Classification report of uncalibrated ``probs`` ``(N, k)`` against ``y`` ``(N,)``, with
    the ECE before and after ``temperature``; ``None`` when there is nothing to score."""
    if probs is None or y is None or len(y) == 0:
        return None
    pred = probs.argmax(axis=1)
    rep = classification_report([labels[i] for i in y], [labels[i] for i in pred], labels)
    rep["ece_uncalibrated"] = expected_calibration_error(probs, y)
    rep["ece_calibrated"] = expected_calibration_error(apply_temperature(probs, temperature), y)
    return rep


def _calibrate_and_score(out: Path, labels_doc: dict[str, Any], d: _Splits, false_flag_budget: float) -> dict[str, Any]:
    """Reload ``out`` through :class:`KerasClassifier`, fit the temperature and the judge's
    thresholds (:func:`~modbot.ml.metrics.fit_flag_thresholds` at ``false_flag_budget``, on the
    calibrated probabilities) on the validation split, store both in ``labels.json``, and score
    validation and test: the metrics entries ``calibration``, ``judge``, ``validation`` and
    ``test``."""
    clf = KerasClassifier.load(out)
    raw_val = clf.predict_batch(d.x_val) if len(d.y_val) else np.zeros((0, len(d.labels)))
    raw_test = clf.predict_batch(d.x_test) if d.x_test is not None and len(d.y_test) else None
    temperature = fit_temperature(raw_val, d.y_val) if len(d.y_val) else 1.0
    labels_doc["temperature"] = round(temperature, 4)
    labels_doc["calibration"] = "temperature scaling fitted on the validation split (modbot.ml.metrics.fit_temperature)"
    t = labels_doc["temperature"]
    thresholds = (fit_flag_thresholds(apply_temperature(raw_val, t), d.y_val, d.labels, false_flag_budget)
                  if len(d.y_val) else {})
    judge = {"rule": "flag when p(stated) < threshold[stated] (calibrated probabilities)",
             **{m: round(v, 5) for m, v in thresholds.items()}, "fit_budget": false_flag_budget,
             "fitted_on": "validation split (modbot.ml.metrics.fit_flag_thresholds); on artists that are "
                          "in neither split expect more false flags (bench/realart/judge_budget.py)"}
    if thresholds:
        labels_doc["judge"] = judge
    write_json(out / LABELS_FILE, labels_doc)
    return {
        "calibration": {"temperature": t, "fitted_on": "validation", "ece_bins": ECE_BINS},
        "judge": judge if thresholds else None,
        "validation": _evaluate(raw_val, d.y_val, d.labels, t),
        "test": _evaluate(raw_test, d.y_test, d.labels, t) if d.x_test is not None else None,
    }


def _export_and_serve(out: Path, d: _Splits, quantize: str, temperature: float,
                      rng: np.random.Generator) -> dict[str, Any]:
    """Write and check ``model.tflite`` (:func:`export_tflite`; on up to 64 validation images,
    512 for int8, int8 ranges fitted on a seeded sample of training images); when it passes,
    score the test split through it. Returns the metrics entries ``tflite`` (and
    ``test_served``)."""
    n_check = 512 if quantize == "int8" else 64
    check_images = d.x_val[:n_check] if len(d.y_val) else d.x_train[:n_check]
    calib = d.x_train[np.sort(rng.permutation(len(d.x_train))[:INT8_CALIBRATION_IMAGES])]
    result: dict[str, Any] = {"tflite": export_tflite(out, check_images, quantize=quantize,
                                                      calibration_images=calib)}
    if result["tflite"]["passed"] and d.x_test is not None and len(d.y_test):
        # the served classifier returns calibrated probabilities; the report scores raw ones
        served = apply_temperature(LiteRTClassifier.load(out).predict_batch(d.x_test), 1.0 / temperature)
        result["test_served"] = _evaluate(served, d.y_test, d.labels, temperature)
    return result


def _training_record(opts: _Options, fit: dict[str, Any], facts: dict[str, Any], params: int,
                     labels: list[str]) -> dict[str, Any]:
    """The ``training`` entry of ``metrics.json``: settings, architecture facts, fit history."""
    return {"arch": opts.arch.name, "epochs": opts.epochs, "batch_size": opts.batch_size,
            "learning_rate": opts.learning_rate, "schedule": "Adam, cosine decay to 0", "seed": opts.seed,
            **facts, "best_epoch": fit["best_epoch"], "history": fit["history"], "params": params,
            "class_weight": {labels[i]: round(w, 4) for i, w in fit["class_weight"].items()}}


def train_model(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    arch: str = "lite0",
    image_size: int | tuple[int, int] | None = None,
    epochs: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    val_dir: str | os.PathLike[str] | None = None,
    test_dir: str | os.PathLike[str] | None = None,
    version: str | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    learning_rate: float | None = None,
    fine_tune_from: int | None = DEFAULT_FINE_TUNE_FROM,
    aug_copies: int = DEFAULT_AUG_COPIES,
    weights: Any = "imagenet",
    skip_blocks: Sequence[int] = DEFAULT_SKIP_BLOCKS,
    export: bool = True,
    quantize: str | None = None,
    verbose: int = 2,
    false_flag_budget: float = DEFAULT_FALSE_FLAG_BUDGET,
) -> dict[str, Any]:
    """Train on ``data_dir`` (folder per medium) and write a model directory to ``out_dir``.

    - Labels: the media folders of ``data_dir`` with a readable image, in ``MEDIA`` order
      (unreadable images: skipped, logged, listed in ``metrics.json``).
    - Validation: ``val_dir`` (same layout; its media must be among the labels), else a
      stratified random ``val_fraction`` of ``data_dir`` (seeded; near-duplicates make such a
      split optimistic). The epoch with the best validation macro-F1 is kept and the
      calibration temperature fitted on it, then the judge's per-medium thresholds
      (``labels.json`` ``judge``): each the largest probability that flags at most
      ``false_flag_budget`` (0–1; ``[judge] false_flag_budget``) of the correctly stated
      validation images of its medium. ``test_dir`` (optional) is evaluated once, at the end.
    - ``arch`` (:data:`modbot.ml.architectures.ARCHITECTURES`): ``lite0`` (default, the shipped
      recipe) is EfficientNet-Lite0 with ``weights`` (``"imagenet"``, a ``.pth`` path, or
      ``None``); blocks below ``CACHE_BLOCK`` are frozen and run on the clean image and on
      ``aug_copies`` augmented copies; blocks ``fine_tune_from`` … 15, head conv and softmax are
      trained on those features (``fine_tune_from=None``: the softmax only), then put back into
      the whole model; residual blocks ``skip_blocks`` are left out. ``mobilenet_v3_small``
      (``weights`` ``None`` or ``"imagenet"``) and ``cnn`` are trained end to end.
      Adam with cosine-decayed ``learning_rate``, class weights ``n / (k · n_class)``, ``epochs``
      passes of ``batch_size``, Keras seeded with ``seed``, ``verbose`` for ``keras.Model.fit``;
      ``learning_rate``, ``epochs``, ``image_size`` (int or ``(H, W)`` px): the arch's defaults.
    - ``version`` defaults to ``<arch><H>-<UTC timestamp>``. ``export``: also write and check
      ``model.tflite`` (``quantize``: ``QUANTIZATIONS``, default the architecture's;
      :func:`modbot.ml.export.export_tflite`); when it passes, the test split is also scored
      through it (``test_served``).

    Writes ``model.keras``, ``labels.json``, ``metrics.json``, ``MODEL_CARD.md`` (and
    ``model.tflite``) into ``out_dir`` (created; files overwritten); returns the metrics dict
    (as in ``metrics.json``). Raises ``TrainingDataError`` for an unusable tree (unknown medium
    folder, < 2 media with images, validation/test media the model cannot predict),
    ``ValueError`` for bad arguments, ``ModelError`` when pretrained weights are missing.
    """
    t_start = time.monotonic()
    if not 0.0 <= false_flag_budget <= 1.0:
        raise ValueError(f"false_flag_budget must be 0-1, got {false_flag_budget}")
    opts = _check_options(arch, image_size, epochs, batch_size, val_fraction, learning_rate, aug_copies, export,
                          quantize, skip_blocks, seed=seed, fine_tune_from=fine_tune_from, weights=weights,
                          verbose=verbose)
    rng = np.random.default_rng(seed)
    d = _load_splits(Path(data_dir), val_dir, test_dir, opts.size, val_fraction, seed, rng)
    t_loaded = time.monotonic()
    log.info("loaded %d training, %d validation images in %.0f s", len(d.y_train), len(d.y_val), t_loaded - t_start)
    tf, keras = load_tensorflow(), load_keras()
    keras.utils.set_random_seed(seed)
    model, fit, facts = (_train_lite0 if arch == "lite0" else _train_end_to_end)(opts, d)
    t_trained = time.monotonic()
    training = _training_record(opts, fit, facts, int(model.count_params()), d.labels)
    version = version or f"{arch}{opts.size[0]}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    out = Path(out_dir)
    labels_doc = _save_model(model, out, d.labels, version, opts.size)
    metrics: dict[str, Any] = {
        "version": version, "labels": d.labels, "input_size": list(opts.size),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "split": d.split,
        "data": d.info, "training": training, **_calibrate_and_score(out, labels_doc, d, false_flag_budget), "seconds": {},
        "software": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    if export:
        metrics.update(_export_and_serve(out, d, opts.quantize, labels_doc["temperature"], rng))
    metrics["seconds"] = {"load_data": round(t_loaded - t_start, 1), "train": round(t_trained - t_loaded, 1),
                          "total": round(time.monotonic() - t_start, 1)}
    write_json(out / METRICS_FILE, metrics)
    (out / CARD_FILE).write_text(render_model_card(metrics), encoding="utf-8")
    return metrics
