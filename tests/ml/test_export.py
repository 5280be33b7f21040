"""The LiteRT export and its recorded check: argument checks, and a full-integer (int8) export
of a tiny Lite0 model whose recorded figures are measured again here, independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import PACS_SAMPLE, edit_labels

from modbot.classify import LiteRTClassifier, load_classifier, read_labels
from modbot.ml.data import load_eval_split
from modbot.ml.export import INT8_MAX_MEAN_ABS_DIFF, INT8_MIN_AGREEMENT, compare_exports, export_tflite
from modbot.ml.keras_classifier import KerasClassifier
from modbot.ml.training import train_model


def test_export_arguments_are_checked_before_anything_is_loaded(tmp_path: Path) -> None:
    images = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="quantize"):
        export_tflite(tmp_path, images, quantize="int4")
    with pytest.raises(ValueError, match="calibration_images"):
        export_tflite(tmp_path, images, quantize="int8")


def test_compare_exports_by_hand() -> None:
    a = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    b = np.array([[0.8, 0.2], [0.6, 0.4], [0.5, 0.5]])
    rec = compare_exports(a, b)
    assert rec["n_images"] == 3 and rec["argmax_agreement"] == pytest.approx(2 / 3)
    assert rec["max_abs_diff"] == pytest.approx(0.2) and rec["mean_abs_diff"] == pytest.approx(0.6 / 6)
    assert compare_exports(np.zeros((0, 2)), np.zeros((0, 2)))["argmax_agreement"] is None


@pytest.mark.slow
def test_lite0_run_with_skipped_blocks_and_int8_export(tmp_path: Path) -> None:
    """Residual blocks left out of the network, and the full-integer LiteRT export: raw uint8
    pixels go in (the input's quantisation is the Lite0 scaling); the recorded check agrees
    with the two models measured again here, and the export serves exactly when it passed."""
    out = tmp_path / "lite0-int8"
    metrics = train_model(PACS_SAMPLE, out, arch="lite0", image_size=64, epochs=1, batch_size=6, aug_copies=1,
                          val_dir=PACS_SAMPLE, version="tiny-int8", verbose=0, skip_blocks=(14, 13),
                          quantize="int8")
    assert metrics["training"]["skip_blocks"] == [13, 14]
    keras_clf = KerasClassifier.load(out)
    names = {layer.name for layer in keras_clf._model.layers}
    assert "block12_project_conv" in names and "block15_project_conv" in names
    assert not any(n.startswith(("block13_", "block14_")) for n in names)
    meta = read_labels(out)
    record = meta["tflite"]
    assert record["quantize"] == "int8" and record["n_images"] == 12 and record["calibration_images"] == 12
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=str(out / "model.tflite")).get_input_details()[0]
    assert detail["dtype"] == np.uint8 and detail["quantization"] == (1 / 128, 127)

    # The check images are the validation tree as training decoded it; run both models on them.
    x_check, _, _ = load_eval_split(PACS_SAMPLE, list(meta["labels"]), (64, 64), "validation")
    keras_p = keras_clf.predict_batch(x_check)
    lite_p = LiteRTClassifier.load(out, require_check=False).predict_batch(x_check)
    assert lite_p.shape == keras_p.shape == (12, 4) and np.allclose(lite_p.sum(1), 1.0)
    agreement = float(np.mean(keras_p.argmax(1) == lite_p.argmax(1)))
    mean_diff = float(np.abs(keras_p - lite_p).mean())
    assert record["argmax_agreement"] == pytest.approx(agreement, abs=1e-9)
    assert record["mean_abs_diff"] == pytest.approx(mean_diff, abs=1e-6)
    assert record["max_abs_diff"] == pytest.approx(float(np.abs(keras_p - lite_p).max()), abs=1e-6)
    should_serve = agreement >= INT8_MIN_AGREEMENT and mean_diff <= INT8_MAX_MEAN_ABS_DIFF
    assert record["passed"] is should_serve
    assert type(load_classifier(out)) is (LiteRTClassifier if should_serve else KerasClassifier)
    # The serving rule both ways, whatever this tiny model measured: flip the recorded verdict.
    edit_labels(out, tflite={**record, "passed": not should_serve})
    assert type(load_classifier(out)) is (KerasClassifier if should_serve else LiteRTClassifier)
