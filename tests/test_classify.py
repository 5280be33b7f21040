"""Classify stage and ``train_model``: the real shipped model on real PACS images.

The images in ``tests/data/pacs_sample`` are from the shipped model's held-out objects
(giraffe: test, horse: validation); see the README there. TensorFlow makes each model load
take a second or more, so the tests are few and share one loaded model.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modbot.classify import (
    Classifier,
    KerasClassifier,
    preprocess,
    read_labels,
    shipped_model_dir,
)
from modbot.domain import MEDIA
from modbot.errors import ModelError
from modbot.train import TrainingDataError, classification_report, train_model

SAMPLE = Path(__file__).parent / "data" / "pacs_sample"

#: Measured: the shipped model pacs-cnn128-1 gets 11 of the 12 sample images right (0.917;
#: one painting is taken for digital), in line with its 0.899 held-out accuracy. The bound,
#: 9 of 12, leaves room for a retrained model of similar quality and is far above chance
#: (3 of 12) or a model stuck on one class (3 of 12).
MIN_SAMPLE_ACCURACY = 0.75


def _sample() -> tuple[list[str], list[Image.Image]]:
    paths = sorted(p for p in SAMPLE.glob("*/*") if p.suffix in (".jpg", ".png"))
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    return [p.parent.name for p in paths], images


@pytest.fixture(scope="module")
def shipped() -> KerasClassifier:
    return KerasClassifier.load()


def test_shipped_model_gives_a_distribution_over_its_labels(shipped: KerasClassifier) -> None:
    meta = read_labels(shipped_model_dir())
    assert isinstance(shipped, Classifier)
    assert shipped.labels == meta["labels"] and set(shipped.labels) <= set(MEDIA)
    assert shipped.version == meta["version"]
    truth, images = _sample()
    assert len(images) == 12
    predictions = shipped.predict(images)
    assert len(predictions) == len(images)
    for pred in predictions:
        assert list(pred.probabilities) == list(shipped.labels)
        assert all(type(p) is float and 0.0 <= p <= 1.0 for p in pred.probabilities.values())
        assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        assert pred.model_version == shipped.version
    assert shipped.predict([]) == []


def test_batch_and_single_predictions_agree(shipped: KerasClassifier) -> None:
    _, images = _sample()
    # One odd image in the batch: wide, with an alpha channel (exercises crop + compositing).
    wide = Image.new("RGBA", (300, 150), (0, 0, 0, 0))
    wide.paste(images[0].resize((150, 150)), (75, 0))
    batch = images[:5] + [wide]
    together = shipped.predict(batch)
    for image, joint in zip(batch, together):
        alone = shipped.predict([image])[0]
        for label in shipped.labels:
            assert alone.probabilities[label] == pytest.approx(joint.probabilities[label], abs=1e-5)


def test_shipped_model_accuracy_on_held_out_sample(shipped: KerasClassifier) -> None:
    truth, images = _sample()
    predicted = [p.top[0] for p in shipped.predict(images)]
    report = classification_report(truth, predicted, shipped.labels)
    assert report["accuracy"] >= MIN_SAMPLE_ACCURACY, report["confusion"]


def _copy_model_dir(tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(shipped_model_dir(), dst, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return dst


def _edit_labels(model_dir: Path, **changes: object) -> None:
    path = model_dir / "labels.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_dir", "not found"),
        ("no_labels", "labels.json"),
        ("unknown_medium", "unknown medium"),
        ("label_count", "output shape"),
        ("input_size", "input shape"),
        ("no_model", "model.keras"),
        ("corrupt_model", "cannot load"),
    ],
)
def test_broken_model_dir_raises_model_error(tmp_path: Path, breakage: str, message: str) -> None:
    model_dir = _copy_model_dir(tmp_path)
    labels = list(read_labels(model_dir)["labels"])
    if breakage == "no_dir":
        model_dir = tmp_path / "missing"
    elif breakage == "no_labels":
        (model_dir / "labels.json").unlink()
    elif breakage == "unknown_medium":
        _edit_labels(model_dir, labels=labels[:-1] + ["watercolour"])
    elif breakage == "label_count":
        _edit_labels(model_dir, labels=labels[:-1])
    elif breakage == "input_size":
        _edit_labels(model_dir, input_size=[64, 64])
    elif breakage == "no_model":
        (model_dir / "model.keras").unlink()
    elif breakage == "corrupt_model":
        (model_dir / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match=message):
        KerasClassifier.load(model_dir)


def test_preprocess_crops_centre_and_composites_alpha_on_white() -> None:
    wide = Image.new("RGB", (300, 100), (0, 0, 255))
    wide.paste((255, 0, 0), (100, 0, 200, 100))  # the centre square is red
    clear = Image.new("RGBA", (50, 80), (10, 20, 30, 0))  # fully transparent
    batch = preprocess([wide, clear], (32, 32))
    assert batch.dtype == np.uint8 and batch.shape == (2, 32, 32, 3)
    assert (batch[0, :, 2:-2] == (255, 0, 0)).all()
    assert (batch[1] == 255).all()
    assert preprocess([], 16).shape == (0, 16, 16, 3)
    with pytest.raises(TypeError):
        preprocess([np.zeros((4, 4, 3))], 8)  # type: ignore[list-item]


def test_classification_report_matches_hand_computation() -> None:
    labels = ["digital", "painting", "drawing"]
    y_true = ["digital", "digital", "digital", "painting", "painting", "drawing"]
    y_pred = ["digital", "digital", "painting", "painting", "digital", "painting"]
    rep = classification_report(y_true, y_pred, labels)
    assert rep["confusion"]["matrix"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert rep["accuracy"] == pytest.approx(3 / 6)
    d, p, dr = (rep["per_class"][k] for k in labels)
    assert (d["precision"], d["recall"], d["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (p["precision"], p["recall"], p["f1"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2), pytest.approx(0.4))
    assert (dr["precision"], dr["recall"], dr["f1"]) == (0.0, 0.0, 0.0)
    assert rep["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.0) / 3)
    # A label that occurs nowhere is reported but left out of the macro average.
    rep4 = classification_report(y_true, y_pred, labels + ["ink"])
    assert rep4["macro_f1"] == pytest.approx(rep["macro_f1"]) and rep4["per_class"]["ink"]["support"] == 0
    with pytest.raises(ValueError):
        classification_report(["digital"], ["sculpture"], labels)


def test_tiny_training_run_writes_a_loadable_model_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "train"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("README.md"))
    (data / "painting" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="modbot.train"):
        metrics = train_model(data, out, image_size=32, epochs=1, batch_size=4, val_dir=SAMPLE, version="tiny-1", verbose=0)
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
    clf = KerasClassifier.load(out)
    _, images = _sample()
    preds = clf.predict(images[:2])
    assert [list(p.probabilities) for p in preds] == [meta["labels"]] * 2


def test_training_tree_with_unknown_medium_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "watercolour").mkdir()
    with pytest.raises(TrainingDataError, match="watercolour"):
        train_model(tmp_path, tmp_path / "out", epochs=1)
