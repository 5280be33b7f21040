"""Synthetic drawings: does turning training images into pencil, charcoal, ink and
coloured-pencil drawings teach the head what a drawing is? Drawing is the weakest medium
(TEST recall 0.41; 13 real drawing sources, 4 of them test), and more real drawing sources do
not exist here. VALIDATION only (leave-source-out CV, PACS leave-one-object-out); the shipped
recipe otherwise (lite0x clean features, C = 1e-3, PACS weight 1.0).

Each synthetic drawing is made from one non-test realart image of another medium (at most
``PER_SOURCE`` per source) by `sketch` (a style drawn at random: graphite dodge, charcoal,
ink lines, coloured pencil), then photographed like a drawing (paper tint, phone-photo ops
from `realart.augment`). In CV fold f a synthetic drawing trains only when the image it was
made from is a training image of that fold, so no held-out artist's picture reaches training.
Synthetic rows get a total weight of ``alpha`` × the real drawing class's weight.

Usage: python -m realart.synth [ALPHA ...] [--styles graphite,charcoal,ink,colour]
Caches features/lite0x_synth<version>_realart.npz (owner = index of the source image).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
from PIL import Image
from scipy import ndimage

from realart import data
from realart.augment import composite_alpha, finish, paper_tint, photo_of_artwork
from realart.detail import RECIPE, Fused, summary
from realart.extract import FEAT_DIR, pooled_model, subset_indices
from realart.heads import (
    Head,
    K,
    fold_summary,
    predict,
    realart_pool,
    report,
    train_matrix,
)

PER_SOURCE = 40
VERSION = 1
STYLES = ("graphite", "charcoal", "ink", "colour")
DRAWING = data.LABELS.index("drawing")


def _gray(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), np.float32) / 255.0


def _dodge(g: np.ndarray, sigma: float) -> np.ndarray:
    """Colour-dodge of the gray image with its blurred negative: edges and shading become
    pencil-like lines on white. (H, W) float in [0, 1]."""
    inv = ndimage.gaussian_filter(1.0 - g, sigma)
    return np.clip(g / np.maximum(1.0 - inv, 1e-3), 0, 1)


def _strokes(shape: tuple[int, int], rng: np.random.Generator, angle: float, length: int) -> np.ndarray:
    """Directional noise (hatching texture), (H, W) float around 1."""
    n = rng.normal(0, 1, shape).astype(np.float32)
    k = np.zeros((length, length), np.float32)
    c = length // 2
    for t in range(length):
        x = round(c + (t - c) * np.cos(angle)); y = round(c + (t - c) * np.sin(angle))
        k[np.clip(y, 0, length - 1), np.clip(x, 0, length - 1)] = 1
    n = ndimage.convolve(n, k / k.sum())
    return n / (n.std() + 1e-6)


def sketch(img: Image.Image, rng: np.random.Generator, style: str) -> Image.Image:
    """An RGB picture turned into a drawing of ``style`` (see `STYLES`); returns RGB."""
    img = img.convert("RGB")
    g = _gray(img)
    h, w = g.shape
    s = max(h, w) / 320.0
    if style == "graphite":
        d = _dodge(g, rng.uniform(2, 6) * s)
        d = d ** rng.uniform(1.5, 3.0)
        tex = _strokes(g.shape, rng, rng.uniform(0.5, 1.2), 7)
        d = np.clip(d + (1 - d) * 0.25 * tex, 0, 1)
        out = np.repeat(d[..., None], 3, 2)
    elif style == "charcoal":
        d = _dodge(g, rng.uniform(3, 8) * s) ** rng.uniform(2.5, 4.5)
        tone = ndimage.gaussian_filter(np.round(g * 4) / 4, 2 * s)
        d = np.clip(d * (0.55 + 0.45 * tone), 0, 1)
        tex = rng.normal(0, 0.06, g.shape).astype(np.float32)
        out = np.repeat(np.clip(d + tex * (1 - d), 0, 1)[..., None], 3, 2)
    elif style == "ink":
        d = _dodge(ndimage.gaussian_filter(g, 1.2 * s), rng.uniform(2.0, 4.0) * s)
        lines = ndimage.median_filter((d < rng.uniform(0.8, 0.92)).astype(np.float32), size=3)
        if rng.random() < 0.5:  # hatching in the dark areas
            hatch = (np.sin((np.arange(w)[None, :] + np.arange(h)[:, None]) * rng.uniform(0.5, 1.0)) > 0.6)
            lines = np.maximum(lines, hatch * (ndimage.gaussian_filter(g, 2 * s) < rng.uniform(0.25, 0.4)))
        ink = np.array(rng.choice([[0.05, 0.05, 0.05], [0.1, 0.1, 0.25], [0.25, 0.15, 0.08]]), np.float32)
        out = 1 - lines[..., None] * (1 - ink)
    else:  # coloured pencil: desaturated colours laid in strokes along dodge lines
        d = _dodge(g, rng.uniform(2, 5) * s) ** rng.uniform(1.2, 2.0)
        col = np.asarray(img, np.float32) / 255.0
        col = ndimage.gaussian_filter(col, (1.5 * s, 1.5 * s, 0))
        sat = rng.uniform(0.5, 0.9)
        col = col.mean(2, keepdims=True) * (1 - sat) + col * sat
        tex = _strokes(g.shape, rng, rng.uniform(0.4, 1.2), 9)
        cover = np.clip(rng.uniform(0.45, 0.8) + 0.3 * tex, 0, 1)[..., None]
        out = (1 - cover + cover * col) * d[..., None]
    return Image.fromarray((np.clip(out, 0, 1) * 255).astype(np.uint8))


def make(img: Image.Image, rng: np.random.Generator, styles=STYLES) -> Image.Image:
    """One synthetic drawing of ``img``: a sketch, then a phone photo of it (70 %) or a scan."""
    img = composite_alpha(img, rng)
    out = sketch(img, rng, str(rng.choice(list(styles))))
    if rng.random() < 0.7:
        return photo_of_artwork(out, rng, drawing=True)
    if rng.random() < 0.5:
        out = paper_tint(out, rng)
    return finish(out, rng)


def source_images(items: list[data.Item], seed: int = 0) -> np.ndarray:
    """Indices of the images synthetic drawings are made from: non-test realart images of the
    other media, at most ``PER_SOURCE`` per source (seeded)."""
    tests = data.test_sources()
    rng = np.random.default_rng(seed)
    by: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        if it.dataset == "realart" and it.source not in tests and it.y != DRAWING:
            by.setdefault(it.source, []).append(i)
    out = []
    for s in sorted(by):
        ix = by[s]
        out += sorted(rng.choice(ix, min(PER_SOURCE, len(ix)), replace=False).tolist())
    return np.array(out)


def extract_synth(items: list[data.Item], styles=STYLES, tag: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(owner (n,) int, feats (n, d) float32 in the cached layout) of the synthetic drawings."""
    f = FEAT_DIR / f"lite0x_synth{VERSION}{tag}_realart.npz"
    if not f.exists():
        owner = source_images(items)
        run = pooled_model("lite0x", 224)
        feats, t0 = [], time.time()
        for k in range(0, len(owner), 32):
            ch = owner[k:k + 32]
            x = np.concatenate([data.image_to_tensors(
                make(data.load_rgba(items[i].path), np.random.default_rng([VERSION, int(i)]), styles), 224, "center")
                for i in ch])
            feats.append(run(x).numpy().astype(np.float16))
            print(f"synth {k + len(ch)}/{len(owner)} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        np.savez(f, owner=owner, feats=np.concatenate(feats))
    z = np.load(f)
    from realart.heads import to_var
    return z["owner"], to_var(z["feats"].astype(np.float32), "lite0x")


def cv_with_synth(cache: Fused, subset_idx: np.ndarray, owner: np.ndarray, S: np.ndarray, alpha: float) -> dict:
    """Leave-source-out CV as `heads.cv_sources`, with the synthetic drawings of each fold's
    training images added (total weight ``alpha`` × the real drawing class)."""
    items = cache.items
    folds = data.source_folds(items)
    real, pacs = realart_pool(items, subset_idx)
    fold_of = np.array([folds[items[i].group] for i in real])
    fold_of_item = {int(i): f for i, f in zip(real, fold_of)}
    sfold = np.array([fold_of_item.get(int(o), -1) for o in owner])
    y = np.array([items[i].y for i in real])
    oof = np.zeros((len(real), K))
    fs = []
    for f in range(5):
        tr = np.concatenate([real[fold_of != f], pacs])
        X, yy, w = train_matrix(cache, tr, RECIPE)
        if alpha > 0:
            m = (sfold != f) & (sfold >= 0)
            real_draw_w = w[yy == DRAWING].sum() / (1 + RECIPE.pacs_weight)  # the rest is PACS sketches
            ws = np.full(m.sum(), alpha * real_draw_w / max(1, m.sum()))
            X = np.concatenate([X, S[m]]); yy = np.concatenate([yy, np.full(m.sum(), DRAWING)])
            w = np.concatenate([w, ws])
        head = Head(RECIPE).fit(X, yy, w)
        va = real[fold_of == f]
        P = predict(cache, head, va)
        oof[fold_of == f] = P
        fs.append(report(y[fold_of == f], P.argmax(1), list(range(K))))
    return {"center": fold_summary(fs, y, oof), "oof": {"center": oof}, "y": y, "fold": fold_of}


def pacs_loo_synth(cache: Fused, subset_idx: np.ndarray, owner: np.ndarray, S: np.ndarray, alpha: float) -> dict:
    """PACS leave-one-object-out with all synthetic drawings in training."""
    items = cache.items
    real, pacs = realart_pool(items, subset_idx)
    obj = np.array([items[i].group for i in pacs])
    res = []
    for o in data.PACS_OBJECTS:
        X, yy, w = train_matrix(cache, np.concatenate([real, pacs[obj != o]]), RECIPE)
        real_draw_w = w[yy == DRAWING].sum() / (1 + RECIPE.pacs_weight)
        X = np.concatenate([X, S]); yy = np.concatenate([yy, np.full(len(S), DRAWING)])
        w = np.concatenate([w, np.full(len(S), alpha * real_draw_w / len(S))])
        head = Head(RECIPE).fit(X, yy, w)
        va = pacs[obj == o]
        res.append(report(np.array([items[i].y for i in va]), predict(cache, head, va).argmax(1), [0, 1, 2, 3]))
    return {"mean_macro_f1": float(np.mean([r["macro_f1"] for r in res])),
            "worst_macro_f1": float(np.min([r["macro_f1"] for r in res])),
            "painting_recall": float(np.mean([r["recall"]["painting"] for r in res]))}


def main(argv: list[str]) -> None:
    alphas = [float(a) for a in argv if not a.startswith("--")] or [0.0, 0.25, 0.5, 1.0]
    styles = STYLES
    for a in argv:
        if a.startswith("--styles="):
            styles = tuple(a.split("=", 1)[1].split(","))
    tag = "" if styles == STYLES else "_" + "-".join(styles)
    cache = Fused(("clean",))
    idx = subset_indices(cache.items, "cmp")
    owner, S = extract_synth(cache.items, styles, tag)
    rows = {}
    for a in alphas:
        cv = cv_with_synth(cache, idx, owner, S, a)
        r = summary(cv, None)
        if a > 0 and "--loo" in argv:
            r.update({f"pacs_{k}": round(v, 4) for k, v in pacs_loo_synth(cache, idx, owner, S, a).items()})
        rows[f"alpha{a}{tag}"] = r
        print(json.dumps({f"alpha{a}{tag}": r}), flush=True)
    for name, r in rows.items():
        print(f"{name:24s} CV {r['cv_mean_macro_f1']:.3f} / worst {r['cv_worst_macro_f1']:.3f}  pooled "
              f"{r['pooled_macro_f1']:.3f}  recall " + " ".join(f"{c[:3]} {v:.2f}" for c, v in r["mean_recall"].items())
              + "  worst dra {:.2f}".format(r["worst_recall"]["drawing"])
              + (f"  PACS-LOO {r['pacs_mean_macro_f1']:.3f}" if "pacs_mean_macro_f1" in r else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
