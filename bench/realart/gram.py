"""Second-order texture statistics (style Gram / covariance matrices, as in neural style
transfer and art-style recognition) of the early Lite0 stages next to the served features:
is the medium in how the channels of stages 1–3 co-vary, not only in their means and
variances? VALIDATION only (leave-source-out CV, PACS leave-one-object-out); the shipped recipe
otherwise (lite0x clean features, C = 1e-3, PACS weight 1.0).

Per image and stage (1: 24 channels at 56², 2: 40 at 28², 3: 80 at 14²): the channel
covariance over positions, upper triangle (300 + 820 + 3,240 numbers), signed square root
(power normalisation). Variants: ``gram`` alone, ``x+gram`` (with the 2,176 served features),
``x+corr`` (correlations instead of covariances); ``--tiles``: served features with and without
the covariances, centre crop and multi-crop tiles, C = 1e-3 and 3e-4.
Usage: python -m realart.gram [--loo | --tiles]
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np

from realart import data
from realart.detail import RECIPE, Fused, print_rows, run_variants
from realart.extract import FEAT_DIR, subset_indices
from realart.heads import cv_sources

STAGES = (1, 2, 3)


def gram_model():
    """tf.function: uint8 (N, 224, 224, 3) → (cov (N, D) float32) over `STAGES`."""
    import tensorflow as tf

    from realart.lite import build_lite
    m = build_lite("lite0x", 224, taps=STAGES)

    @tf.function(reduce_retracing=True)
    def run(x):
        outs = m(tf.cast(x, tf.float32), training=False)[1:]
        parts = []
        for o in outs:
            c = o.shape[-1]
            f = tf.reshape(o, (-1, o.shape[1] * o.shape[2], c))
            f = f - tf.reduce_mean(f, axis=1, keepdims=True)
            cov = tf.einsum("npc,npd->ncd", f, f) / float(o.shape[1] * o.shape[2])
            iu = np.triu_indices(c)
            flat = tf.reshape(cov, (-1, c * c))
            parts.append(tf.gather(flat, iu[0] * c + iu[1], axis=1))
        return tf.concat(parts, axis=1)
    return run


def widths() -> list[int]:
    from realart.heads import tap_widths
    return [w for w in tap_widths("lite0x")[: len(STAGES)]]


def extract_gram(items: list[data.Item], idx: np.ndarray) -> np.ndarray:
    """(len(items), D) covariance features (NaN rows outside ``idx``), cached in features/."""
    f = FEAT_DIR / "lite0x_gram123_clean_cmp.npz"
    if not f.exists():
        run = gram_model()
        feats, t0 = [], time.time()
        for k in range(0, len(idx), 32):
            ch = idx[k:k + 32]
            x = np.concatenate([data.image_to_tensors(data.load_rgba(items[i].path), 224, "center") for i in ch])
            feats.append(run(x).numpy().astype(np.float32))
            if k % 640 == 0:
                print(f"gram {k + len(ch)}/{len(idx)} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        np.savez(f, idx=idx, feats=np.concatenate(feats))
    z = np.load(f)
    out = np.full((len(items), z["feats"].shape[1]), np.nan, np.float32)
    out[z["idx"]] = z["feats"]
    return out


def extract_gram_tiles(items: list[data.Item]) -> tuple[np.ndarray, np.ndarray]:
    """(owner, covariances) of the multi-crop tiles, in the order of the cached lite0x tiles
    (``features/lite0x_tiles_realart.npz``: same images, same tiles)."""
    f = FEAT_DIR / "lite0x_gram123_tiles_realart.npz"
    if not f.exists():
        z = np.load(FEAT_DIR / "lite0x_tiles_realart.npz")
        run = gram_model()
        feats, owners = [], []
        for i in z["idx"]:
            x = data.image_to_tensors(data.load_rgba(items[i].path), 224, "tiles")
            feats.append(run(x).numpy().astype(np.float32))
            owners += [i] * len(x)
        assert np.array_equal(np.array(owners), z["owner"]), "tiles differ from the lite0x cache"
        np.savez(f, owner=np.array(owners), feats=np.concatenate(feats))
    z = np.load(f)
    return z["owner"], z["feats"]


def to_corr(G: np.ndarray) -> np.ndarray:
    """Covariances → correlations, per stage (rows with NaN stay NaN)."""
    out, o = [], 0
    for c in widths():
        n = c * (c + 1) // 2
        iu = np.triu_indices(c)
        block = G[:, o:o + n]
        diag = block[:, [k for k, (a, b) in enumerate(zip(*iu)) if a == b]]
        sd = np.sqrt(np.maximum(diag, 1e-8))
        out.append(block / (sd[:, iu[0]] * sd[:, iu[1]]))
        o += n
    return np.concatenate(out, axis=1)


class WithGram(Fused):
    """Cache whose ``clean`` draw is [served features |] power-normalised second-order stats."""

    def __init__(self, G: np.ndarray, with_x: bool, tiles_G: np.ndarray | None = None):
        super().__init__(("clean",))
        self.G, self.with_x, self.tiles_G = G, with_x, tiles_G

    def tiles(self) -> tuple[np.ndarray, np.ndarray]:
        owner, T = super().tiles()
        P = np.sign(self.tiles_G) * np.sqrt(np.abs(self.tiles_G))
        return owner, np.concatenate(([T] if self.with_x else []) + [P], axis=1)

    def get(self, draw: str) -> np.ndarray:
        if draw != "clean":
            return super().get(draw)
        key = f"gram{self.with_x}"
        if key not in self._c:
            P = np.sign(self.G) * np.sqrt(np.abs(self.G))
            self._c[key] = np.concatenate(([super().get("clean")] if self.with_x else []) + [P], axis=1)
        return self._c[key]


def main(argv: list[str]) -> None:
    base = Fused(("clean",))
    idx = subset_indices(base.items, "cmp")
    G = extract_gram(base.items, idx)
    variants = [("gram", WithGram(G, False)), ("x+gram", WithGram(G, True)),
                ("x+corr", WithGram(to_corr(G), True))]
    if "--tiles" in argv:  # the served multi-crop tiles too, at C = 1e-3 and 3e-4
        _, TG = extract_gram_tiles(base.items)
        for C in (1e-3, 3e-4):
            r = replace(RECIPE, C=C)
            for name, cache in (("x", base), ("x+gram", WithGram(G, True, TG))):
                cv = cv_sources(cache, idx, r, modes=("center", "tiles"))
                for m in ("center", "tiles"):
                    s = cv[m]
                    print(f"{name:7s} C={C:g} {m:6s} CV {s['mean_macro_f1']:.3f} / worst "
                          f"{s['worst_macro_f1']:.3f}  pooled {s['pooled']['macro_f1']:.3f}  recall "
                          + " ".join(f"{c[:3]} {v:.2f}" for c, v in s["mean_recall"].items()), flush=True)
        return
    rows = run_variants(variants, idx, "--loo" in argv, no_loo=("gram",))
    print_rows(rows, 8)


if __name__ == "__main__":
    main(sys.argv[1:])
