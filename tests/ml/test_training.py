"""``train_model`` end to end on the twelve PACS sample images: tiny models, a few seconds to a
minute each (marked slow), and the argument and tree checks that refuse before training."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from support import PACS_SAMPLE, pacs_sample

from modbot.classify import LiteRTClassifier, load_classifier, preprocess, read_labels
from modbot.ml.data import TrainingDataError, load_eval_split
from modbot.ml.export import TFLITE_MAX_ABS_DIFF
from modbot.ml.keras_classifier import KerasClassifier
from modbot.ml.training import train_model


@pytest.mark.slow
def test_tiny_training_run_writes_a_loadable_model_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "train"
    shutil.copytree(PACS_SAMPLE, data, ignore=shutil.ignore_patterns("README.md"))
    (data / "painting" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="modbot.ml"):
        metrics = train_model(data, out, arch="cnn", image_size=32, epochs=1, batch_size=4, val_dir=PACS_SAMPLE,
                              version="tiny-1", export=False, verbose=0)
    assert "painting/broken.jpg" in caplog.text
    assert metrics["data"]["train"]["skipped"] == ["painting/broken.jpg"]
    assert metrics["data"]["train"]["counts"] == {"digital": 3, "painting": 3, "drawing": 3, "photography": 3}
    assert metrics["validation"]["n"] == 12 and metrics["test"] is None
    for name in ("model.keras", "labels.json", "metrics.json", "MODEL_CARD.md"):
        assert (out / name).is_file()
    meta = json.loads((out / "labels.json").read_text())
    assert meta["labels"] == ["digital", "painting", "drawing", "photography"]  # MEDIA order
    assert meta["version"] == "tiny-1" and meta["input_size"] == [32, 32]
    assert json.loads((out / "metrics.json").read_text())["version"] == "tiny-1"
    assert meta["temperature"] > 0 and metrics["calibration"]["temperature"] == meta["temperature"]
    # judge thresholds fitted on the 12 validation images: with 3 per medium and a 2 % budget,
    # each is the lowest calibrated probability of its own medium (none of them is flagged)
    x_val, y_val, _ = load_eval_split(PACS_SAMPLE, meta["labels"], (32, 32), "validation")
    val = KerasClassifier.load(out).predict_batch(x_val)  # calibrated, as the thresholds are
    assert set(meta["judge"]) >= set(meta["labels"]) and meta["judge"]["fit_budget"] == 0.02
    for k, medium in enumerate(meta["labels"]):
        assert meta["judge"][medium] == pytest.approx(val[y_val == k, k].min(), abs=1e-5)
    assert read_labels(out)["flag_thresholds"] == {m: meta["judge"][m] for m in meta["labels"]}
    assert metrics["judge"]["fit_budget"] == 0.02
    assert not (out / "model.tflite").exists()
    clf = load_classifier(out)  # no export: Keras
    assert type(clf) is KerasClassifier
    _, images = pacs_sample()
    preds = clf.predict(images[:2])
    assert [list(p.probabilities) for p in preds] == [meta["labels"]] * 2


@pytest.mark.slow
def test_tiny_lite0_run_fine_tunes_exports_and_checks_litert(tmp_path: Path) -> None:
    """The shipped recipe end to end on 12 images at 64 px: cached features, fine-tuning of
    the top blocks, the whole model reassembled with its augmentation, temperature, LiteRT
    export and its recorded check."""
    out = tmp_path / "lite0"
    metrics = train_model(PACS_SAMPLE, out, arch="lite0", image_size=64, epochs=1, batch_size=6, aug_copies=1,
                          val_dir=PACS_SAMPLE, test_dir=PACS_SAMPLE, version="tiny-lite0", verbose=0,
                          quantize="float16")
    assert metrics["training"]["fine_tune_from"] == 8 and metrics["training"]["aug_copies"] == 1
    assert metrics["training"]["skip_blocks"] == [10, 13, 14]
    record = metrics["tflite"]
    assert record["passed"] and record["max_abs_diff"] <= TFLITE_MAX_ABS_DIFF and record["n_images"] == 12
    assert read_labels(out)["tflite"]["tflite_sha256"] == record["tflite_sha256"]
    assert metrics["test_served"]["n"] == 12  # scored through the passed export
    lite = load_classifier(out)
    assert type(lite) is LiteRTClassifier
    keras_clf = KerasClassifier.load(out)
    layer_names = [layer.name for layer in keras_clf._model.layers]
    assert "aug_jpeg" in layer_names and "aug_rescale" in layer_names and "block15_project_conv" in layer_names
    _, images = pacs_sample()
    batch = preprocess(images, (64, 64))
    assert np.abs(lite.predict_batch(batch) - keras_clf.predict_batch(batch)).max() <= TFLITE_MAX_ABS_DIFF
    assert "## LiteRT export" in (out / "MODEL_CARD.md").read_text()


def test_bad_arguments_are_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quantize"):
        train_model(PACS_SAMPLE, tmp_path / "unused", quantize="int4")
    with pytest.raises(ValueError, match="int8"):
        train_model(PACS_SAMPLE, tmp_path / "unused", arch="cnn", quantize="int8")
    with pytest.raises(ValueError, match="arch"):
        train_model(PACS_SAMPLE, tmp_path / "unused", arch="resnet")
    with pytest.raises(ValueError, match="11"):
        train_model(PACS_SAMPLE, tmp_path / "unused", skip_blocks=(11,))
    with pytest.raises(ValueError, match="image_size"):
        train_model(PACS_SAMPLE, tmp_path / "unused", image_size=4)
    assert not (tmp_path / "unused").exists()


def test_training_tree_with_unknown_medium_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "watercolour").mkdir()
    with pytest.raises(TrainingDataError, match="watercolour"):
        train_model(tmp_path, tmp_path / "out", epochs=1)
    single = tmp_path / "single"
    shutil.copytree(PACS_SAMPLE / "drawing", single / "drawing")
    with pytest.raises(TrainingDataError, match="at least two media"):
        train_model(single, tmp_path / "out", epochs=1)
