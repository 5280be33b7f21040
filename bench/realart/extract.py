"""Compute and cache pooled backbone features once per (image, draw).

A draw is ``clean`` (centre crop, no augmentation: what serving sees), ``tiles`` (the
multi-crop tiles of elongated realart images, clean), ``detail<k>`` (the centre square's
central 1/k, i.e. the artwork zoomed k× so that strokes and paper texture are seen), ``full<seed>`` (augmentation with the
photo-of-artwork ops) or ``generic<seed>`` (augmentation without them). Features per crop:
``[mean(top 1280) | mean(tapA) | std(tapA) | mean(tapB) | std(tapB)]`` where the taps are the
outputs of the last block of stages 3 and 5. Saved to ``features/<backbone>_<draw>_<subset>.npz``
with ``idx`` (item index in ``data.all_items()``), ``feats`` (float16) and for tiles ``owner``.

Usage: python -m realart.extract BACKBONE DRAW SUBSET   (SUBSET: cmp | big | realart | all)
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from realart import data
from realart.augment import augment
from realart.lite import BACKBONES, TAPS, build_lite

FEAT_DIR = data.EXP / "features"


def subset_indices(items: list[data.Item], subset: str) -> np.ndarray:
    """``cmp``: realart + 100 PACS per (depiction, object) (backbone comparison);
    ``big``: realart + 200 per cell (the chosen backbone's draws); ``realart``: realart only;
    ``all``: realart + every PACS image (7,935)."""
    real = np.array([i for i, it in enumerate(items) if it.dataset == "realart"])
    if subset == "realart":
        return real
    if subset == "all":
        return np.arange(len(items))
    per = {"cmp": 100, "big": 200}[subset]
    return np.concatenate([real, data.pacs_subset(items, per_cell=per)])


def prepare(item: data.Item, draw: str, size: int, index: int) -> np.ndarray:
    """uint8 crops for one image and draw (seeded by draw and index: reproducible)."""
    img = data.load_rgba(item.path)
    if draw == "clean":
        return data.image_to_tensors(img, size, "center")
    if draw == "tiles":
        return data.image_to_tensors(img, size, "tiles")
    if draw.startswith("detail"):  # centre square zoomed k×: its central 1/k (texture scale)
        k = int(draw[6:])
        w, h = img.size
        s = min(w, h) / k
        box = tuple(round(v) for v in ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2))
        return data.image_to_tensors(img.crop(box), size, "center")
    kind, seed = ("full", int(draw[4:])) if draw.startswith("full") else ("generic", int(draw[7:]))
    rng = np.random.default_rng([seed, index])
    img = augment(img, data.LABELS[item.y], rng, photo=kind == "full")
    return data.image_to_tensors(img, size, "center")


def pooled_model(backbone: str, size: int):
    """tf.function: uint8 batch → float32 pooled features (see module doc)."""
    import tensorflow as tf
    m = build_lite(backbone, size, taps=TAPS[backbone])

    @tf.function(reduce_retracing=True)
    def run(x):
        outs = m(tf.cast(x, tf.float32), training=False)
        parts = [tf.reduce_mean(outs[0], axis=(1, 2))]
        for o in outs[1:]:
            mu = tf.reduce_mean(o, axis=(1, 2))
            sd = tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(o), axis=(1, 2)) - tf.square(mu), 0.0) + 1e-6)
            parts += [mu, sd]
        return tf.concat(parts, axis=1)
    return run


def extract(backbone: str, draw: str, subset: str, batch: int = 32) -> Path:
    """Compute the cache file for (backbone, draw, subset); skip if it exists."""
    FEAT_DIR.mkdir(exist_ok=True)
    out = FEAT_DIR / f"{backbone}_{draw}_{subset}.npz"
    if out.exists():
        return out
    items = data.all_items()
    idx = subset_indices(items, subset)
    if draw == "tiles":
        from PIL import Image
        keep = []
        for i in idx:
            with Image.open(items[i].path) as im:
                w, h = im.size
            if max(w, h) / min(w, h) >= 1.3:
                keep.append(i)
        idx = np.array(keep)
    size = BACKBONES[backbone][2]
    run = pooled_model(backbone, size)
    feats, owners = [], []
    t0 = time.time()
    chunks = [idx[i:i + batch] for i in range(0, len(idx), batch)]

    def prep_chunk(ch):
        arrs = [prepare(items[i], draw, size, int(i)) for i in ch]
        own = np.concatenate([[i] * len(a) for i, a in zip(ch, arrs)])
        return np.concatenate(arrs), own

    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(prep_chunk, chunks[0])
        for k in range(len(chunks)):
            x, own = fut.result()
            if k + 1 < len(chunks):
                fut = pool.submit(prep_chunk, chunks[k + 1])
            for j in range(0, len(x), batch):  # tiles may exceed one batch
                feats.append(np.asarray(run(x[j:j + batch])).astype(np.float16))
            owners.append(own)
            if k % 20 == 0:
                print(f"{backbone} {draw} {subset}: {k * batch}/{len(idx)} {time.time() - t0:.0f}s", flush=True)
    feats = np.concatenate(feats)
    owners = np.concatenate(owners)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, idx=idx, owner=owners, feats=feats, seconds=time.time() - t0)
    tmp.rename(out)
    print(f"DONE {out.name} {feats.shape} {time.time() - t0:.0f}s", flush=True)
    return out


if __name__ == "__main__":
    from modbot.ml.tf import load_tensorflow
    load_tensorflow()
    jobs = [a.split(":") for a in sys.argv[1:]]
    for b, d, s in jobs:
        extract(b, d, s)
