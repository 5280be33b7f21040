"""The medium classifiers modbot can train, by name, and their Keras builders.

A small registry in the manner of ``timm``: each :class:`Architecture` names a model and
carries its training defaults; :func:`get_architecture` looks one up and
:func:`build_classifier` builds one by name. Compared in ``bench/compare_architectures.py`` and
``model/MODEL_CARD.md``:

- ``lite0`` (the shipped recipe): EfficientNet-Lite0 pretrained on ImageNet
  (:mod:`modbot.ml.backbones`). On a 2-core CPU a whole fine-tune is too slow, so it is built
  in parts: the frozen lower blocks (:func:`lite0_lower`) run once per image, the top blocks,
  head conv and softmax (:func:`lite0_upper`) are fine-tuned on those cached features, and
  :func:`assemble_lite0` puts the trained layers back into one served model.
- ``mobilenet_v3_small``: ``keras.applications.MobileNetV3Small``, end to end (from scratch
  here: Keras cannot download its ImageNet weights offline).
- ``cnn``: the "Reddit Art Classifier" seed project's small CNN (MWilliamson96/
  RedditArtClassifier: Conv2D → MaxPool → Dense on 300 px images) grown into four
  Conv2D/BatchNorm/ReLU/MaxPool blocks (:func:`build_model`).

Every model takes float32 RGB 0–255 ``(N, H, W, 3)`` and returns softmax probabilities
``(N, num_classes)``, with its training augmentation inside (:mod:`modbot.ml.augment`; the
``cnn`` keeps its lighter original set). Keras is imported when a builder is called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modbot.ml.augment import apply_layers, augmentation_layers
from modbot.ml.backbones import lite0_layers_from, lite0_scaling, load_lite0_weights, mobilenet_v3_small
from modbot.ml.tf import load_keras

#: Blocks of EfficientNet-Lite0 below CACHE_BLOCK are frozen and run once per (augmented) image;
#: fine-tuning starts at ``fine_tune_from`` (>= CACHE_BLOCK; the blocks in between stay frozen).
CACHE_BLOCK = 8
DEFAULT_FINE_TUNE_FROM = 8
DEFAULT_HEAD_DROPOUT = 0.2
#: Residual blocks of Lite0 left out of the shipped recipe (see ``lite0_layers_from``): 0.28×
#: fewer multiply-adds than the whole network, and on the held-out object no less accurate
#: (model/MODEL_CARD.md, comparison).
DEFAULT_SKIP_BLOCKS: tuple[int, ...] = (10, 13, 14)


@dataclass(frozen=True)
class Architecture:
    """A named classifier and its training defaults.

    ``image_size``: default square input side (px); ``epochs``; ``learning_rate`` (Adam, peak
    of the cosine decay); ``quantize``: default LiteRT export format (:mod:`modbot.ml.export`);
    ``build``: ``(num_classes, (H, W), *, seed, weights, dropout) → keras.Model`` for a model
    trained end to end, ``None`` for ``lite0``, trained in two stages on cached features.
    """

    name: str
    image_size: int
    epochs: int
    learning_rate: float
    quantize: str
    build: Callable[..., Any] | None


def lite0_lower(image_size: tuple[int, int], *, weights: Any = "imagenet", cache_block: int = CACHE_BLOCK,
                skip_blocks: Sequence[int] = ()) -> Any:
    """Frozen bottom of EfficientNet-Lite0: float32 RGB 0–255 ``(N, H, W, 3)`` → output of
    block ``cache_block − 1`` (for 160 px and block 7: ``(N, 10, 10, 80)``), with ``weights``
    (``"imagenet"``, a ``.pth`` path, or ``None``: random); residual blocks in ``skip_blocks``
    left out (:func:`modbot.ml.backbones.lite0_layers_from`)."""
    keras = load_keras()
    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    x = lite0_scaling()(inputs)
    x = lite0_layers_from(x, last_block=cache_block - 1, head=False, trainable_bn=False, skip_blocks=skip_blocks)
    model = keras.Model(inputs, x, name="lite0_lower")
    if weights is not None:
        load_lite0_weights(model, weights)
    model.trainable = False
    return model


def _freeze_below(model: Any, fine_tune_from: int | None) -> None:
    """Freeze the Lite0 blocks of ``model`` numbered below ``fine_tune_from`` (``None``: all
    blocks and the ``top_`` head conv)."""
    first = 16 if fine_tune_from is None else fine_tune_from
    for layer in model.layers:
        name = layer.name
        if name.startswith("block"):
            if int(name[5:].split("_")[0]) < first:
                layer.trainable = False
        elif name.startswith("top_") and fine_tune_from is None:
            layer.trainable = False


def lite0_upper(feature_shape: tuple[int, int, int], num_classes: int, *, fine_tune_from: int | None,
                weights: Any = "imagenet", cache_block: int = CACHE_BLOCK, dropout: float = DEFAULT_HEAD_DROPOUT,
                seed: int = 0, skip_blocks: Sequence[int] = ()) -> Any:
    """Top of EfficientNet-Lite0 + the medium head, trained on cached lower features.

    Input: block ``cache_block − 1`` output ``feature_shape`` ``(h, w, c)``; blocks
    ``cache_block`` … 15 and the 1280-channel head conv, global average pooling, dropout and a
    softmax ``Dense`` → ``(N, num_classes)``. Blocks before ``fine_tune_from`` stay frozen
    (``None``: the whole backbone is frozen, only the Dense layer learns); batch norms are
    always frozen. Residual blocks in ``skip_blocks`` are left out.
    """
    keras = load_keras()
    inputs = keras.Input(shape=feature_shape, name="lite0_features")
    x = lite0_layers_from(inputs, first_block=cache_block, stem=False, head=True, trainable_bn=False,
                          skip_blocks=skip_blocks)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="medium")(x)
    model = keras.Model(inputs, outputs, name="lite0_upper")
    if weights is not None:
        load_lite0_weights(model, weights)
    _freeze_below(model, fine_tune_from)
    return model


def assemble_lite0(upper: Any, image_size: tuple[int, int], num_classes: int, *, seed: int = 0,
                   dropout: float = DEFAULT_HEAD_DROPOUT, skip_blocks: Sequence[int] = ()) -> Any:
    """The whole served model: float32 RGB 0–255 ``(N, H, W, 3)`` → augmentation (training
    only) → ``(x − 127)/128`` → EfficientNet-Lite0 → global average pooling → dropout → softmax
    ``(N, num_classes)``. ImageNet weights everywhere, then the trained ones of ``upper``
    (:func:`lite0_upper`) copied by layer name; residual blocks in ``skip_blocks`` left out."""
    keras = load_keras()
    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    x = apply_layers(inputs, augmentation_layers(seed))
    x = lite0_scaling()(x)
    x = lite0_layers_from(x, trainable_bn=False, skip_blocks=skip_blocks)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="medium")(x)
    model = keras.Model(inputs, outputs, name="modbot_medium_lite0")
    load_lite0_weights(model, "imagenet")
    trained = {layer.name: layer for layer in upper.layers if layer.get_weights()}
    for layer in model.layers:
        if layer.name in trained:
            layer.set_weights(trained[layer.name].get_weights())
    return model


def build_model(num_classes: int, image_size: tuple[int, int], *, seed: int = 0) -> Any:
    """The CNN: float32 RGB 0–255 ``(N, H, W, 3)`` in → softmax ``(N, num_classes)`` out.

    Augmentation (active only in training): horizontal flip, ±5 % translation, ±10 % zoom,
    contrast ±15 %, brightness ±10 % of 255. Then Rescaling(1/255), four blocks of
    Conv2D 3×3 (32, 64, 128, 256 filters) → BatchNorm → ReLU → MaxPool 2×2, global average
    pooling, dropout 0.3 and a Dense softmax layer.
    """
    keras = load_keras()
    layers = keras.layers
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


def _build_cnn(num_classes: int, image_size: tuple[int, int], *, seed: int = 0, weights: Any = None,
               dropout: float = DEFAULT_HEAD_DROPOUT) -> Any:
    """:func:`build_model` behind the registry's signature (``weights`` and ``dropout`` unused:
    the CNN has no pretrained weights and its own dropout 0.3)."""
    return build_model(num_classes, image_size, seed=seed)


def _build_mobilenet_v3_small(num_classes: int, image_size: tuple[int, int], *, seed: int = 0,
                              weights: str | os.PathLike[str] | None = None,
                              dropout: float = DEFAULT_HEAD_DROPOUT) -> Any:
    """Augmentation (:func:`modbot.ml.augment.augmentation_layers`) → MobileNetV3-Small
    (``weights``: ``None`` from scratch, ``"imagenet"`` Keras's download) → dropout → softmax."""
    keras = load_keras()
    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    x = apply_layers(inputs, augmentation_layers(seed))
    x = mobilenet_v3_small((*image_size, 3), weights=weights)(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="medium")(x)
    return keras.Model(inputs, outputs, name="modbot_medium_mnv3s")


#: The registry. Lite0 at 224 px: 0.04 macro-F1 better than at 160 px on the held-out object,
#: at 1.7× the latency (model/MODEL_CARD.md, comparison); its int8 export runs in ~0.65× the
#: time of float16 (:mod:`modbot.ml.export`).
_REGISTRY: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("lite0", image_size=224, epochs=6, learning_rate=3e-4, quantize="int8", build=None),
        Architecture("mobilenet_v3_small", image_size=160, epochs=10, learning_rate=1e-3, quantize="float16",
                     build=_build_mobilenet_v3_small),
        Architecture("cnn", image_size=128, epochs=8, learning_rate=1e-3, quantize="float16", build=_build_cnn),
    )
}

#: Names of the architectures, the shipped one first.
ARCHITECTURES: tuple[str, ...] = tuple(_REGISTRY)


def get_architecture(name: str) -> Architecture:
    """The registered :class:`Architecture` called ``name``; ``ValueError`` for an unknown one."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, not {name!r}") from None


def build_classifier(arch: str, num_classes: int, image_size: tuple[int, int], *, seed: int = 0,
                     weights: Any = None, dropout: float = DEFAULT_HEAD_DROPOUT) -> Any:
    """A whole classifier trained end to end by :func:`modbot.ml.training.train_model`, built
    by name: float32 RGB 0–255 ``(N, H, W, 3)`` → softmax ``(N, num_classes)``.

    ``cnn`` is :func:`build_model`. ``mobilenet_v3_small``: the augmentation of
    :func:`modbot.ml.augment.augmentation_layers`, ``keras.applications.MobileNetV3Small``
    (``weights``: ``None`` from scratch, ``"imagenet"`` Keras's download, which needs
    internet), dropout and a softmax. Raises ``ValueError`` for an unknown ``arch`` and for
    ``lite0``, which is built in parts (:func:`lite0_lower`, :func:`lite0_upper`,
    :func:`assemble_lite0`) and trained in two stages.
    """
    spec = _REGISTRY.get(arch)
    if spec is None or spec.build is None:
        raise ValueError(f"build_classifier: unknown arch {arch!r}")
    return spec.build(num_classes, image_size, seed=seed, weights=weights, dropout=dropout)
