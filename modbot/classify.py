"""Classify stage: image → probability of each artistic medium.

The daemon depends only on the :class:`Classifier` protocol. Two implementations serve a model
directory (the one shipped in the package ``modbot.model`` by default);
:func:`load_classifier` picks the fastest correct one::

    model_dir/
      model.keras    Keras 3 model, the source of truth. Input: float32 RGB pixels in 0–255,
                     shape (N, H, W, 3); scaling and (inactive at inference) augmentation
                     layers live inside. Output: softmax probabilities, shape (N, len(labels)).
      model.tflite   optional LiteRT export of model.keras (uint8 input, same output; float16
                     weights, or int8 weights and activations), written and checked against
                     model.keras by ``modbot.ml.export.export_tflite``
      labels.json    {"labels": [canonical media in output order], "version": "...",
                      "input_size": [H, W], "temperature": T (calibration, default 1),
                      "judge": {medium: flag threshold},
                      "crops": "centre" (default) or "tiles" (see below),
                      "crop_calibration": {"tiles": {"temperature": T, "judge": {...}}},
                      "tflite": {"quantize": ..., "passed": ..., "max_abs_diff": ...,
                                 "argmax_agreement": ..., sha256s, ...}}
      metrics.json   held-out figures written by ``modbot train``
      MODEL_CARD.md  data, split and measured figures

- :class:`LiteRTClassifier` runs ``model.tflite`` with ``ai-edge-litert`` and never imports
  TensorFlow (measured here: ~70 MB resident, loads in a fraction of a second). Used when the
  export's recorded check passed and both files are unchanged since (:func:`tflite_check_status`).
- :class:`modbot.ml.keras_classifier.KerasClassifier` runs ``model.keras`` with TensorFlow: the
  fallback when there is no such export. :func:`load_classifier` imports it only then, so
  importing this module imports neither TensorFlow nor anything of :mod:`modbot.ml`.

Both apply the calibration temperature of ``labels.json`` (:func:`apply_temperature`).

**Crops.** The model sees square inputs. ``"centre"`` serves the centre square of each image;
``"tiles"`` also sees the ends of an elongated image (long/short side ≥ :data:`TILE_MIN_RATIO`):
2–3 squares along its long side (:func:`crop_boxes`), whose uncalibrated probabilities are
averaged before calibration (:func:`predict_crops`). A mode needs its own temperature and judge
thresholds, fitted on validation predictions made the same way: the top-level ``temperature``
and ``judge`` are the centre crop's, ``crop_calibration.tiles`` the tiles'. ``crops`` in
``labels.json`` is the mode the model is served with; ``load_classifier(..., crops=...)``
overrides it (``modbot evaluate --crops``, to compare the two on the same images).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from modbot.decode import to_rgb
from modbot.domain import MEDIA, Prediction
from modbot.errors import ModelError

if TYPE_CHECKING:  # the Keras fallback is imported lazily by load_classifier (it needs TensorFlow)
    from modbot.ml.keras_classifier import KerasClassifier

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "MODEL_CARD.md"

#: Images per forward pass; larger galleries are split into chunks of this size.
MAX_BATCH = 32

#: Tolerance on the sum of the model's output probabilities checked at load time.
SUM_TOLERANCE = 1e-3
#: The same for a full-integer (int8) export, whose softmax output is quantised in steps of
#: 1/256: its four probabilities may sum to 1 ± a few steps.
SUM_TOLERANCE_INT8 = 4 / 256

#: The ways of cutting an image into the model's square inputs (see the module docstring).
CROP_MODES = ("centre", "tiles")
#: Tiles: an image whose long side is at least this many times its short side is elongated and
#: is seen as several squares; at most :data:`TILE_MAX` of them. Both from the real-artwork study
#: (``bench/realart``, issue 15), where these tiles were compared with the centre crop on the
#: same leave-source-out validation folds (RESULTS.md, "Multi-crop").
TILE_MIN_RATIO = 1.3
TILE_MAX = 3

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


def shipped_model_dir() -> Path:
    """The directory of the model shipped with modbot: the package data ``modbot.model``.

    It is the repository's top-level ``model/`` folder (``modbot/model`` links to it), found
    through ``importlib.resources`` the same way from a wheel and from a source checkout.
    """
    return Path(str(resources.files("modbot.model")))


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


#: Attribute under which :func:`prepare_input` leaves an image's model input on the image.
_PREPARED = "_modbot_model_input"


def crop_boxes(width: int, height: int, crops: str = "centre") -> list[tuple[float, float, float, float]]:
    """The square boxes ``(left, top, right, bottom)`` (pixels, floats) the model sees of a
    ``width`` x ``height`` image.

    ``"centre"``: the one centre square. ``"tiles"``: for an elongated image (long/short ≥
    :data:`TILE_MIN_RATIO`) ``n = min(TILE_MAX, ceil(long/short))`` squares of the short
    side, evenly spaced so that together they cover the whole long side; for any other image
    the centre square. Raises ``ValueError`` for an unknown mode or a non-positive size.
    """
    if crops not in CROP_MODES:
        raise ValueError(f"crops must be one of {CROP_MODES}, not {crops!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    s = min(width, height)
    long_side = max(width, height)
    if crops == "centre" or long_side / s < TILE_MIN_RATIO:
        return [((width - s) / 2, (height - s) / 2, (width + s) / 2, (height + s) / 2)]
    n = min(TILE_MAX, int(np.ceil(long_side / s)))
    starts = np.linspace(0.0, long_side - s, n)
    if width >= height:
        return [(float(a), 0.0, float(a) + s, float(height)) for a in starts]
    return [(0.0, float(a), float(width), float(a) + s) for a in starts]


def _model_input(image: Image.Image, h: int, w: int) -> np.ndarray:
    """One image's model input: ``uint8`` ``(h, w, 3)`` (see :func:`preprocess`)."""
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
    return np.asarray(resized, dtype=np.uint8)


def _model_inputs(image: Image.Image, h: int, w: int, crops: str) -> np.ndarray:
    """One image's model inputs for a crop mode: ``uint8`` ``(n, h, w, 3)``, ``n`` = the number
    of :func:`crop_boxes`. Each tile is cut at whole pixels and then prepared exactly as a
    whole image is (:func:`_model_input`), as in the study that fitted the tiles' calibration."""
    if crops == "centre":
        return _model_input(image, h, w)[None]
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    rgb = to_rgb(image)
    boxes = crop_boxes(*rgb.size, crops)
    if len(boxes) == 1:
        return _model_input(rgb, h, w)[None]
    return np.stack([_model_input(rgb.crop(tuple(round(v) for v in box)), h, w) for box in boxes])


def prepare_input(image: Image.Image, size: int | Sequence[int], crops: str = "centre") -> Image.Image:
    """Compute ``image``'s model input for ``size`` and ``crops`` now and keep it with the
    image, so that a later :func:`preprocess` / :func:`preprocess_crops` of this same image
    object at this size and mode copies it instead of cropping and resizing again.

    For work done ahead on another thread: the daemon's download threads
    (:mod:`modbot.prefetch`) prepare each decoded image while the main thread classifies the
    previous post (Pillow releases the GIL while it resizes). The result is exactly
    :func:`preprocess_crops`'s (same function); a classifier whose input size or crop mode
    differs, or any other image, takes the ordinary path. ``image`` must not be modified
    afterwards (the daemon's decoded images never are). ``size`` is ``(H, W)`` in pixels or
    one int for a square; ``crops`` one of :data:`CROP_MODES`.
    Returns ``image``; raises ``TypeError`` for anything that is not a ``PIL.Image.Image`` and
    ``ValueError`` for an unknown crop mode.
    """
    h, w = _as_size(size)
    if crops not in CROP_MODES:
        raise ValueError(f"crops must be one of {CROP_MODES}, not {crops!r}")
    arr = _model_inputs(image, h, w, crops)
    arr.flags.writeable = False
    setattr(image, _PREPARED, ((h, w), crops, arr))
    return image


def prepared_input(image: Any, size: int | Sequence[int], crops: str = "centre") -> np.ndarray | None:
    """The model inputs :func:`prepare_input` left on ``image`` for ``size`` and ``crops``: a
    read-only ``uint8`` ``(n, H, W, 3)`` array (``n`` = 1 for the centre crop), or None when
    there are none for that size and mode."""
    found = getattr(image, _PREPARED, None)
    if found is None or found[0] != _as_size(size) or found[1] != crops:
        return None
    return found[2]


def preprocess(images: Sequence[Image.Image], size: int | Sequence[int]) -> np.ndarray:
    """Turn Pillow images into the model's input batch (centre crop).

    Each image is converted to RGB (:func:`modbot.decode.to_rgb`), centre-cropped to the aspect ratio of
    ``size`` and resized with Pillow's bicubic filter (``reducing_gap=2`` for speed on large
    photos). Cropping instead of stretching keeps brush and pen strokes undistorted; the
    same function prepares training images, so serving sees what training saw. An image
    prepared ahead at this size (:func:`prepare_input`) is copied, not resized again.

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
        ready = prepared_input(image, (h, w))
        out[i] = ready[0] if ready is not None else _model_input(image, h, w)
    return out


def preprocess_crops(images: Sequence[Image.Image], size: int | Sequence[int],
                     crops: str = "centre") -> tuple[np.ndarray, np.ndarray]:
    """The model inputs of ``images`` under a crop mode (:func:`crop_boxes`).

    Returns ``(batch, owner)``: ``batch`` ``uint8`` ``(M, H, W, 3)`` with every crop of every
    image (each prepared as :func:`preprocess` prepares an image), ``owner`` ``int64`` ``(M,)``
    the index in ``images`` each crop belongs to (non-decreasing; ``M == len(images)`` for
    ``"centre"``). Raises ``TypeError`` for a non-image, ``ValueError`` for an unknown mode.
    """
    if crops not in CROP_MODES:
        raise ValueError(f"crops must be one of {CROP_MODES}, not {crops!r}")
    if crops == "centre":
        return preprocess(images, size), np.arange(len(images), dtype=np.int64)
    h, w = _as_size(size)
    parts: list[np.ndarray] = []
    owner: list[int] = []
    for i, image in enumerate(images):
        ready = prepared_input(image, (h, w), crops)
        arr = ready if ready is not None else _model_inputs(image, h, w, crops)
        parts.append(arr)
        owner += [i] * len(arr)
    if not parts:
        return np.empty((0, h, w, 3), dtype=np.uint8), np.empty(0, dtype=np.int64)
    return np.concatenate(parts), np.asarray(owner, dtype=np.int64)


def combine_crops(probs: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Average the probability rows of each image's crops: ``probs`` float ``(M, k)`` (one row
    per crop, as :func:`preprocess_crops` orders them), ``owner`` int ``(M,)`` → float64
    ``(n, k)``. Raises ``ValueError`` when an image in ``range(n)`` has no crop."""
    probs = np.asarray(probs, dtype=np.float64)
    counts = np.bincount(owner, minlength=n)[:n]
    if n and counts.min() == 0:
        raise ValueError("every image needs at least one crop")
    out = np.zeros((n, probs.shape[1] if probs.ndim == 2 else 0), dtype=np.float64)
    np.add.at(out, owner, probs)
    return out / np.maximum(counts, 1)[:, None]


def predict_crops(raw: Any, images: Sequence[Image.Image], size: int | Sequence[int], crops: str,
                  temperature: float, n_labels: int) -> np.ndarray:
    """Calibrated probabilities of ``images`` under a crop mode, float64 ``(N, k)``.

    ``raw(batch)`` maps a ``uint8`` ``(M, H, W, 3)`` batch to the model's uncalibrated
    softmax rows ``(M, k)``; the crops of each image are averaged (:func:`combine_crops`) and
    the average is calibrated with ``temperature`` (:func:`apply_temperature`), the order in
    which the tiles' temperature was fitted. For ``"centre"`` this is the calibrated
    probability of the one centre crop. ``n_labels`` is ``k`` (the shape of an empty result)."""
    batch, owner = preprocess_crops(images, size, crops)
    if len(images) == 0:
        return np.zeros((0, n_labels), dtype=np.float64)
    return apply_temperature(combine_crops(as_distribution(raw(batch)), owner, len(images)), temperature)


def as_distribution(raw: np.ndarray) -> np.ndarray:
    """A model's softmax output as float64 ``(N, k)`` rows that are exact distributions:
    negatives (quantisation noise of an int8 export) clipped to 0, each row renormalised."""
    probs = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
    return probs / probs.sum(axis=1, keepdims=True)


def read_labels(model_dir: str | os.PathLike[str], crops: str | None = None) -> dict[str, Any]:
    """Read and validate ``labels.json`` of ``model_dir`` (no TensorFlow needed).

    Returns the parsed object with ``labels`` a tuple of canonical media, ``version`` a
    non-empty string and ``input_size`` an ``(H, W)`` tuple of positive ints, ``crops`` the
    crop mode to serve (``crops`` when given, else the file's ``crops``, default
    ``"centre"``), and ``temperature`` and ``flag_thresholds`` ``{medium: probability}`` fitted
    for that mode (``crop_calibration``; see the module docstring). Raises ``ModelError`` if
    the file is missing, not JSON, or any of those fields is wrong (unknown or repeated
    medium, empty list, bad size, unknown crop mode), or when the mode has no calibration.
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
    temperature = data.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        0.0 < float(temperature) < 1e3
    ):
        raise ModelError(f"{path}: 'temperature' must be a positive number, got {temperature!r}")
    tflite = data.get("tflite")
    if tflite is not None and not isinstance(tflite, dict):
        raise ModelError(f"{path}: 'tflite' must be an object, got {tflite!r}")
    mode = crops if crops is not None else data.get("crops", "centre")
    if mode not in CROP_MODES:
        raise ModelError(f"{path}: crop mode {mode!r} is not one of {list(CROP_MODES)}")
    judge = data.get("judge")
    if mode != "centre":
        fitted = data.get("crop_calibration", {})
        fitted = fitted.get(mode) if isinstance(fitted, dict) else None
        if not isinstance(fitted, dict) or "temperature" not in fitted:
            raise ModelError(f"{path}: no calibration for crop mode {mode!r} (crop_calibration.{mode}): "
                             "its temperature and judge thresholds must be fitted on validation first")
        temperature, judge = fitted["temperature"], fitted.get("judge")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            0.0 < float(temperature) < 1e3
        ):
            raise ModelError(f"{path}: crop_calibration.{mode}.temperature must be a positive number, "
                             f"got {temperature!r}")
    return {**data, "labels": tuple(labels), "version": version, "input_size": (size[0], size[1]),
            "temperature": float(temperature), "tflite": tflite, "crops": mode,
            "flag_thresholds": _flag_thresholds(path, judge, labels)}


def _flag_thresholds(path: Path, judge: Any, labels: Sequence[str]) -> dict[str, float]:
    """The model's judge thresholds from ``labels.json`` ``judge`` (``{medium: probability}``;
    other keys such as ``rule`` are descriptions, and media that are not labels are ignored).
    Raises ``ModelError`` for a value outside 0–1."""
    if judge is None:
        return {}
    if not isinstance(judge, dict):
        raise ModelError(f"{path}: 'judge' must be an object, got {judge!r}")
    found = {k: v for k, v in judge.items()
             if k in labels and isinstance(v, int | float) and not isinstance(v, bool)}
    for medium, value in found.items():
        if not 0.0 <= float(value) <= 1.0:
            raise ModelError(f"{path}: judge threshold {medium} = {value!r} (must be 0-1)")
    return {k: float(v) for k, v in found.items()}


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log(probs) / T)`` as float64 ``(N, k)``.

    Equal to ``softmax(logits / T)`` for the logits behind ``probs`` (the log-sum-exp shift
    cancels); probabilities are clipped at 1e-12 before the log. ``T > 1`` softens
    over-confident outputs, ``T == 1`` returns the input (renormalised). The temperature is
    fitted on validation data by ``modbot.ml.metrics.fit_temperature`` and stored in
    ``labels.json`` (``"temperature"``).
    """
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0 or p.size == 0:
        return p / p.sum(axis=1, keepdims=True) if p.size else p
    z = np.log(np.clip(p, 1e-12, None)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# LiteRT serving (no TensorFlow in the process)

TFLITE_FILE = "model.tflite"

#: Images per LiteRT invocation. Measured on 2 cores (EfficientNet-Lite0, 224 px): batches of
#: 32 ran at 99 images/s against 104/s one at a time, while the interpreter's arena for 32
#: images raised the process's resident memory from 76 MB to 299 MB for good; so one at a time.
LITERT_BATCH = 1

#: Stderr lines LiteRT prints when it builds an interpreter.
_LITERT_NOISE = ("Created TensorFlow Lite XNNPACK delegate for CPU",)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tflite_check_status(model_dir: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> str | None:
    """Why the LiteRT export of ``model_dir`` must not serve, or ``None`` when it may.

    It may serve when ``model.tflite`` exists, ``labels.json`` records a passed check
    (``"tflite": {"passed": true, ...}``, written by ``modbot.ml.export.export_tflite`` after
    comparing the export's probabilities with the Keras model's), and both files still have
    the SHA-256 digests recorded then (so a retrained ``model.keras`` disables a stale export).
    """
    path = Path(model_dir)
    meta = meta if meta is not None else read_labels(path)
    record = meta.get("tflite")
    if not (path / TFLITE_FILE).is_file():
        return f"no {TFLITE_FILE}"
    if not record or not record.get("passed"):
        return "labels.json records no passed LiteRT check"
    if record.get("tflite_sha256") != file_sha256(path / TFLITE_FILE):
        return f"{TFLITE_FILE} changed since it was checked"
    if (path / MODEL_FILE).is_file() and record.get("keras_sha256") != file_sha256(path / MODEL_FILE):
        return f"{MODEL_FILE} changed since the export was checked"
    return None


class LiteRTClassifier:
    """A :class:`Classifier` serving ``model.tflite`` with LiteRT (``ai-edge-litert``): no
    TensorFlow in the process (measured: ~70 MB resident instead of ~600 MB, 0.2 s to load).

    The export takes ``uint8`` RGB ``(N, H, W, 3)`` (0–255) and returns the Keras model's
    softmax; calibration (``temperature`` from ``labels.json``) is applied here, as in
    :class:`~modbot.ml.keras_classifier.KerasClassifier`. One interpreter, guarded by a lock
    (LiteRT interpreters are not thread-safe), run on chunks of ``batch`` images (default
    :data:`LITERT_BATCH`); its input is resized when the chunk size changes.
    """

    labels: tuple[str, ...]
    version: str

    def __init__(self, interpreter: Any, meta: dict[str, Any], model_dir: Path, threads: int,
                 batch: int = LITERT_BATCH) -> None:
        """Use :meth:`load`."""
        self._interpreter = interpreter
        self._lock = threading.Lock()
        self._input = interpreter.get_input_details()[0]
        self._output = interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        self.labels = meta["labels"]
        self.version = meta["version"]
        self.input_size: tuple[int, int] = meta["input_size"]
        self.model_dir = model_dir
        self.meta = meta
        self.threads = threads
        self.batch = max(1, int(batch))
        self.crops: str = meta["crops"]

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str] | None = None, *, threads: int | None = None,
             require_check: bool = True, batch: int = LITERT_BATCH,
             crops: str | None = None) -> LiteRTClassifier:
        """Load ``model.tflite`` of a model directory (``None``: the shipped model), served with
        crop mode ``crops`` (default: ``labels.json``'s; see :func:`read_labels`).

        With ``require_check`` (default) the export must have passed its recorded check
        (:func:`tflite_check_status`). Checks the input is ``(N, H, W, 3)`` with ``(H, W) ==
        input_size`` and one output per label, and that a grey image gives a probability
        distribution. ``threads`` (default: usable CPUs) is LiteRT's thread count; ``batch`` the
        images per invocation (:data:`LITERT_BATCH`). Raises
        ``ModelError`` if ``ai-edge-litert`` is missing or any check fails.
        """
        path = Path(model_dir) if model_dir is not None else shipped_model_dir()
        if not path.is_dir():
            raise ModelError(f"model directory not found: {path}")
        meta = read_labels(path, crops)
        if require_check:
            reason = tflite_check_status(path, meta)
            if reason:
                raise ModelError(f"{path}: LiteRT export not usable: {reason}")
        elif not (path / TFLITE_FILE).is_file():
            raise ModelError(f"model directory {path} has no {TFLITE_FILE}")
        try:
            from ai_edge_litert.interpreter import Interpreter  # optional dependency
        except ImportError as exc:
            raise ModelError("LiteRT serving needs the package ai-edge-litert") from exc
        # Not at the top: this module must not import the ML wing when it is imported
        # (modbot.ml.tf itself is light and imports no TensorFlow).
        from modbot.ml.tf import quiet_stderr
        threads = max(1, int(threads or _cpu_count()))
        try:
            with quiet_stderr(_LITERT_NOISE):
                interpreter = Interpreter(model_path=str(path / TFLITE_FILE), num_threads=threads)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load {path / TFLITE_FILE}: {exc}") from exc
        h, w = meta["input_size"]
        shape = tuple(int(v) for v in interpreter.get_input_details()[0]["shape"])
        if len(shape) != 4 or shape[1:] != (h, w, 3):
            raise ModelError(f"{TFLITE_FILE}: input shape {shape} does not match input_size {[h, w]}")
        out_shape = tuple(int(v) for v in interpreter.get_output_details()[0]["shape"])
        if out_shape[-1] != len(meta["labels"]):
            raise ModelError(f"{TFLITE_FILE}: output shape {out_shape} does not match labels {list(meta['labels'])}")
        clf = cls(interpreter, meta, path, threads, batch)
        probe = clf._run(np.full((1, h, w, 3), 127, dtype=np.uint8))
        int8 = any(d["dtype"] == np.int8 for d in interpreter.get_tensor_details())
        tolerance = SUM_TOLERANCE_INT8 if int8 else SUM_TOLERANCE
        if probe.min() < -1e-6 or abs(float(probe.sum()) - 1.0) > tolerance:
            raise ModelError(f"{TFLITE_FILE}: output is not a probability distribution (sum {probe.sum():.4f})")
        return clf

    @property
    def temperature(self) -> float:
        """The calibration temperature from ``labels.json`` (1.0 when it has none)."""
        return float(self.meta.get("temperature", 1.0))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        it = self._interpreter
        with self._lock:
            if len(batch) != self._batch:
                it.resize_tensor_input(self._input["index"], [len(batch), *batch.shape[1:]])
                it.allocate_tensors()
                self._batch = len(batch)
            if self._input["dtype"] != np.uint8:
                batch = batch.astype(self._input["dtype"])
            it.set_tensor(self._input["index"], batch)
            it.invoke()
            return np.array(it.get_tensor(self._output["index"]), dtype=np.float64)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for a preprocessed ``uint8`` batch ``(N, H, W, 3)``:
        float64 ``(N, len(labels))``, rows summing to 1. Raises ``ValueError`` for a wrong
        shape or dtype."""
        h, w = self.input_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise ValueError(f"expected uint8 (N, {h}, {w}, 3), got {batch.dtype} {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        return apply_temperature(as_distribution(self._raw(batch)), self.temperature)

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        """The export's uncalibrated softmax for a ``uint8`` batch, float64 ``(N, k)``."""
        return np.concatenate([self._run(np.ascontiguousarray(batch[i : i + self.batch]))
                               for i in range(0, len(batch), self.batch)])

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Calibrated probabilities of Pillow images under the served crop mode
        (:func:`predict_crops`): float64 ``(N, len(labels))``, rows summing to 1. Raises
        ``TypeError`` for a non-image."""
        return predict_crops(self._raw, images, self.input_size, self.crops, self.temperature,
                             len(self.labels))

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """One :class:`~modbot.domain.Prediction` per image, in order; ``probabilities`` maps
        every label to a Python ``float``, each mapping sums to 1 (up to float rounding)."""
        return [
            Prediction(probabilities={label: float(p) for label, p in zip(self.labels, row)},
                       model_version=self.version,
                       flag_thresholds=self.meta.get("flag_thresholds", {}))
            for row in self.predict_proba(images)
        ]

    def __repr__(self) -> str:
        return (f"LiteRTClassifier(version={self.version!r}, labels={self.labels}, crops={self.crops!r}, "
                f"model_dir={str(self.model_dir)!r})")


def load_classifier(model_dir: str | os.PathLike[str] | None = None, *, backend: str = "auto",
                    threads: int | None = None, crops: str | None = None) -> KerasClassifier | LiteRTClassifier:
    """The fastest correct classifier for a model directory (``None``: the shipped model),
    served with crop mode ``crops`` (default: the one ``labels.json`` names; see
    :func:`read_labels`).

    ``backend="auto"``: :class:`LiteRTClassifier` when the directory's LiteRT export passed its
    recorded check against the Keras model (:func:`tflite_check_status`) and ``ai-edge-litert``
    is installed — TensorFlow is then never imported — else
    :class:`~modbot.ml.keras_classifier.KerasClassifier` (imported only then).
    ``"litert"`` or ``"keras"`` force one. Raises ``ModelError`` when the chosen backend cannot
    load the directory, ``ValueError`` for an unknown backend.
    """
    if backend not in ("auto", "litert", "keras"):
        raise ValueError(f"backend must be auto, litert or keras, not {backend!r}")
    path = Path(model_dir) if model_dir is not None else shipped_model_dir()
    if backend == "litert":
        return LiteRTClassifier.load(path, threads=threads, crops=crops)
    if backend == "auto" and path.is_dir() and (path / TFLITE_FILE).is_file():
        lite = _checked_litert(path, threads, crops)
        if lite is not None:
            return lite
    # Imported here, not at the top: importing this module must not import the ML wing, and
    # the Keras fallback brings TensorFlow (seconds, ~500 MB) when it loads a model.
    from modbot.ml.keras_classifier import KerasClassifier

    return KerasClassifier.load(path, threads=threads, crops=crops)


def _checked_litert(path: Path, threads: int | None, crops: str | None = None) -> LiteRTClassifier | None:
    """``LiteRTClassifier.load(path)`` when ``ai-edge-litert`` is installed and the export's
    recorded check holds (:func:`tflite_check_status`); else ``None`` (a stale or failed
    export is logged as a warning)."""
    try:
        import ai_edge_litert  # noqa: F401  (optional dependency: is it installed?)
    except ImportError:
        return None
    reason = tflite_check_status(path)
    if reason is None:
        return LiteRTClassifier.load(path, threads=threads, crops=crops)
    logging.getLogger("modbot.classify").warning(
        "not serving %s with LiteRT (%s); loading the Keras model", path / TFLITE_FILE, reason)
    return None
