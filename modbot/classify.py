"""Classify stage: image → probability of each artistic medium, with a Keras CNN.

The daemon depends only on the :class:`Classifier` protocol; :class:`KerasClassifier` is the
implementation that serves a model directory (the one shipped in the package
``modbot.shipped_model`` by default)::

    model_dir/
      model.keras    Keras 3 model. Input: float32 RGB pixels in 0–255, shape (N, H, W, 3);
                     rescaling and (inactive at inference) augmentation layers live inside.
                     Output: softmax probabilities, shape (N, len(labels)).
      labels.json    {"labels": [canonical media in output order], "version": "...",
                      "input_size": [H, W]}
      metrics.json   held-out figures written by ``modbot train``
      MODEL_CARD.md  data, split and measured figures

TensorFlow is imported lazily, the first time a model is loaded (it costs seconds and
~500 MB), so importing this module is cheap. Serving goes through one ``tf.function`` with a
fixed input signature (uint8, batch dimension ``None``), traced once at load: calling
``model.predict`` per image costs ~10× more per image on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from modbot.domain import MEDIA, Prediction
from modbot.errors import ModelError

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "MODEL_CARD.md"

#: Images per forward pass; larger galleries are split into chunks of this size.
MAX_BATCH = 32

#: Tolerance on the sum of the model's output probabilities checked at load time.
_SUM_TOLERANCE = 1e-3

_tf_module: Any = None


@runtime_checkable
class Classifier(Protocol):
    """What the daemon needs from a medium classifier.

    ``labels`` are canonical media (``modbot.domain.MEDIA``) in output order; ``version``
    names the model (stored with every prediction).
    """

    labels: tuple[str, ...]
    version: str

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """One :class:`~modbot.domain.Prediction` per image, in order."""
        ...


def load_tensorflow(threads: int | None = None) -> Any:
    """Import TensorFlow once, quietly, with a thread budget; return the ``tensorflow`` module.

    Sets (unless already set) ``TF_CPP_MIN_LOG_LEVEL=2`` (C++ info/warnings off) and
    ``KERAS_BACKEND=tensorflow``. TensorFlow 2.21 prints a oneDNN notice before its log
    level applies; it is filtered out of the import's stderr (other lines pass through).
    oneDNN stays on: measured here it makes training 2× and inference 1.5× faster. ``threads``
    (default: the CPUs this process may use) becomes TensorFlow's intra-op pool size, with
    one inter-op thread: the model is a chain of layers, so inter-op parallelism buys nothing
    and would oversubscribe a small machine. The pool sizes can only be set before
    TensorFlow starts its runtime; if someone started it earlier, theirs stay.
    """
    global _tf_module
    if _tf_module is not None:
        return _tf_module
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _quiet_stderr():
        import tensorflow as tf

    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            threads = os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, int(threads)))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # runtime already initialised by another user of TensorFlow in this process
    _tf_module = tf
    return tf


#: Start-up lines TensorFlow writes to stderr whatever TF_CPP_MIN_LOG_LEVEL says.
_IMPORT_NOISE = ("oneDNN custom operations are on", "All log messages before absl::InitializeLog()")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Capture file descriptor 2 while importing TensorFlow; re-emit all but known noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (e.g. embedded interpreter): do nothing
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not any(noise in line for noise in _IMPORT_NOISE)
            ]
            if kept:
                sys.stderr.write("".join(kept))


def shipped_model_dir() -> Path:
    """The directory of the model shipped with modbot.

    Installed (``pip install``), it is the package ``modbot.shipped_model`` (the repository's
    ``model/`` folder, see ``pyproject.toml``), found with ``importlib.resources``; in a
    source checkout used through ``PYTHONPATH`` that package does not exist, and the
    repository's ``model/`` next to the ``modbot`` package is used.
    """
    try:
        root = resources.files("modbot.shipped_model")
        path = Path(str(root))
        if path.is_dir():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "model"


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in mode RGB; transparent pixels are composited onto white.

    (A plain ``convert("RGB")`` keeps whatever colour transparent pixels hold, often black,
    which turns a transparent PNG's background into a large black area.)
    """
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def preprocess(images: Sequence[Image.Image], size: int | Sequence[int]) -> np.ndarray:
    """Turn Pillow images into the model's input batch.

    Each image is converted to RGB (:func:`to_rgb`), centre-cropped to the aspect ratio of
    ``size`` and resized with Pillow's bicubic filter (``reducing_gap=2`` for speed on large
    photos). Cropping instead of stretching keeps brush and pen strokes undistorted; the
    same function prepares training images, so serving sees what training saw.

    ``size`` is ``(H, W)`` in pixels, or one int for a square. Returns a ``uint8`` array of
    shape ``(N, H, W, 3)`` (RGB, 0–255); ``N`` may be 0. Images are expected upright (EXIF
    orientation already applied, as ``FetchedImage.rgb`` is). Raises ``TypeError`` for
    anything that is not a ``PIL.Image.Image``.
    """
    h, w = _as_size(size)
    out = np.empty((len(images), h, w, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
        rgb = to_rgb(image)
        iw, ih = rgb.size
        target = w / h
        if iw / ih > target:  # too wide: crop the sides
            cw = ih * target
            box = ((iw - cw) / 2, 0.0, (iw + cw) / 2, float(ih))
        else:  # too tall: crop top and bottom
            ch = iw / target
            box = (0.0, (ih - ch) / 2, float(iw), (ih + ch) / 2)
        resized = rgb.resize((w, h), Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)
        out[i] = np.asarray(resized, dtype=np.uint8)
    return out


def read_labels(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``labels.json`` of ``model_dir`` (no TensorFlow needed).

    Returns the parsed object with ``labels`` a tuple of canonical media, ``version`` a
    non-empty string and ``input_size`` an ``(H, W)`` tuple of positive ints. Raises
    ``ModelError`` if the file is missing, not JSON, or any of those fields is wrong
    (unknown or repeated medium, empty list, bad size).
    """
    path = Path(model_dir) / LABELS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"model directory {model_dir} has no {LABELS_FILE}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    labels = data.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{path}: 'labels' must be a non-empty list of media names")
    unknown = [x for x in labels if x not in MEDIA]
    if unknown:
        raise ModelError(f"{path}: unknown medium {unknown}; canonical media are {list(MEDIA)}")
    if len(set(labels)) != len(labels):
        raise ModelError(f"{path}: repeated labels in {labels}")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ModelError(f"{path}: 'version' must be a non-empty string")
    size = data.get("input_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ModelError(f"{path}: 'input_size' must be [height, width] in pixels, got {size!r}")
    return {**data, "labels": tuple(labels), "version": version, "input_size": (size[0], size[1])}


class KerasClassifier:
    """A :class:`Classifier` serving a Keras 3 model directory (see the module docstring).

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

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str] | None = None, *, threads: int | None = None) -> KerasClassifier:
        """Load and check a model directory; ``None`` loads the shipped model.

        Checks that ``labels.json`` is valid (:func:`read_labels`), that ``model.keras`` loads,
        that its input is ``(None, H, W, 3)`` with ``(H, W) == input_size``, that it has one
        output unit per label, and that its output on a blank image is a probability
        distribution (non-negative, sums to 1: the last layer must be a softmax). Then traces
        the serving function once. ``threads`` is passed to :func:`load_tensorflow`.

        Raises ``ModelError`` with the reason when any of this fails.
        """
        path = Path(model_dir) if model_dir is not None else shipped_model_dir()
        if not path.is_dir():
            raise ModelError(f"model directory not found: {path}")
        meta = read_labels(path)
        model_file = path / MODEL_FILE
        if not model_file.is_file():
            raise ModelError(f"model directory {path} has no {MODEL_FILE}")
        tf = load_tensorflow(threads)
        import keras

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
        if probe.min() < -1e-6 or abs(float(probe.sum()) - 1.0) > _SUM_TOLERANCE:
            raise ModelError(
                f"{model_file}: output is not a probability distribution (sum {probe.sum():.4f}); "
                "the last layer must be a softmax"
            )
        return cls(model, serve, meta, path)

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities as a ``float64`` array of shape ``(N, len(labels))``, rows summing to 1.

        Images are preprocessed (:func:`preprocess`) and run in batches of up to
        :data:`MAX_BATCH`. Raises ``TypeError`` for a non-image.
        """
        return self.predict_batch(preprocess(images, self.input_size))

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for an already preprocessed batch.

        ``batch`` is ``uint8`` of shape ``(N, H, W, 3)`` with ``(H, W) == input_size`` (as
        :func:`preprocess` makes it). Returns ``float64`` ``(N, len(labels))``, rows summing
        to 1. Raises ``ValueError`` for a wrong shape or dtype.
        """
        h, w = self.input_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise ValueError(f"expected uint8 (N, {h}, {w}, 3), got {batch.dtype} {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        chunks = [
            np.asarray(self._serve(batch[i : i + MAX_BATCH]), dtype=np.float64)
            for i in range(0, len(batch), MAX_BATCH)
        ]
        probs = np.clip(np.concatenate(chunks), 0.0, None)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """One :class:`~modbot.domain.Prediction` per image, in order (all images in one batch).

        Pass all images of a gallery in one call. ``probabilities`` maps every label to a
        Python ``float``; each mapping sums to 1 (up to float rounding).
        """
        return [
            Prediction(
                probabilities={label: float(p) for label, p in zip(self.labels, row)},
                model_version=self.version,
            )
            for row in self.predict_proba(images)
        ]

    def __repr__(self) -> str:
        return f"KerasClassifier(version={self.version!r}, labels={self.labels}, model_dir={str(self.model_dir)!r})"
