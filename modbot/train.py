"""Train a medium classifier on a folder-per-medium image tree; write a model directory.

Layout of a training tree: top-level folders are canonical media (``modbot.domain.MEDIA``),
images lie at any depth below them (symlinks followed)::

    DATA_DIR/painting/.../*.jpg   DATA_DIR/drawing/.../*.png   ...

:func:`train_model` writes ``model.keras``, ``labels.json``, ``metrics.json`` and a generated
``MODEL_CARD.md`` (see ``modbot.classify`` for the layout) and returns the metrics.
:func:`classification_report` (numpy only) computes accuracy, macro-F1, per-class
precision/recall/F1/support and the confusion matrix; ``modbot evaluate`` reuses it.

The network starts from the "Reddit Art Classifier" seed project
(MWilliamson96/RedditArtClassifier: Conv2D → MaxPool → Dense on 300 px images) and grows it
into four Conv2D/BatchNorm/ReLU/MaxPool blocks, global average pooling (which keeps texture
statistics such as stroke and line character, not layout), dropout and a softmax. Rescaling
and light augmentation (horizontal flip, small translation and zoom, contrast and
brightness) live inside the model; augmentation is inactive at inference.

TensorFlow is imported lazily (by :func:`train_model`), so the report helper is cheap to
import.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from modbot.classify import (
    CARD_FILE,
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    KerasClassifier,
    load_tensorflow,
    preprocess,
)
from modbot.domain import MEDIA
from modbot.errors import ModelError

log = logging.getLogger("modbot.train")

#: Suffixes taken as images. Files without a suffix (e.g. the sha256-named image cache) are
#: tried too; anything else (README.md, .json, ...) is ignored.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})

#: Defaults of :func:`train_model`.
DEFAULT_IMAGE_SIZE = 128
DEFAULT_EPOCHS = 12
DEFAULT_BATCH_SIZE = 32
DEFAULT_VAL_FRACTION = 0.15


class TrainingDataError(ModelError):
    """The training/validation/test tree cannot be used (unknown medium folder, no images)."""


# --------------------------------------------------------------------------------------------
# metrics (numpy only)


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    ``y_true`` and ``y_pred`` are equally long sequences of label names; ``labels`` fixes the
    order of ``per_class`` and of the confusion matrix rows (true) and columns (predicted).
    A label's precision (recall) is 0.0 when it was never predicted (never true), as with
    scikit-learn's ``zero_division=0``; F1 is 0.0 when precision + recall is 0.
    ``macro_f1`` is the unweighted mean F1 over labels that occur in ``y_true`` or ``y_pred``
    (a label absent from both has no meaningful F1 and is left out of the mean).

    Returns ``{"n", "accuracy", "macro_f1", "per_class": {label: {"precision", "recall",
    "f1", "support"}}, "confusion": {"labels": [...], "matrix": [[int]]}}``; floats are
    Python floats (``accuracy``/``macro_f1`` are ``None`` when ``n`` is 0).
    Raises ``ValueError`` on length mismatch or a value not in ``labels``.
    """
    labels = list(labels)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items, y_pred {len(y_pred)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"repeated labels: {labels}")
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    matrix = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        if t not in index or p not in index:
            raise ValueError(f"label not in {labels}: {t if t not in index else p!r}")
        matrix[index[t], index[p]] += 1
    n = int(matrix.sum())
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else None,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
    }


# --------------------------------------------------------------------------------------------
# data


def scan_tree(root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Candidate image files of a folder-per-medium tree: ``{medium: [paths, sorted]}``.

    Top-level folders must be canonical media; hidden files and folders are skipped; files
    at any depth are candidates when their suffix is in :data:`IMAGE_SUFFIXES` or they have
    no suffix; symlinked folders and files are followed. Media are returned in
    ``MEDIA`` order. Raises ``TrainingDataError`` if ``root`` is not a folder or a top-level
    folder is not a canonical medium.
    """
    root = Path(root)
    if not root.is_dir():
        raise TrainingDataError(f"data folder not found: {root}")
    found: dict[str, list[Path]] = {}
    for top in sorted(root.iterdir()):
        if top.name.startswith(".") or not top.is_dir():
            continue
        if top.name not in MEDIA:
            raise TrainingDataError(
                f"{top}: folder name {top.name!r} is not a canonical medium {list(MEDIA)}"
            )
        files: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                suffix = os.path.splitext(name)[1].lower()
                if not name.startswith(".") and (suffix in IMAGE_SUFFIXES or suffix == ""):
                    files.append(Path(dirpath) / name)
        found[top.name] = files
    return {m: found[m] for m in MEDIA if m in found}


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as an upright RGB Pillow image (EXIF orientation applied).

    Raises ``OSError`` (incl. ``PIL.UnidentifiedImageError``), ``ValueError`` or
    ``PIL.Image.DecompressionBombError`` when the file is not a usable image.
    """
    with Image.open(path) as im:
        im.load()
        upright = ImageOps.exif_transpose(im)
        return upright.copy() if upright is im else upright


def load_split(
    files: dict[str, list[Path]], labels: Sequence[str], size: tuple[int, int], root: Path
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode and preprocess the files of one split.

    Returns ``(x, y, skipped)``: ``x`` uint8 ``(N, H, W, 3)``, ``y`` int64 ``(N,)`` indices into
    ``labels``, ``skipped`` the paths (relative to ``root``) of files that could not be
    decoded; each skip is logged as a warning, never raised.
    """
    index = {label: i for i, label in enumerate(labels)}
    n_max = sum(len(v) for v in files.values())
    x = np.empty((n_max, size[0], size[1], 3), dtype=np.uint8)
    y = np.empty((n_max,), dtype=np.int64)
    skipped: list[str] = []
    n = 0
    for medium, paths in files.items():
        for path in paths:
            try:
                image = load_image(path)
                x[n] = preprocess([image], size)[0]
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                rel = os.path.relpath(path, root)
                log.warning("skipping unreadable image %s: %s", rel, exc)
                skipped.append(rel)
                continue
            y[n] = index[medium]
            n += 1
    return x[:n], y[:n], skipped


def _counts(y: np.ndarray, labels: Sequence[str]) -> dict[str, int]:
    return {label: int((y == i).sum()) for i, label in enumerate(labels)}


# --------------------------------------------------------------------------------------------
# model


def build_model(num_classes: int, image_size: tuple[int, int], *, seed: int = 0) -> Any:
    """The CNN: float32 RGB 0–255 ``(N, H, W, 3)`` in → softmax ``(N, num_classes)`` out.

    Augmentation (active only in training): horizontal flip, ±5 % translation, ±10 % zoom,
    contrast ±15 %, brightness ±10 % of 255. Then Rescaling(1/255), four blocks of
    Conv2D 3×3 (32, 64, 128, 256 filters) → BatchNorm → ReLU → MaxPool 2×2, global average
    pooling, dropout 0.3 and a Dense softmax layer.
    """
    load_tensorflow()
    import keras
    from keras import layers

    h, w = image_size
    inputs = keras.Input(shape=(h, w, 3), name="rgb")
    x = layers.RandomFlip("horizontal", seed=seed, name="aug_flip")(inputs)
    x = layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=seed + 1, name="aug_translate")(x)
    x = layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=seed + 2, name="aug_zoom")(x)
    x = layers.RandomContrast(0.15, seed=seed + 3, name="aug_contrast")(x)
    x = layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed + 4, name="aug_brightness")(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, seed=seed + 5, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="medium")(x)
    return keras.Model(inputs, outputs, name="modbot_medium_cnn")


def _predict_labels(model: Any, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    out = [np.asarray(model(x[i : i + batch_size].astype(np.float32), training=False))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).argmax(axis=1) if out else np.zeros((0,), dtype=np.int64)


# --------------------------------------------------------------------------------------------
# training


def train_model(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    image_size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    val_dir: str | os.PathLike[str] | None = None,
    test_dir: str | os.PathLike[str] | None = None,
    version: str | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    learning_rate: float = 1e-3,
    verbose: int = 2,
) -> dict[str, Any]:
    """Train on ``data_dir`` (folder per medium) and write a model directory to ``out_dir``.

    - Labels are the media folders of ``data_dir`` holding at least one readable image, in
      ``MEDIA`` order. Unreadable images are skipped with a logged warning and listed in
      ``metrics.json``.
    - Validation: ``val_dir`` (same layout; its media must be among the labels), else a
      stratified random ``val_fraction`` of ``data_dir`` (seeded; beware near-duplicates,
      which make such a split optimistic). The epoch with the best validation macro-F1 is
      kept. ``test_dir`` (optional) is evaluated once, at the end, with the kept model.
    - Training: Adam with cosine-decayed ``learning_rate``, class weights
      ``n / (k · n_class)`` against imbalance, ``epochs`` passes of ``batch_size`` images of
      ``image_size`` pixels (int or ``(H, W)``), Keras seeded with ``seed``. ``verbose`` is
      passed to ``keras.Model.fit`` (0 silent, 2 one line per epoch).
    - ``version`` defaults to ``cnn<H>-<UTC timestamp>``.

    Writes ``model.keras``, ``labels.json``, ``metrics.json`` and ``MODEL_CARD.md`` into
    ``out_dir`` (created if needed; those files are overwritten), reloads the directory with
    :class:`~modbot.classify.KerasClassifier` to check it, and returns the metrics dict
    (same content as ``metrics.json``). Raises ``TrainingDataError`` for an unusable tree
    (unknown medium folder, fewer than two media with images, validation/test media the
    model cannot predict) and ``ValueError`` for bad numeric arguments.
    """
    t_start = time.monotonic()
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"image_size must be at least 8 px, got {image_size!r}")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    data_root = Path(data_dir)
    out = Path(out_dir)

    # ---- data
    train_files = scan_tree(data_root)
    x_all, y_all, skipped_train = load_split(train_files, list(train_files), size, data_root)
    present = [m for i, m in enumerate(train_files) if (y_all == i).any()]
    if len(present) < 2:
        raise TrainingDataError(f"{data_root}: need readable images of at least two media, found {present}")
    for m in train_files:
        if m not in present:
            log.warning("medium folder %s has no readable images; it is left out of the labels", m)
    labels = present
    remap = np.array([labels.index(m) if m in labels else -1 for m in train_files])
    y_all = remap[y_all]

    rng = np.random.default_rng(seed)
    data_info: dict[str, Any] = {}
    if val_dir is not None:
        x_train, y_train = x_all, y_all
        x_val, y_val, skipped_val = _load_eval_split(Path(val_dir), labels, size, "validation")
        split = f"train = {data_root}; validation = {val_dir} (separate folder)"
        data_info["val"] = {"dir": str(val_dir), "counts": _counts(y_val, labels), "skipped": skipped_val}
    else:
        val_idx = []
        for i in range(len(labels)):
            idx = np.flatnonzero(y_all == i)
            rng.shuffle(idx)
            val_idx.extend(idx[: int(round(len(idx) * val_fraction))].tolist())
        mask = np.zeros(len(y_all), dtype=bool)
        mask[val_idx] = True
        x_train, y_train, x_val, y_val = x_all[~mask], y_all[~mask], x_all[mask], y_all[mask]
        split = (
            f"train/validation = stratified random {1 - val_fraction:.0%}/{val_fraction:.0%} split of "
            f"{data_root} (seed {seed}); near-duplicates make such validation figures optimistic"
        )
        data_info["val"] = {"dir": None, "counts": _counts(y_val, labels), "skipped": []}
    data_info["train"] = {"dir": str(data_root), "counts": _counts(y_train, labels), "skipped": skipped_train}
    if test_dir is not None:
        x_test, y_test, skipped_test = _load_eval_split(Path(test_dir), labels, size, "test")
        split += f"; test = {test_dir} (held out, evaluated once at the end)"
        data_info["test"] = {"dir": str(test_dir), "counts": _counts(y_test, labels), "skipped": skipped_test}
    t_loaded = time.monotonic()
    log.info("loaded %d training, %d validation images in %.0f s", len(y_train), len(y_val), t_loaded - t_start)

    # ---- model
    tf = load_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(len(labels), size, seed=seed)
    steps = math.ceil(len(y_train) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps * epochs))
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    counts = np.bincount(y_train, minlength=len(labels))
    class_weight = {i: float(len(y_train) / (len(labels) * c)) for i, c in enumerate(counts) if c > 0}
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(y_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda x, y: (tf.cast(x, tf.float32), y))
        .prefetch(2)
    )
    keeper = _KeepBest(x_val, y_val, labels, keras.callbacks.Callback)
    model.fit(dataset, epochs=epochs, class_weight=class_weight, callbacks=[keeper.callback],
              shuffle=False, verbose=verbose)  # the dataset shuffles itself
    keeper.restore(model)
    t_trained = time.monotonic()

    # ---- save, reload through the serving path, evaluate
    version = version or f"cnn{size[0]}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    # Save an uncompiled model sharing the trained layers: the optimizer's state would triple
    # the file for no use at inference. (keras.models.clone_model would copy the compile state.)
    keras.Model(model.inputs, model.outputs, name=model.name).save(out / MODEL_FILE)
    labels_doc = {
        "labels": labels,
        "version": version,
        "input_size": [size[0], size[1]],
        "input": "RGB uint8 0-255, centre-cropped and bicubic-resized by modbot.classify.preprocess",
    }
    (out / LABELS_FILE).write_text(json.dumps(labels_doc, indent=2) + "\n", encoding="utf-8")
    clf = KerasClassifier.load(out)

    def evaluate(x: np.ndarray, y: np.ndarray) -> dict[str, Any] | None:
        if len(y) == 0:
            return None
        pred = clf.predict_batch(x).argmax(axis=1)
        return classification_report([labels[i] for i in y], [labels[i] for i in pred], labels)

    metrics: dict[str, Any] = {
        "version": version,
        "labels": labels,
        "input_size": [size[0], size[1]],
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "data": data_info,
        "training": {
            "epochs": epochs,
            "best_epoch": keeper.best_epoch,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "schedule": "Adam, cosine decay to 0",
            "class_weight": {labels[i]: round(w, 4) for i, w in class_weight.items()},
            "seed": seed,
            "params": int(model.count_params()),
            "history": keeper.history,
        },
        "validation": evaluate(x_val, y_val),
        "test": evaluate(x_test, y_test) if test_dir is not None else None,
        "seconds": {},
        "software": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    t_end = time.monotonic()
    metrics["seconds"] = {
        "load_data": round(t_loaded - t_start, 1),
        "train": round(t_trained - t_loaded, 1),
        "total": round(t_end - t_start, 1),
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out / CARD_FILE).write_text(render_model_card(metrics), encoding="utf-8")
    return metrics


def _load_eval_split(
    root: Path, labels: Sequence[str], size: tuple[int, int], what: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    files = scan_tree(root)
    extra = [m for m, paths in files.items() if paths and m not in labels]
    if extra:
        raise TrainingDataError(f"{what} folder {root} has media the model is not trained on: {extra}")
    files = {m: p for m, p in files.items() if m in labels}
    x, y_local, skipped = load_split(files, list(files), size, root)
    remap = np.array([list(labels).index(m) for m in files], dtype=np.int64)
    return x, (remap[y_local] if len(y_local) else y_local), skipped


class _KeepBest:
    """Evaluates validation macro-F1 after each epoch and restores the best weights at the end."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, labels: Sequence[str], base: type) -> None:
        self.best_f1 = -1.0
        self.best_epoch: int | None = None
        self.best_weights: list[Any] | None = None
        self.history: list[dict[str, Any]] = []
        keeper = self

        class _Callback(base):  # type: ignore[misc, valid-type]
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                logs = logs or {}
                row: dict[str, Any] = {"epoch": epoch + 1}
                row.update({k: round(float(v), 4) for k, v in logs.items() if k in ("loss", "accuracy")})
                if len(y_val):
                    pred = _predict_labels(self.model, x_val)
                    rep = classification_report([labels[i] for i in y_val], [labels[i] for i in pred], labels)
                    row["val_accuracy"] = round(rep["accuracy"], 4)
                    row["val_macro_f1"] = round(rep["macro_f1"], 4)
                    if rep["macro_f1"] > keeper.best_f1:
                        keeper.best_f1 = rep["macro_f1"]
                        keeper.best_epoch = epoch + 1
                        keeper.best_weights = self.model.get_weights()
                    log.info("epoch %d: val accuracy %.4f, macro-F1 %.4f",
                             epoch + 1, rep["accuracy"], rep["macro_f1"])
                keeper.history.append(row)

        self.callback = _Callback()

    def restore(self, model: Any) -> None:
        if self.best_weights is not None:
            model.set_weights(self.best_weights)
        elif self.history:
            self.best_epoch = self.history[-1]["epoch"]


# --------------------------------------------------------------------------------------------
# model card


def _report_md(rep: dict[str, Any] | None) -> str:
    if rep is None:
        return "_not measured_\n"
    labels = rep["confusion"]["labels"]
    lines = [
        f"n = {rep['n']}, accuracy **{rep['accuracy']:.4f}**, macro-F1 **{rep['macro_f1']:.4f}**",
        "",
        "| medium | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label in labels:
        c = rep["per_class"][label]
        lines.append(f"| {label} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
              "| true \\ predicted | " + " | ".join(labels) + " |",
              "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, rep["confusion"]["matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def render_model_card(metrics: dict[str, Any], notes: str = "") -> str:
    """A Markdown model card from a metrics dict (as :func:`train_model` returns).

    ``notes`` (Markdown) is inserted after the summary: data provenance, caveats, how the
    model was made.
    """
    tr = metrics["training"]
    data = metrics["data"]
    labels = metrics["labels"]
    count_rows = "\n".join(
        f"| {name} | " + " | ".join(str(d["counts"].get(m, 0)) for m in labels)
        + f" | {sum(d['counts'].values())} | {len(d.get('skipped') or [])} |"
        for name, d in (("train", data.get("train")), ("validation", data.get("val")), ("test", data.get("test")))
        if d is not None
    )
    weights = ", ".join(f"{k} {v}" for k, v in tr["class_weight"].items())
    software = ", ".join(f"{k} {v}" for k, v in metrics["software"].items())
    history = "\n".join(
        f"| {h['epoch']} | {h.get('loss', '')} | {h.get('accuracy', '')} | "
        f"{h.get('val_accuracy', '')} | {h.get('val_macro_f1', '')} |"
        for h in tr["history"]
    )
    return f"""# Model card: {metrics['version']}

Medium classifier for modbot. Labels (output order): {', '.join(labels)}.
Input {metrics['input_size'][0]}×{metrics['input_size'][1]} RGB; {tr['params']:,} parameters.
{notes}
## Data and split

{metrics['split']}

| split | {' | '.join(labels)} | total | unreadable (skipped) |
|---|{'---|' * (len(labels) + 2)}
{count_rows}

## Training

{tr['epochs']} epochs, batch {tr['batch_size']}, learning rate {tr['learning_rate']} ({tr['schedule']}),
class weights ({weights}), seed {tr['seed']}. Kept epoch {tr['best_epoch']} (best validation macro-F1).
Took {metrics['seconds'].get('total', '?')} s in all ({software}).

| epoch | loss | accuracy | val accuracy | val macro-F1 |
|---|---|---|---|---|
{history}

## Validation

{_report_md(metrics['validation'])}
## Test (held out)

{_report_md(metrics['test'])}"""
