"""Training, validation and test trees: folder per medium → preprocessed image arrays.

Layout of a tree: top-level folders are canonical media (``modbot.domain.MEDIA``), images lie
at any depth below them (symlinks followed)::

    DATA_DIR/painting/.../*.jpg   DATA_DIR/drawing/.../*.png   ...

Images are decoded by :func:`modbot.decode.open_image` (the one decoder, with its safety
policy and reduced-scale JPEG decoding) and prepared by :func:`modbot.classify.preprocess`, as
served images are. No TensorFlow here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modbot.classify import preprocess
from modbot.decode import open_image
from modbot.domain import MEDIA
from modbot.errors import ImageError, ModelError
from modbot.fsutil import image_files

log = logging.getLogger("modbot.ml.data")


class TrainingDataError(ModelError):
    """The training/validation/test tree cannot be used (unknown medium folder, no images)."""


def scan_tree(root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Candidate image files of a folder-per-medium tree: ``{medium: [paths, sorted]}``.

    Top-level folders must be canonical media; hidden files and folders are skipped; files
    at any depth are candidates when their suffix is in :data:`modbot.fsutil.IMAGE_SUFFIXES`
    or they have no suffix; symlinked folders and files are followed. Media are returned in
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


def load_split(
    files: dict[str, list[Path]], labels: Sequence[str], size: tuple[int, int], root: Path
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode and preprocess the files of one split.

    ``files`` maps each label to its image paths (as :func:`scan_tree` returns them); ``size``
    is the model input ``(H, W)`` in pixels. Returns ``(x, y, skipped)``: ``x`` uint8
    ``(N, H, W, 3)`` RGB, ``y`` int64 ``(N,)`` indices into ``labels``, ``skipped`` the paths
    (relative to ``root``) of files that could not be read or decoded (``OSError`` or a
    :class:`modbot.errors.ImageError` from :func:`modbot.decode.open_image`); each skip is
    logged as a warning, never raised.
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
                x[n] = preprocess([open_image(path, size)], size)[0]
            except (ImageError, OSError) as exc:
                rel = os.path.relpath(path, root)
                log.warning("skipping unreadable image %s: %s", rel, exc)
                skipped.append(rel)
                continue
            y[n] = index[medium]
            n += 1
    return x[:n], y[:n], skipped


def load_eval_split(
    root: Path, labels: Sequence[str], size: tuple[int, int], what: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A validation or test tree (``what`` names it in errors) for a model with ``labels``.

    Returns ``(x, y, skipped)`` as :func:`load_split`, ``y`` indexing ``labels``. Media
    folders the model has no label for are ignored when empty; raises ``TrainingDataError``
    when one holds images.
    """
    files = scan_tree(root)
    extra = [m for m, paths in files.items() if paths and m not in labels]
    if extra:
        raise TrainingDataError(f"{what} folder {root} has media the model is not trained on: {extra}")
    files = {m: p for m, p in files.items() if m in labels}
    x, y_local, skipped = load_split(files, list(files), size, root)
    remap = np.array([list(labels).index(m) for m in files], dtype=np.int64)
    return x, (remap[y_local] if len(y_local) else y_local), skipped


def class_counts(y: np.ndarray, labels: Sequence[str]) -> dict[str, int]:
    """``{label: number of items of y equal to its index}`` for int class indices ``y`` ``(N,)``."""
    return {label: int((y == i).sum()) for i, label in enumerate(labels)}
