"""The training-only augmentation inside every modbot model.

Reddit images arrive at every size and quality, so the models see flips, crops, shifts, colour
jitter, JPEG re-compression and down-and-up rescaling while they train
(:func:`augmentation_layers`). All layers take and return float32 RGB 0–255 ``(N, H, W, 3)``
and are the identity at inference (``training=False``), so none of them changes a served
prediction. Two need TensorFlow ops and are modbot's own (:func:`register_augmentation_layers`);
a saved model containing them loads only after they are registered.

Keras/TensorFlow are imported when a function here is first called, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from modbot.ml.tf import load_keras, load_tensorflow

_AUGMENT_CLASSES: dict[str, type] = {}


def random_jpeg(img: Any, rate: float, quality: tuple[int, int]) -> Any:
    """One image (float32 RGB 0–255 ``(H, W, 3)`` tensor), re-encoded as JPEG at a random
    quality in ``quality`` (inclusive, 0–100) with probability ``rate``, else unchanged."""
    tf = load_tensorflow()
    q = tf.random.uniform([], quality[0], quality[1] + 1, dtype=tf.int32)
    u8 = tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)
    out = tf.cast(tf.image.adjust_jpeg_quality(u8, q), img.dtype)
    return tf.where(tf.random.uniform([]) < rate, out, img)


def random_rescale(img: Any, rate: float, scale: tuple[float, float], size: Any) -> Any:
    """One image (float32 ``(H, W, 3)`` tensor; ``size`` its ``(H, W)``), shrunk by a random
    factor in ``scale`` (fraction of the side, at least 8 px, antialiased) and enlarged back
    (bilinear) with probability ``rate``, else unchanged."""
    tf = load_tensorflow()
    f = tf.random.uniform([], scale[0], scale[1])
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * f), tf.int32), 8)
    out = tf.image.resize(tf.image.resize(img[None], small, antialias=True), size)[0]
    return tf.where(tf.random.uniform([]) < rate, out, img)


def _define_random_jpeg(keras: Any, tf: Any) -> type:
    @keras.saving.register_keras_serializable(package="modbot")
    class RandomJpeg(keras.layers.Layer):
        """Per image, :func:`random_jpeg` in training; the identity at inference."""

        def __init__(self, rate: float = 0.5, quality: Sequence[int] = (30, 95), seed: int | None = None,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.rate = float(rate)
            self.quality = (int(quality[0]), int(quality[1]))
            self.seed = seed

        def call(self, x: Any, training: bool | None = None) -> Any:
            if not training:
                return x
            return tf.map_fn(lambda img: random_jpeg(img, self.rate, self.quality), x, fn_output_signature=x.dtype)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "rate": self.rate, "quality": list(self.quality), "seed": self.seed}

    return RandomJpeg


def _define_random_rescale(keras: Any, tf: Any) -> type:
    @keras.saving.register_keras_serializable(package="modbot")
    class RandomRescale(keras.layers.Layer):
        """Per image, :func:`random_rescale` in training; the identity at inference."""

        def __init__(self, rate: float = 0.3, scale: Sequence[float] = (0.3, 0.9), seed: int | None = None,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.rate = float(rate)
            self.scale = (float(scale[0]), float(scale[1]))
            self.seed = seed

        def call(self, x: Any, training: bool | None = None) -> Any:
            if not training:
                return x
            size = tf.shape(x)[1:3]
            return tf.map_fn(lambda img: random_rescale(img, self.rate, self.scale, size), x,
                             fn_output_signature=x.dtype)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "rate": self.rate, "scale": list(self.scale), "seed": self.seed}

    return RandomRescale


def register_augmentation_layers() -> dict[str, type]:
    """Define and register (once) the custom training-only augmentation layers; return them
    as ``{"RandomJpeg": cls, "RandomRescale": cls}``.

    - ``RandomJpeg(rate, quality)``: with probability ``rate`` per image, re-encode it as JPEG
      at a random quality in ``quality`` (``(lo, hi)``, 0–100), as Reddit re-compresses uploads.
    - ``RandomRescale(rate, scale)``: with probability ``rate`` per image, shrink it by a random
      factor in ``scale`` (``(lo, hi)``, fraction of the side) and enlarge it back (bilinear), as
      small uploads are.

    Both take and return float32 RGB 0–255 ``(N, H, W, 3)`` and are the identity at inference
    (``training=False``), so neither appears in a served graph. Registered as
    ``modbot>RandomJpeg`` / ``modbot>RandomRescale``;
    :class:`~modbot.ml.keras_classifier.KerasClassifier` calls this before loading a model.
    """
    if not _AUGMENT_CLASSES:
        keras, tf = load_keras(), load_tensorflow()
        _AUGMENT_CLASSES.update(RandomJpeg=_define_random_jpeg(keras, tf),
                                RandomRescale=_define_random_rescale(keras, tf))
    return _AUGMENT_CLASSES


def augmentation_layers(seed: int = 0) -> list[Any]:
    """The augmentation applied (in training only) in front of every modbot model, in order:
    horizontal flip; random crop (zoom in by 0–20 % of the side, resized back); random shift
    (±6 %, reflected borders); colour jitter (brightness ±15 %, contrast ±20 %, saturation
    0.7–1.3×, hue ±3 %); JPEG re-compression (quality 30–95, half of the images); rescaling
    (shrink to 30–90 % of the side and back, 30 % of the images). Layer ``i`` is seeded with
    ``seed + i``. All take and return float32 RGB 0–255 and are the identity at inference."""
    keras = load_keras()
    layers = keras.layers
    custom = register_augmentation_layers()
    return [
        layers.RandomFlip("horizontal", seed=seed, name="aug_flip"),
        layers.RandomZoom((-0.2, 0.0), fill_mode="reflect", seed=seed + 1, name="aug_crop"),
        layers.RandomTranslation(0.06, 0.06, fill_mode="reflect", seed=seed + 2, name="aug_shift"),
        layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 3, name="aug_brightness"),
        layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 4, name="aug_contrast"),
        layers.RandomSaturation((0.35, 0.65), value_range=(0, 255), seed=seed + 5, name="aug_saturation"),
        layers.RandomHue(0.03, value_range=(0, 255), seed=seed + 6, name="aug_hue"),
        custom["RandomJpeg"](rate=0.5, quality=(30, 95), seed=seed + 7, name="aug_jpeg"),
        custom["RandomRescale"](rate=0.3, scale=(0.3, 0.9), seed=seed + 8, name="aug_rescale"),
    ]


def apply_layers(x: Any, layers_: Sequence[Callable[..., Any]]) -> Any:
    """Apply ``layers_`` to ``x`` in order (a tiny helper for functional-model building)."""
    for layer in layers_:
        x = layer(x)
    return x


def augmentation_model(image_size: tuple[int, int], *, seed: int = 0) -> Any:
    """The training augmentation (:func:`augmentation_layers`) as a Keras model: float32 RGB
    0–255 ``(N, H, W, 3)`` in and out, ``image_size`` ``(H, W)`` px; call it with
    ``training=True`` (at inference it is the identity)."""
    keras = load_keras()
    inputs = keras.Input(shape=(*image_size, 3), name="rgb")
    return keras.Model(inputs, apply_layers(inputs, augmentation_layers(seed)), name="augment")
