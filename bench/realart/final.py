"""Assemble the served model (backbone + pooled features + trained head, preprocessing inside)
as ONE Keras model, write a modbot model directory and export it to int8 LiteRT with the
snapshot's own check (``modbot.train.export_tflite``).

Network: float32 RGB 0–255 ``(N, S, S, 3)`` → ``lite0_scale`` ((x−127)/128) → EfficientNet-Lite
→ [GAP(top 1280) | GAP(tapA) | var(tapA) | GAP(tapB) | var(tapB)] → Dense softmax. The head's
feature standardisation is folded into the Dense weights. Variance is built from stock Keras
layers (GAP(x·x) − GAP(x)², ReLU) so ``model.keras`` loads with no custom objects.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from realart import data
from realart.lite import BACKBONES, body, block_specs, load_state, set_weights, stage_last_blocks


def build_served(backbone: str, W: np.ndarray, b: np.ndarray, feats: str, mean: np.ndarray,
                 scale: np.ndarray, tap_stats: list[tuple[np.ndarray, np.ndarray]] | None = None) -> Any:
    """The whole classifier: pooled features → per-part ``Normalization`` (the head's
    standardisation ``mean``/``scale``, applied to each part BEFORE concatenation so that int8
    quantisation gives every part its own range) → Dense ``W`` (d, k), ``b`` → softmax.
    ``feats``: ``top``/``all``.

    Variance of a tap is computed int8-friendly: the feature map is first standardised per
    channel with dataset constants ``tap_stats[j] = (m_c, s_c)`` (z = (x − m_c)/s_c), so that
    z² has the same range in every channel; var(x) = s_c²·(GAP(z²) − GAP(z)²), and the factor
    s_c² is folded into the following Normalization. Without this, one per-tensor int8 scale for
    x² zeroes the small-variance channels."""
    from modbot.ml.tf import load_tensorflow
    load_tensorflow()
    import keras
    from keras import layers

    from realart.lite import TAPS
    taps = TAPS[backbone]
    state = load_state(backbone)
    specs = block_specs(state)
    last = stage_last_blocks(specs)
    S = BACKBONES[backbone][2]
    inp = keras.Input((S, S, 3), name="rgb")
    x = layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0, name="lite0_scale")(inp)
    t = body(x, specs, state["_conv_head.weight"].shape[0])
    d0 = 1280
    normed = [layers.Normalization(mean=mean[:d0], variance=scale[:d0] ** 2, name="norm_top")(
        layers.GlobalAveragePooling2D(name="gap")(t["top"]))]
    o = d0
    if feats == "all":
        for j, s_ in enumerate(taps):
            fm = t[f"block{last[s_]}"]
            w = int(fm.shape[-1])
            m_c, s_c = tap_stats[j]
            mu = layers.GlobalAveragePooling2D(name=f"tap{s_}_mean")(fm)
            normed.append(layers.Normalization(mean=mean[o:o + w], variance=scale[o:o + w] ** 2, name=f"norm_tap{s_}m")(mu))
            z = layers.Normalization(mean=m_c, variance=s_c ** 2, name=f"tap{s_}_z")(fm)
            zm = layers.GlobalAveragePooling2D(name=f"tap{s_}_zmean")(z)
            zsq = layers.GlobalAveragePooling2D(name=f"tap{s_}_zsqmean")(layers.Multiply(name=f"tap{s_}_zsq")([z, z]))
            var_z = layers.ReLU(name=f"tap{s_}_zvar")(layers.Subtract(name=f"tap{s_}_sub")(
                [zsq, layers.Multiply(name=f"tap{s_}_zm2")([zm, zm])]))
            # head standardises var_x = s_c² var_z: (var_x − mean)/scale = (var_z − mean/s_c²)/(scale/s_c²)
            s2 = s_c ** 2
            normed.append(layers.Normalization(mean=mean[o + w:o + 2 * w] / s2,
                                               variance=(scale[o + w:o + 2 * w] / s2) ** 2, name=f"norm_tap{s_}v")(var_z))
            o += 2 * w
    z = layers.Concatenate(name="pooled")(normed) if len(normed) > 1 else normed[0]
    out = layers.Dense(W.shape[1], activation="softmax", name="medium")(z)
    model = keras.Model(inp, out, name=f"modbot_medium_{backbone}")
    set_weights(model, state, specs)
    model.get_layer("medium").set_weights([W.astype(np.float32), b.astype(np.float32)])
    return model


def tap_channel_stats(F: np.ndarray, backbone: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-channel mean m_c and std s_c of each tap's feature map over images and positions,
    from cached pooled features ``F`` ([top | mean_j | var_j ...], training images):
    m_c = E[μ], s_c² = E[var + μ²] − m_c²."""
    from realart.heads import tap_widths
    out, o = [], 1280
    for w in tap_widths(backbone):
        mu, var = F[:, o:o + w], F[:, o + w:o + 2 * w]
        m = mu.mean(0)
        s = np.sqrt(np.maximum((var + mu ** 2).mean(0) - m ** 2, 1e-6))
        out.append((m.astype(np.float32), s.astype(np.float32)))
        o += 2 * w
    return out


def fold_standardisation(mean: np.ndarray, scale: np.ndarray, W: np.ndarray, b: np.ndarray):
    """Dense on (x−mean)/scale  ==  Dense' on x with W' = W/scale, b' = b − (mean/scale)·W."""
    W2 = W / scale[:, None]
    return W2, b - (mean / scale) @ W


def write_model_dir(out: Path, model: Any, version: str, size: int, temperature: float,
                    metrics: dict, judge: dict | None = None) -> None:
    """Write model.keras (deflated), labels.json and metrics.json in modbot's format."""
    import keras
    from modbot.ml.export import deflate_keras_file

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.tflite",):
        (out / stale).unlink(missing_ok=True)
    keras.Model(model.inputs, model.outputs, name=model.name).save(out / "model.keras")
    deflate_keras_file(out / "model.keras")
    labels = {"labels": list(data.LABELS), "version": version, "input_size": [size, size],
              "input": "RGB uint8 0-255, centre-cropped and bicubic-resized by modbot.classify.preprocess",
              "temperature": round(float(temperature), 4),
              "calibration": "temperature scaling fitted on leave-source-out out-of-fold validation predictions (exp15)"}
    if judge:
        labels["judge"] = judge
    (out / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    metrics = {"version": version, "labels": list(data.LABELS), "input_size": [size, size],
               "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), **metrics}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
