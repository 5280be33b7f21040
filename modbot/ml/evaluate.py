"""Scoring a served classifier on a labelled image tree, and classifying single images: the
library behind ``modbot evaluate`` and ``modbot classify``.

Importing this module imports no TensorFlow: it works with any object that has the served
classifier's interface (:mod:`modbot.classify`: LiteRT, or Keras when the caller loads it).

Evaluation tree: top-level folders are canonical media (``modbot.domain.MEDIA``), images at any
depth below them (symlinks followed), as :func:`modbot.ml.data.scan_tree` reads training trees.
Folders that are canonical media the model has no output for (e.g. ``sculpture`` for a PACS
model) are reported with what the model predicted for them, and left out of the metrics;
folders that are not media at all are listed as ignored; unreadable images are listed, never
fatal.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modbot.config import Config
from modbot.decode import open_image
from modbot.domain import MEDIA, ImageRef, Prediction, VerdictKind
from modbot.errors import ImageError
from modbot.fsutil import image_files
from modbot.judge import judge
from modbot.ml.metrics import classification_report, expected_calibration_error

#: Images per forward pass while evaluating.
EVAL_BATCH = 32

#: What reading one image file can raise besides ``ImageError`` (missing file, Pillow internals).
_READ_ERRORS = (ImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class TreeScan:
    """Files of an evaluation tree: ``files`` maps each medium folder to its image paths
    (sorted); ``ignored`` lists top-level folders that are not canonical media."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def scan_eval_tree(root: str | os.PathLike[str]) -> TreeScan:
    """Candidate images under each top-level medium folder of ``root`` (any depth, symlinks
    followed, hidden entries skipped, suffix in :data:`modbot.fsutil.IMAGE_SUFFIXES` or none).
    Top-level folders that are not canonical media are returned in ``ignored``, not raised on.
    Raises ``NotADirectoryError`` if ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    scan = TreeScan()
    for top in sorted(root.iterdir()):
        if top.name.startswith(".") or not top.is_dir():
            continue
        if top.name not in MEDIA:
            scan.ignored.append(top.name)
            continue
        scan.files[top.name] = image_files(top)
    return scan


def count_images(root: str | os.PathLike[str]) -> int:
    """Number of candidate image files in an evaluation tree (for a progress bar)."""
    return sum(len(v) for v in scan_eval_tree(root).files.values())


class _Tally:
    """Predictions of an evaluation so far, batched through the classifier."""

    def __init__(self, classifier: Any, batch_size: int, progress: Callable[[int], None] | None):
        self.classifier, self.batch_size, self.progress = classifier, batch_size, progress
        self.labels = list(classifier.labels)
        self.y_true: list[str] = []
        self.y_pred: list[str] = []
        self.probs_known: list[Any] = []
        self.unknown: dict[str, Counter[str]] = {}
        self.pending: list[tuple[str, Any]] = []

    def add(self, medium: str, image: Any) -> None:
        self.pending.append((medium, image))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        probs = self.classifier.predict_proba([img for _, img in self.pending])
        for (medium, _), row in zip(self.pending, probs, strict=True):
            predicted = self.labels[int(row.argmax())]
            if medium in self.labels:
                self.y_true.append(medium)
                self.y_pred.append(predicted)
                self.probs_known.append(row)
            else:
                self.unknown.setdefault(medium, Counter())[predicted] += 1
        if self.progress is not None:
            self.progress(len(self.pending))
        self.pending.clear()

    def metrics(self) -> tuple[dict[str, Any], float | None]:
        """(classification report over the known media, ECE or None when nothing was scored)."""
        rep = classification_report(self.y_true, self.y_pred, self.labels)
        if not self.y_true:
            return rep, None
        index = {label: i for i, label in enumerate(self.labels)}
        y = np.array([index[t] for t in self.y_true])
        return rep, expected_calibration_error(np.array(self.probs_known), y)


def flag_rates(probs: Sequence[Sequence[float]], truth: Sequence[str], labels: Sequence[str],
               flag_below: Callable[[str, Mapping[str, float]], float],
               fitted: Mapping[str, float] | None = None) -> dict[str, Any]:
    """How the judge would treat posts of these images (:func:`modbot.judge.judge`).

    Every image (``probs`` row: calibrated probabilities over ``labels``; ``truth``: its true
    medium, one of ``labels``) is "posted" once stating its true medium and once stating each
    other medium; ``flag_below`` is the configured threshold function (``[judge]``), ``fitted``
    the model's own thresholds. Returns ``{"false_flag_rate"`` (share of correctly stated posts
    flagged), ``"catch_rate"`` (share of mis-stated posts flagged), ``"uncertain_rate"`` (share
    of correctly stated posts left ``uncertain``), ``"thresholds"`` ({medium: threshold used}),
    ``"counts"``: {correct, false_flags, uncertain, misstated, caught}}``; rates are None when
    there is nothing to divide by.
    """
    fitted = dict(fitted or {})
    counts = {"correct": 0, "false_flags": 0, "uncertain": 0, "misstated": 0, "caught": 0}
    for row, true in zip(probs, truth):
        pred = [Prediction(dict(zip(labels, map(float, row))), "eval", flag_thresholds=fitted)]
        for stated in labels:
            kind = judge(stated, pred, flag_below=flag_below).kind
            if stated == true:
                counts["correct"] += 1
                counts["false_flags"] += kind is VerdictKind.MISMATCH
                counts["uncertain"] += kind is VerdictKind.UNCERTAIN
            else:
                counts["misstated"] += 1
                counts["caught"] += kind is VerdictKind.MISMATCH

    def rate(num: int, den: int) -> float | None:
        return num / den if den else None

    return {"false_flag_rate": rate(counts["false_flags"], counts["correct"]),
            "catch_rate": rate(counts["caught"], counts["misstated"]),
            "uncertain_rate": rate(counts["uncertain"], counts["correct"]),
            "thresholds": {m: flag_below(m, fitted) for m in labels}, "counts": counts}


def evaluate_tree(
    root: str | os.PathLike[str],
    classifier: Any,
    *,
    batch_size: int = EVAL_BATCH,
    progress: Callable[[int], None] | None = None,
    flag_below: Callable[[str, Mapping[str, float]], float] | None = None,
) -> dict[str, Any]:
    """Classify every image of an evaluation tree and score the predictions.

    ``classifier`` has ``labels``, ``version``, ``input_size`` and ``predict_proba`` (Pillow
    images → calibrated probabilities ``(N, k)``, under its served crop mode ``crops``), as
    :class:`~modbot.ml.keras_classifier.KerasClassifier` and
    :class:`~modbot.classify.LiteRTClassifier` do. Images are decoded with
    :func:`modbot.decode.open_image` (reduced-scale JPEG decoding), as the daemon decodes them.
    ``progress`` is called with the number of images done since the last call.

    Returns ``{"model_version", "crops" (the crop mode served), "n_images", "accuracy",
    "macro_f1", "per_class": {medium: {precision, recall, f1, support}}, "confusion": {"labels", "matrix"} (rows = true, columns
    = predicted), "ece" (15-bin expected calibration error of the served, calibrated
    probabilities), "unknown_media": {medium: {"n_images", "predicted": {label: n}}},
    "ignored_folders": [...], "unreadable": [{"path", "error"}], "flags": see
    :func:`flag_rates`}`` — the judge's false-flag and catch rates under ``flag_below`` (the
    configured ``[judge]``; default: the packaged defaults with the model's own thresholds).
    ``n_images`` counts the scored images (known media, readable). Metrics are ``None`` when
    nothing was scored.
    Raises ``NotADirectoryError`` if ``root`` is not a folder.
    """
    root = Path(root)
    scan = scan_eval_tree(root)
    tally = _Tally(classifier, batch_size, progress)
    unreadable: list[dict[str, str]] = []
    for medium, paths in scan.files.items():
        for path in paths:
            try:
                image = open_image(path, classifier.input_size)
            except _READ_ERRORS as exc:
                unreadable.append({"path": os.path.relpath(path, root),
                                   "error": f"{type(exc).__name__}: {exc}"})
                if progress is not None:
                    progress(1)
                continue
            tally.add(medium, image)
    tally.flush()
    rep, ece = tally.metrics()
    return {
        "model_version": classifier.version,
        "crops": getattr(classifier, "crops", "centre"),
        "n_images": rep["n"],
        "accuracy": rep["accuracy"],
        "macro_f1": rep["macro_f1"],
        "per_class": rep["per_class"],
        "confusion": rep["confusion"],
        "ece": ece,
        "unknown_media": {m: {"n_images": sum(c.values()), "predicted": dict(c.most_common())}
                          for m, c in tally.unknown.items()},
        "ignored_folders": scan.ignored,
        "unreadable": unreadable,
        "flags": flag_rates(tally.probs_known, tally.y_true, classifier.labels,
                            flag_below or Config().judge.threshold_for,
                            getattr(classifier, "meta", {}).get("flag_thresholds", {})),
    }


def is_url(value: str) -> bool:
    """Whether ``value`` is an http(s) URL (else it is taken for a file path)."""
    return value.lower().startswith(("http://", "https://"))


def _read_sources(sources: Sequence[str], fetcher: Any, size: Any,
                  results: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """Append ``{"source"}`` (with ``"error"`` when unreadable) to ``results`` per source; return
    (index in results, RGB image) for the readable ones."""
    images: list[tuple[int, Any]] = []
    for source in sources:
        results.append({"source": source})
        try:
            if is_url(source):
                image = fetcher.fetch(ImageRef(url=source, source="direct")).rgb
            else:
                image = open_image(source, size)
        except ImageError as exc:
            results[-1]["error"] = f"{exc.reason}: {exc}"
            continue
        except _READ_ERRORS as exc:
            results[-1]["error"] = f"{type(exc).__name__}: {exc}"
            continue
        images.append((len(results) - 1, image))
    return images


def classify_sources(sources: Sequence[str], classifier: Any, *, allow_hosts: Sequence[str] = (),
                     cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Classify image files and URLs; one result per source, in order.

    URLs are fetched with :class:`modbot.images.ImageFetcher` (the daemon's downloader: size
    cap, timeouts, private-address guard; ``allow_hosts`` exempts host names from the guard)
    into ``cache_dir`` (default: a temporary folder). Each result is ``{"source",
    "probabilities": {medium: p} (sorted, most probable first), "top", "confidence",
    "model_version"}`` or ``{"source", "error"}`` when the image could not be read or fetched.
    """
    from modbot.images import ImageFetcher  # requests: only when a URL is given

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modbot-classify-") as tmp:
        fetcher = (ImageFetcher(cache_dir or tmp, allow_hosts=allow_hosts)
                   if any(is_url(s) for s in sources) else None)
        try:
            images = _read_sources(sources, fetcher, classifier.input_size, results)
        finally:
            if fetcher is not None:
                fetcher.close()
    predictions = classifier.predict([img for _, img in images]) if images else []
    for (i, _), pred in zip(images, predictions, strict=True):
        ordered = dict(sorted(pred.probabilities.items(), key=lambda kv: -kv[1]))
        top, conf = pred.top
        results[i].update(probabilities=ordered, top=top, confidence=conf,
                          model_version=pred.model_version)
    return results
