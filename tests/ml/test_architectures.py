"""The registry of named architectures and the factory that builds them."""

from __future__ import annotations

import numpy as np
import pytest

from modbot.ml.architectures import ARCHITECTURES, build_classifier, get_architecture


def test_registry_names_and_defaults() -> None:
    assert ARCHITECTURES == ("lite0", "mobilenet_v3_small", "cnn")  # the shipped recipe first
    lite0 = get_architecture("lite0")
    assert (lite0.image_size, lite0.quantize, lite0.build) == (224, "int8", None)
    assert get_architecture("cnn").quantize == "float16"
    with pytest.raises(ValueError, match="resnet"):
        get_architecture("resnet")
    with pytest.raises(ValueError, match="lite0"):
        build_classifier("lite0", 4, (64, 64))  # built in parts, trained in two stages


def test_cnn_is_built_by_name_and_outputs_a_distribution() -> None:
    model = build_classifier("cnn", 3, (32, 32), seed=1)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    probs = np.asarray(model(np.full((2, 32, 32, 3), 127.0, np.float32), training=False))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [layer.name for layer in model.layers][1] == "aug_flip"  # augmentation inside
