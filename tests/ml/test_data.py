"""Training trees: scanning, decoding through the one decoder, skipping unreadable images."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import PACS_SAMPLE

from modbot.classify import preprocess
from modbot.decode import open_image
from modbot.ml.data import TrainingDataError, load_eval_split, load_split, scan_tree


def test_tree_is_scanned_decoded_and_unreadable_files_skipped(tmp_path: Path, caplog) -> None:
    shutil.copytree(PACS_SAMPLE, tmp_path / "t", ignore=shutil.ignore_patterns("README.md"))
    root = tmp_path / "t"
    (root / "painting" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (root / "drawing" / "script.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF")  # not an allowed format
    (root / ".hidden").mkdir()
    files = scan_tree(root)
    assert list(files) == ["digital", "painting", "drawing", "photography"]  # MEDIA order
    with caplog.at_level(logging.WARNING, logger="modbot.ml"):
        x, y, skipped = load_split(files, list(files), (32, 32), root)
    assert sorted(skipped) == ["drawing/script.jpg", "painting/broken.jpg"]
    assert "painting/broken.jpg" in caplog.text
    assert x.dtype == np.uint8 and x.shape == (12, 32, 32, 3)
    assert np.bincount(y).tolist() == [3, 3, 3, 3]
    first = files["digital"][0]
    assert (x[0] == preprocess([open_image(first, (32, 32))], (32, 32))[0]).all()


def test_eval_tree_is_mapped_onto_the_model_labels(tmp_path: Path) -> None:
    labels = ["painting", "drawing", "photography", "digital"]  # another order than MEDIA
    x, y, skipped = load_eval_split(PACS_SAMPLE, labels, (16, 16), "test")
    assert x.shape == (12, 16, 16, 3) and skipped == []
    # files come in MEDIA order (digital first); their labels are indices into `labels`
    assert y.tolist() == [3] * 3 + [0] * 3 + [1] * 3 + [2] * 3
    with pytest.raises(TrainingDataError, match="not trained on"):
        load_eval_split(PACS_SAMPLE, ["painting", "drawing"], (16, 16), "test")


def test_unknown_medium_folder_and_missing_root_are_refused(tmp_path: Path) -> None:
    (tmp_path / "watercolour").mkdir()
    with pytest.raises(TrainingDataError, match="watercolour"):
        scan_tree(tmp_path)
    with pytest.raises(TrainingDataError, match="not found"):
        scan_tree(tmp_path / "missing")
    Image.new("RGB", (8, 8)).save(tmp_path / "loose.png")  # files at the top level are ignored
    (tmp_path / "watercolour").rmdir()
    assert scan_tree(tmp_path) == {}
