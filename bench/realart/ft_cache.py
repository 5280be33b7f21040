"""Cache, once, the inputs of the blocks that ``realart.finetune`` trains, plus the frozen
stage 1–5 statistics, for the ``cmp`` subset (realart + 100 PACS per depiction×object cell).

One Lite0 forward pass (ImageNet weights, BN inference) per image and draw writes, under
``$REALART_WORK/ft/cache/<draw>/``:

- ``idx.npy``   int64 ``(N,)``: item index in ``data.all_items()`` (same order as extract's cmp);
- ``b14.npy``   float16 ``(N, 7, 7, 192)``: output of block 14 (end of stage 5 = input of block 15);
- ``b10.npy``   float16 ``(N, 14, 14, 112)``: output of block 10 (input of block 11) — only with
  ``--b10`` (used for the seconds/epoch measurement of the deeper variant);
- ``stats.npy`` float16 ``(N, 2176)``: ``[GAP(top 1280) | mean_1 | std_1 | … | mean_5 | std_5]``
  exactly like ``realart.extract`` (lite0x, taps = last block of stages 1–5: 24/40/80/112/192 ch);
  ``heads.to_var`` turns the std parts into variances.

Draws: ``clean`` (centre crop as served) and ``full<seed>`` (``realart.augment`` photo-of-artwork
recipe, seeded exactly like ``realart.extract.prepare``). Test sources are INCLUDED in ``cmp`` (the
baseline caches include them too) but nothing downstream ever reads their rows.

Usage: python -m realart.ft_cache DRAW [DRAW...] [--b10]
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from realart import data
from realart.extract import prepare, subset_indices

CACHE = data.EXP / "ft" / "cache"


def cache_model(with_b10: bool):
    """tf.function: uint8 ``(B,224,224,3)`` → (stats float32 (B,2176), b14 (B,7,7,192)[, b10])."""
    from modbot.ml.tf import load_tensorflow
    load_tensorflow()
    import keras
    import tensorflow as tf
    from keras import layers

    from realart.lite import (
        TAPS,
        block_specs,
        body,
        load_state,
        set_weights,
        stage_last_blocks,
    )
    state = load_state("lite0x")
    specs = block_specs(state)
    last = stage_last_blocks(specs)
    inp = keras.Input((224, 224, 3), name="rgb")
    x = layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0, name="lite0_scale")(inp)
    t = body(x, specs, state["_conv_head.weight"].shape[0])
    outs = [t["top"]] + [t[f"block{last[s]}"] for s in TAPS["lite0x"]] + [t["block14"], t["block10"]]
    m = keras.Model(inp, outs)
    set_weights(m, state, specs)
    m.trainable = False

    @tf.function(reduce_retracing=True)
    def run(xb):
        o = m(tf.cast(xb, tf.float32), training=False)
        parts = [tf.reduce_mean(o[0], axis=(1, 2))]
        for fm in o[1:6]:
            mu = tf.reduce_mean(fm, axis=(1, 2))
            sd = tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(fm), axis=(1, 2)) - tf.square(mu), 0.0) + 1e-6)
            parts += [mu, sd]
        res = [tf.concat(parts, axis=1), o[6]]
        if with_b10:
            res.append(o[7])
        return res
    return run


def cache_draw(draw: str, with_b10: bool = False, batch: int = 32) -> Path:
    """Write the cache folder of one draw (skipped if ``stats.npy`` exists)."""
    out = CACHE / draw
    if (out / "stats.npy").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    items = data.all_items()
    idx = subset_indices(items, "cmp")
    n = len(idx)
    run = cache_model(with_b10)
    stats = np.zeros((n, 2176), np.float16)
    b14 = np.lib.format.open_memmap(out / "b14.tmp.npy", "w+", np.float16, (n, 7, 7, 192))
    b10 = np.lib.format.open_memmap(out / "b10.tmp.npy", "w+", np.float16, (n, 14, 14, 112)) if with_b10 else None
    chunks = [np.arange(i, min(n, i + batch)) for i in range(0, n, batch)]
    prep = lambda ch: np.concatenate([prepare(items[idx[k]], draw, 224, int(idx[k])) for k in ch])
    t0 = time.time()
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(prep, chunks[0])
        for j, ch in enumerate(chunks):
            x = fut.result()
            if j + 1 < len(chunks):
                fut = pool.submit(prep, chunks[j + 1])
            r = run(x)
            stats[ch] = np.asarray(r[0]).astype(np.float16)
            b14[ch] = np.asarray(r[1]).astype(np.float16)
            if with_b10:
                b10[ch] = np.asarray(r[2]).astype(np.float16)
            if j % 20 == 0:
                print(f"ft_cache {draw}: {ch[-1] + 1}/{n} {time.time() - t0:.0f}s", flush=True)
    b14.flush(); del b14
    (out / "b14.tmp.npy").rename(out / "b14.npy")
    if with_b10:
        b10.flush(); del b10
        (out / "b10.tmp.npy").rename(out / "b10.npy")
    np.save(out / "idx.npy", idx)
    np.save(out / "stats.npy", stats)
    (out / "seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
    print(f"DONE ft_cache {draw} n={n} {time.time() - t0:.0f}s", flush=True)
    return out


if __name__ == "__main__":
    b10 = "--b10" in sys.argv
    for d in [a for a in sys.argv[1:] if not a.startswith("--")]:
        cache_draw(d, with_b10=b10)
