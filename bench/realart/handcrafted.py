"""Hand-made colour and texture statistics next to the CNN features: do paper whiteness,
grey-ness, colourfulness, flat regions, noise and edge density tell a drawing from a painting,
or a photographed sculpture from a photograph, better than ImageNet features alone?
VALIDATION only (leave-source-out CV, PACS leave-one-object-out); the shipped recipe otherwise
(lite0x clean features, C = 1e-3, PACS weight 1.0).

Features (`stats`, 24 numbers) are computed on the served input, the 224 px centre crop
(`realart.data.image_to_tensors`). Variants: ``cnn`` (shipped), ``hand`` alone, and
``cnn+hand×s`` (the standardised statistics repeated ``s`` times, so that the L2 penalty lets
them weigh more). Usage: python -m realart.handcrafted [S ...]
"""
from __future__ import annotations

import sys
import time

import numpy as np
from scipy import ndimage

from realart import data
from realart.detail import Fused, print_rows, run_variants
from realart.extract import FEAT_DIR, subset_indices

VERSION = 1


def stats(x: np.ndarray) -> np.ndarray:
    """24 statistics of one (224, 224, 3) uint8 image: float32 (24,)."""
    a = x.astype(np.float32) / 255.0
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    mx, mn = a.max(2), a.min(2)
    v = mx
    s = np.where(mx > 1e-3, (mx - mn) / np.maximum(mx, 1e-3), 0)
    gray = a @ np.array([0.299, 0.587, 0.114], np.float32)
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    gx, gy = ndimage.sobel(gray, 1), ndimage.sobel(gray, 0)
    grad = np.hypot(gx, gy)
    lap = ndimage.laplace(gray)
    # noise: high-pass residual in the flattest quarter of 8x8 blocks
    hp = gray - ndimage.uniform_filter(gray, 3)
    blk = grad[:224 // 8 * 8, :224 // 8 * 8].reshape(28, 8, 28, 8).mean((1, 3))
    hpb = (hp[:224 // 8 * 8, :224 // 8 * 8] ** 2).reshape(28, 8, 28, 8).mean((1, 3))
    flat = blk <= np.quantile(blk, 0.25)
    hist = np.histogram(gray, 32, (0, 1))[0] / gray.size
    ent = -np.sum(hist[hist > 0] * np.log(hist[hist > 0]))
    q = (a * 7.999).astype(np.int32)
    ncol = len(np.unique(q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2])) / 512.0
    return np.array([
        s.mean(), s.std(), *np.quantile(s, [0.1, 0.5, 0.9]),
        *np.quantile(v, [0.1, 0.5, 0.9]), v.std(),
        np.mean(s < 0.1), np.mean((v > 0.85) & (s < 0.15)), np.mean(v < 0.15),
        colourful, grad.mean(), grad.std(), np.mean(grad > 0.5), np.mean(grad > 1.5),
        np.log(lap.var() + 1e-6), np.log(hpb[flat].mean() + 1e-8), np.mean(blk < 0.02),
        ent, ncol, float(np.abs(rg).mean()), float(np.abs(yb).mean()),
    ], np.float32)


def extract_stats(items: list[data.Item], idx: np.ndarray) -> np.ndarray:
    """(len(items), 24) with NaN rows outside ``idx``; cached in features/."""
    f = FEAT_DIR / f"hand{VERSION}_clean_cmp.npz"
    if not f.exists():
        t0 = time.time()
        S = np.stack([stats(data.image_to_tensors(data.load_rgba(items[i].path), 224, "center")[0]) for i in idx])
        print(f"stats {len(idx)} images {time.time() - t0:.0f}s", file=sys.stderr)
        np.savez(f, idx=idx, feats=S)
    z = np.load(f)
    out = np.full((len(items), z["feats"].shape[1]), np.nan, np.float32)
    out[z["idx"]] = z["feats"]
    return out


class WithHand(Fused):
    """Cache whose ``clean`` draw is the CNN features, the statistics, or both (statistics
    standardised on all rows and repeated ``rep`` times)."""

    def __init__(self, hand: np.ndarray, cnn: bool, rep: int):
        super().__init__(("clean",))
        self.hand, self.cnn, self.rep = hand, cnn, rep

    def get(self, draw: str) -> np.ndarray:
        if draw != "clean":
            return super().get(draw)
        key = f"hand{self.cnn}{self.rep}"
        if key not in self._c:
            H = self.hand
            ok = ~np.isnan(H[:, 0])
            Z = (H - H[ok].mean(0)) / (H[ok].std(0) + 1e-6)
            parts = ([super().get("clean")] if self.cnn else []) + [Z] * self.rep
            self._c[key] = np.concatenate(parts, axis=1).astype(np.float32)
        return self._c[key]


def main(argv: list[str]) -> None:
    reps = [int(a) for a in argv if not a.startswith("--")] or [1, 4, 16]
    base = Fused(("clean",))
    idx = subset_indices(base.items, "cmp")
    hand = extract_stats(base.items, idx)
    variants = [("hand", WithHand(hand, False, 1))] + [(f"cnn+hand×{r}", WithHand(hand, True, r)) for r in reps]
    rows = run_variants(variants, idx, "--loo" in argv, no_loo=("hand",))
    print_rows(rows, 14)


if __name__ == "__main__":
    main(sys.argv[1:])
