"""EfficientNet-Lite0: its block table, and its PyTorch weights read without PyTorch."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from modbot.errors import ModelError
from modbot.ml.backbones import (
    check_skip_blocks,
    lite0_block_specs,
    lite0_keras_weights,
    lite0_residual_blocks,
    lite0_weights_path,
    load_torch_state_dict,
)


def test_only_residual_blocks_can_be_skipped() -> None:
    assert len(lite0_block_specs()) == 16
    assert lite0_residual_blocks() == (2, 4, 6, 7, 9, 10, 12, 13, 14)
    assert check_skip_blocks([14, 10, 14]) == (10, 14)
    with pytest.raises(ValueError, match="11"):
        check_skip_blocks([11])


def test_lite0_weights_load_without_torch() -> None:
    state = load_torch_state_dict(lite0_weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_fc.weight"].shape == (1000, 1280)
    assert (state["_bn1.running_var"] > 0).all()
    mapped = lite0_keras_weights(state)
    assert mapped["block15_project_conv"][0].shape == (1, 1, 1152, 320)
    assert mapped["block3_dwconv"][0].shape == (5, 5, 144, 1)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_weights_reader_refuses_code_in_the_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        pickle.dump({"x": _Evil()}, f, protocol=2)
    with pytest.raises(ModelError, match="refusing"):
        load_torch_state_dict(path)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ModelError):
        load_torch_state_dict(tmp_path / "junk.pth")
