"""Classify stage and ``train_model``: the real shipped model on real PACS images.

The images in ``tests/data/pacs_sample`` are of the shipped model's held-out test object
(giraffe), which it never trained on; see the README there. TensorFlow makes each model load
take a second or more, so the tests are few and share one loaded model. Also: the LiteRT
export against the Keras model, calibration, and the PyTorch-weights reader.
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
    LiteRTClassifier,
    apply_temperature,
    load_classifier,
    preprocess,
    read_labels,
    shipped_model_dir,
    tflite_check_status,
)
from modbot.decode import open_image
from modbot.domain import MEDIA
from modbot.errors import ModelError
from modbot.ml.training import (
    INT8_MAX_MEAN_ABS_DIFF,
    INT8_MIN_AGREEMENT,
    TFLITE_MAX_ABS_DIFF,
    TrainingDataError,
    classification_report,
    expected_calibration_error,
    fit_temperature,
    train_model,
)

SAMPLE = Path(__file__).parent / "data" / "pacs_sample"

#: Measured: the shipped model pacs-lite0s-224-2 gets 11 of the 12 sample images right (one
#: giraffe photograph is taken for a painting, its known weak spot; see MODEL_CARD.md), as did
#: the earlier pacs-lite0-224-1 and pacs-cnn128-1 on the sample of that time. The bound, 10 of 12, leaves room for a retrained model of
#: similar quality and is far above chance (3 of 12) or a model stuck on one class.
MIN_SAMPLE_ACCURACY = 10 / 12


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
    with caplog.at_level(logging.WARNING, logger="modbot.ml.training"):
        metrics = train_model(data, out, arch="cnn", image_size=32, epochs=1, batch_size=4, val_dir=SAMPLE,
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
    assert not (out / "model.tflite").exists()
    clf = load_classifier(out)  # no export: Keras
    assert isinstance(clf, KerasClassifier)
    _, images = _sample()
    preds = clf.predict(images[:2])
    assert [list(p.probabilities) for p in preds] == [meta["labels"]] * 2


def test_tiny_lite0_run_fine_tunes_exports_and_checks_litert(tmp_path: Path) -> None:
    """The shipped recipe end to end on 12 images at 64 px: cached features, fine-tuning of
    the top blocks, the whole model reassembled with its augmentation, temperature, LiteRT
    export and its recorded check."""
    out = tmp_path / "lite0"
    metrics = train_model(SAMPLE, out, arch="lite0", image_size=64, epochs=1, batch_size=6, aug_copies=1,
                          val_dir=SAMPLE, version="tiny-lite0", verbose=0, quantize="float16")
    assert metrics["training"]["fine_tune_from"] == 8 and metrics["training"]["aug_copies"] == 1
    assert metrics["training"]["skip_blocks"] == [10, 13, 14]
    record = metrics["tflite"]
    assert record["passed"] and record["max_abs_diff"] <= TFLITE_MAX_ABS_DIFF and record["n_images"] == 12
    assert read_labels(out)["tflite"]["tflite_sha256"] == record["tflite_sha256"]
    lite = load_classifier(out)
    assert isinstance(lite, LiteRTClassifier)
    keras_clf = KerasClassifier.load(out)
    layer_names = [layer.name for layer in keras_clf._model.layers]
    assert "aug_jpeg" in layer_names and "aug_rescale" in layer_names and "block15_project_conv" in layer_names
    _, images = _sample()
    batch = preprocess(images, (64, 64))
    assert np.abs(lite.predict_batch(batch) - keras_clf.predict_batch(batch)).max() <= TFLITE_MAX_ABS_DIFF


def test_lite0_run_with_skipped_blocks_and_int8_export(tmp_path: Path) -> None:
    """Residual blocks left out of the network, and the full-integer LiteRT export: raw uint8
    pixels go in (the input's quantisation is the Lite0 scaling), its check is recorded, and it
    serves exactly when the check passed."""
    out = tmp_path / "lite0-int8"
    metrics = train_model(SAMPLE, out, arch="lite0", image_size=64, epochs=1, batch_size=6, aug_copies=1,
                          val_dir=SAMPLE, version="tiny-int8", verbose=0, skip_blocks=(14, 13),
                          quantize="int8")
    assert metrics["training"]["skip_blocks"] == [13, 14]
    keras_clf = KerasClassifier.load(out)
    names = {layer.name for layer in keras_clf._model.layers}
    assert "block12_project_conv" in names and "block15_project_conv" in names
    assert not any(n.startswith(("block13_", "block14_")) for n in names)
    record = read_labels(out)["tflite"]
    assert record["quantize"] == "int8" and record["n_images"] == 12
    assert record["passed"] == (record["argmax_agreement"] >= INT8_MIN_AGREEMENT
                                and record["mean_abs_diff"] <= INT8_MAX_MEAN_ABS_DIFF)
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=str(out / "model.tflite")).get_input_details()[0]
    assert detail["dtype"] == np.uint8 and detail["quantization"] == (1 / 128, 127)
    lite = LiteRTClassifier.load(out, require_check=False)
    _, images = _sample()
    batch = preprocess(images, (64, 64))
    lite_p, keras_p = lite.predict_batch(batch), keras_clf.predict_batch(batch)
    assert lite_p.shape == keras_p.shape and np.allclose(lite_p.sum(1), 1.0)
    assert np.abs(lite_p - keras_p).mean() == pytest.approx(record["mean_abs_diff"], abs=0.02)
    served = load_classifier(out)
    assert isinstance(served, LiteRTClassifier if record["passed"] else KerasClassifier)


def test_only_residual_blocks_can_be_skipped() -> None:
    from modbot.ml.backbones import check_skip_blocks, lite0_residual_blocks

    assert lite0_residual_blocks() == (2, 4, 6, 7, 9, 10, 12, 13, 14)
    assert check_skip_blocks([14, 10, 14]) == (10, 14)
    with pytest.raises(ValueError, match="11"):
        check_skip_blocks([11])
    with pytest.raises(ValueError, match="quantize"):
        train_model(SAMPLE, "unused", quantize="int4")


def test_training_tree_with_unknown_medium_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "watercolour").mkdir()
    with pytest.raises(TrainingDataError, match="watercolour"):
        train_model(tmp_path, tmp_path / "out", epochs=1)


# ---- LiteRT export, backend choice, calibration


@pytest.fixture(scope="module")
def shipped_lite() -> LiteRTClassifier:
    return LiteRTClassifier.load()


def test_shipped_litert_export_matches_keras(shipped: KerasClassifier, shipped_lite: LiteRTClassifier) -> None:
    meta = read_labels(shipped_model_dir())
    record = meta["tflite"]
    assert record["passed"] and tflite_check_status(shipped_model_dir()) is None
    _, images = _sample()
    batch = preprocess(images, shipped.input_size)
    keras_p = shipped.predict_batch(batch)
    lite_p = shipped_lite.predict_batch(batch)
    assert lite_p.shape == keras_p.shape == (12, len(shipped.labels))
    assert (keras_p.argmax(1) == lite_p.argmax(1)).all()
    if record["quantize"] == "int8":
        # full-integer export: judged by top-1 agreement and mean |dp| (see export_tflite)
        assert record["argmax_agreement"] >= INT8_MIN_AGREEMENT and record["n_images"] >= 500
        assert record["mean_abs_diff"] <= INT8_MAX_MEAN_ABS_DIFF
        assert np.abs(keras_p - lite_p).mean() <= 2 * INT8_MAX_MEAN_ABS_DIFF
    else:
        assert record["max_abs_diff"] <= record["bound"] == TFLITE_MAX_ABS_DIFF
        assert np.abs(keras_p - lite_p).max() <= TFLITE_MAX_ABS_DIFF
    # batch of one and chunks of many agree (the interpreter is resized in between)
    chunked = LiteRTClassifier.load(batch=5)
    assert np.abs(chunked.predict_batch(batch) - lite_p).max() < 1e-5
    assert np.abs(shipped_lite.predict_batch(batch[7:8])[0] - lite_p[7]).max() < 1e-5
    preds = shipped_lite.predict(images[:2])
    assert [list(p.probabilities) for p in preds] == [list(shipped.labels)] * 2
    assert shipped_lite.predict([]) == []


def test_load_classifier_prefers_a_checked_export_and_falls_back_to_keras(tmp_path: Path) -> None:
    assert isinstance(load_classifier(), LiteRTClassifier)
    model_dir = _copy_model_dir(tmp_path)
    (model_dir / "model.tflite").write_bytes((model_dir / "model.tflite").read_bytes() + b"\0")
    assert "changed" in (tflite_check_status(model_dir) or "")
    with pytest.raises(ModelError, match="not usable"):
        LiteRTClassifier.load(model_dir)
    assert isinstance(load_classifier(model_dir), KerasClassifier)
    with pytest.raises(ValueError):
        load_classifier(model_dir, backend="onnx")


def test_temperature_is_stored_and_applied(tmp_path: Path, shipped_lite: LiteRTClassifier) -> None:
    meta = read_labels(shipped_model_dir())
    assert meta["temperature"] > 0 and meta["temperature"] != 1.0
    assert shipped_lite.temperature == meta["temperature"]
    model_dir = _copy_model_dir(tmp_path)
    _, images = _sample()
    batch = preprocess(images[:6], shipped_lite.input_size)
    _edit_labels(model_dir, temperature=1.0)
    raw = LiteRTClassifier.load(model_dir).predict_batch(batch)
    assert np.allclose(shipped_lite.predict_batch(batch), apply_temperature(raw, meta["temperature"]), atol=1e-9)
    _edit_labels(model_dir, temperature=3.0)
    soft = LiteRTClassifier.load(model_dir).predict_batch(batch)
    assert np.allclose(soft, apply_temperature(raw, 3.0), atol=1e-9)
    assert (soft.max(axis=1) < raw.max(axis=1)).all()  # T > 1 softens
    assert (soft.argmax(axis=1) == raw.argmax(axis=1)).all()  # and never changes the decision
    _edit_labels(model_dir, temperature=-1)
    with pytest.raises(ModelError, match="temperature"):
        read_labels(model_dir)


def test_fit_temperature_recovers_a_known_temperature_and_lowers_ece() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(4000, 4))
    true_t = 2.5  # labels drawn from softmax(logits / 2.5): softmax(logits) is over-confident
    p_true = apply_temperature(logits_to_probs(logits), true_t)
    y = np.array([rng.choice(4, p=p) for p in p_true])
    overconfident = logits_to_probs(logits)
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(true_t, rel=0.1)
    assert expected_calibration_error(apply_temperature(overconfident, t), y) < \
        expected_calibration_error(overconfident, y) / 2


def logits_to_probs(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_expected_calibration_error_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins (15 equal): 0.9 → two images, accuracy 0.5, |0.5 − 0.9| · 2/4 = 0.2;
    # 0.6 → one, right, |1 − 0.6| · 1/4 = 0.1; 0.7 → one, right, |1 − 0.7| · 1/4 = 0.075
    assert expected_calibration_error(probs, y) == pytest.approx(0.375)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros((0,), dtype=int)) == 0.0


def test_open_image_decodes_large_jpegs_at_reduced_scale(tmp_path: Path) -> None:
    big = Image.new("RGB", (1500, 1000), (200, 30, 30))
    big.paste((30, 30, 200), (500, 0, 1000, 1000))
    path = tmp_path / "big.jpg"
    big.save(path, quality=90)
    small = open_image(path, (160, 160))
    assert small.mode == "RGB" and 160 <= min(small.size) < 1000  # libjpeg scaled it down
    assert small.size[0] / small.size[1] == pytest.approx(1.5, abs=0.02)
    full = open_image(path.read_bytes())  # no size: full resolution, from bytes
    assert full.size == (1500, 1000)
    centre = preprocess([small], (32, 32))[0]
    assert centre[16, 16, 2] > 150 and centre[16, 16, 0] < 80  # the blue middle third


# ---- PyTorch weights without PyTorch


def test_lite0_weights_load_without_torch() -> None:
    from modbot.ml.backbones import lite0_keras_weights, lite0_weights_path, load_torch_state_dict

    state = load_torch_state_dict(lite0_weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_fc.weight"].shape == (1000, 1280)
    assert (state["_bn1.running_var"] > 0).all()
    mapped = lite0_keras_weights(state)
    assert mapped["block15_project_conv"][0].shape == (1, 1, 1152, 320)
    assert mapped["block3_dwconv"][0].shape == (5, 5, 144, 1)


def test_weights_reader_refuses_code_in_the_pickle(tmp_path: Path) -> None:
    import os
    import pickle

    from modbot.ml.backbones import load_torch_state_dict

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        pickle.dump({"x": Evil()}, f, protocol=2)
    with pytest.raises(ModelError, match="refusing"):
        load_torch_state_dict(path)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ModelError):
        load_torch_state_dict(tmp_path / "junk.pth")
