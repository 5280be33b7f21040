"""The generated model card, from the metrics ``modbot train`` wrote for an earlier shipped model
(``tests/data/models/train_metrics_pacs-lite0s-224-2.json``, its ``metrics.json`` as trained)."""

from __future__ import annotations

import json

from support import DATA

from modbot.ml.card import render_model_card

TRAIN_METRICS = DATA / "models" / "train_metrics_pacs-lite0s-224-2.json"


def test_model_card_renders_every_section_of_the_shipped_metrics() -> None:
    metrics = json.loads(TRAIN_METRICS.read_text())
    card = render_model_card(metrics, notes="\nPROVENANCE NOTE\n")
    assert card.startswith(f"# Model card: {metrics['version']}\n")
    for heading in ("## Data and split", "## Training", "## Validation", "## Test (held out)",
                    "## Calibration", "## LiteRT export"):
        assert f"\n{heading}" in card
    assert "PROVENANCE NOTE" in card and "EfficientNet-Lite0" in card
    assert f"accuracy **{metrics['test']['accuracy']:.4f}**" in card
    assert ("passed" if metrics["tflite"]["passed"] else "FAILED") in card
    for label in metrics["labels"]:
        assert f"| {label} |" in card


def test_model_card_without_export_or_calibration() -> None:
    metrics = json.loads(TRAIN_METRICS.read_text())
    for key in ("tflite", "calibration", "test_served"):
        metrics.pop(key, None)
    metrics["training"] = {**metrics["training"], "arch": "cnn", "weights": None}
    metrics["test"] = None
    card = render_model_card(metrics)
    assert "## LiteRT export" not in card and "## Calibration" not in card
    assert "cnn, trained end to end (from scratch)." in card
    assert "## Test (held out)\n\n_not measured_" in card
