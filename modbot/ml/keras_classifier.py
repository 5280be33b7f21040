"""Serving a Keras model directory with TensorFlow: the fallback of
:func:`modbot.classify.load_classifier` when a directory has no LiteRT export that passed its
check (and the classifier that training, export and the learning loop load).

:class:`KerasClassifier` runs ``model.keras`` through one ``tf.function`` with a fixed input
signature (uint8, batch dimension ``None``), traced once at load: calling ``model.predict``
per image costs ~10× more per image on a 2-core machine. TensorFlow is imported the first time
a model is loaded (it costs seconds and ~500 MB), not when this module is imported. The model
directory layout is described in :mod:`modbot.classify`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modbot.classify import (
    MAX_BATCH,
    MODEL_FILE,
    SUM_TOLERANCE,
    apply_temperature,
    as_distribution,
    predict_crops,
    read_labels,
    shipped_model_dir,
)
from modbot.domain import Prediction
from modbot.errors import ModelError
from modbot.ml.augment import register_augmentation_layers
from modbot.ml.tf import load_keras, load_tensorflow


class KerasClassifier:
    """A :class:`~modbot.classify.Classifier` serving a Keras 3 model directory (see the module docstring).

    Build it with :meth:`load`. ``labels`` (canonical media, output order), ``version`` and
    ``input_size`` (``(H, W)`` pixels) come from ``labels.json``; ``model_dir`` is where it was
    loaded from. Thread-safe for concurrent :meth:`predict` calls (TensorFlow functions are).
    """

    labels: tuple[str, ...]
    version: str

    def __init__(self, model: Any, serve: Any, meta: dict[str, Any], model_dir: Path) -> None:
        """Use :meth:`load`; this wires an already validated model and its serving function."""
        self._model = model
        self._serve = serve
        self.labels = meta["labels"]
        self.version = meta["version"]
        self.input_size: tuple[int, int] = meta["input_size"]
        self.model_dir = model_dir
        self.meta = meta
        self.crops: str = meta["crops"]

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str] | None = None, *, threads: int | None = None,
             crops: str | None = None) -> KerasClassifier:
        """Load and check a model directory; ``None`` loads the shipped model. ``crops``: the
        crop mode to serve (default: ``labels.json``'s; :func:`~modbot.classify.read_labels`).

        Checks that ``labels.json`` is valid (:func:`~modbot.classify.read_labels`), that ``model.keras`` loads,
        that its input is ``(None, H, W, 3)`` with ``(H, W) == input_size``, that it has one
        output unit per label, and that its output on a blank image is a probability
        distribution (non-negative, sums to 1: the last layer must be a softmax). Then traces
        the serving function once. ``threads`` is passed to :func:`~modbot.ml.tf.load_tensorflow`.

        Raises ``ModelError`` with the reason when any of this fails.
        """
        path = Path(model_dir) if model_dir is not None else shipped_model_dir()
        if not path.is_dir():
            raise ModelError(f"model directory not found: {path}")
        meta = read_labels(path, crops)
        model_file = path / MODEL_FILE
        if not model_file.is_file():
            raise ModelError(f"model directory {path} has no {MODEL_FILE}")
        tf, keras = load_tensorflow(threads), load_keras(threads)
        register_augmentation_layers()  # training-only layers a saved model may contain
        try:
            model = keras.models.load_model(model_file, compile=False)
        except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, ...
            raise ModelError(f"cannot load {model_file}: {exc}") from exc
        h, w = meta["input_size"]
        in_shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
        if in_shape is None or in_shape[1:] != (h, w, 3):
            raise ModelError(
                f"{model_file}: input shape {model.input_shape} does not match "
                f"labels.json input_size {[h, w]} (expected (None, {h}, {w}, 3))"
            )
        out_shape = model.output_shape
        if isinstance(out_shape, list) or len(out_shape) != 2 or out_shape[-1] != len(meta["labels"]):
            raise ModelError(
                f"{model_file}: output shape {out_shape} does not match the "
                f"{len(meta['labels'])} labels of labels.json {list(meta['labels'])}"
            )

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8)])
        def serve(x: Any) -> Any:
            return model(tf.cast(x, tf.float32), training=False)

        probe = np.asarray(serve(np.full((1, h, w, 3), 127, dtype=np.uint8)))
        if probe.min() < -1e-6 or abs(float(probe.sum()) - 1.0) > SUM_TOLERANCE:
            raise ModelError(
                f"{model_file}: output is not a probability distribution (sum {probe.sum():.4f}); "
                "the last layer must be a softmax"
            )
        return cls(model, serve, meta, path)

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities as a ``float64`` array of shape ``(N, len(labels))``, rows summing to 1.

        Images are cut into the served crop mode's inputs and combined
        (:func:`~modbot.classify.predict_crops`), run in batches of up to
        :data:`~modbot.classify.MAX_BATCH`. Raises ``TypeError`` for a non-image.
        """
        return predict_crops(self._raw, images, self.input_size, self.crops, self.temperature,
                             len(self.labels))

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        """The model's uncalibrated softmax for a ``uint8`` batch, float64 ``(N, k)``."""
        return np.concatenate([np.asarray(self._serve(batch[i : i + MAX_BATCH]), dtype=np.float64)
                               for i in range(0, len(batch), MAX_BATCH)])

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for an already preprocessed batch.

        ``batch`` is ``uint8`` of shape ``(N, H, W, 3)`` with ``(H, W) == input_size`` (as
        :func:`~modbot.classify.preprocess` makes it). Returns ``float64`` ``(N, len(labels))``, rows summing
        to 1. Raises ``ValueError`` for a wrong shape or dtype.
        """
        h, w = self.input_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise ValueError(f"expected uint8 (N, {h}, {w}, 3), got {batch.dtype} {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        return apply_temperature(as_distribution(self._raw(batch)), self.temperature)

    @property
    def temperature(self) -> float:
        """The calibration temperature from ``labels.json`` (1.0 when it has none)."""
        return float(self.meta.get("temperature", 1.0))

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """One :class:`~modbot.domain.Prediction` per image, in order (all images in one batch).

        Pass all images of a gallery in one call. ``probabilities`` maps every label to a
        Python ``float``; each mapping sums to 1 (up to float rounding).
        """
        return [
            Prediction(
                probabilities={label: float(p) for label, p in zip(self.labels, row)},
                model_version=self.version,
                flag_thresholds=self.meta.get("flag_thresholds", {}),
            )
            for row in self.predict_proba(images)
        ]

    def __repr__(self) -> str:
        return (f"KerasClassifier(version={self.version!r}, labels={self.labels}, crops={self.crops!r}, "
                f"model_dir={str(self.model_dir)!r})")
