"""Heads on cached features, leave-source-out CV, PACS leave-one-object-out, calibration and
the judge. numpy + scikit-learn only (fast: recipe choices are cheap)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realart import data
from realart.extract import FEAT_DIR

L = data.LABELS
K = len(L)


# --------------------------------------------------------------------------------------------
# feature cache

class Cache:
    """Cached features of one backbone: ``get(draw)`` → (n_items, d) float32 array with NaN
    rows for images the draw lacks; ``tiles()`` → (owner, feats) of the multi-crop tiles."""

    def __init__(self, backbone: str, subset: str):
        self.backbone, self.subset = backbone, subset
        self.items = data.all_items()
        self._c: dict[str, np.ndarray] = {}

    def get(self, draw: str) -> np.ndarray:
        if draw not in self._c:
            f = FEAT_DIR / f"{self.backbone}_{draw}_{self.subset}.npz"
            if not f.exists():  # a superset cache (big ⊃ cmp) serves too
                f = FEAT_DIR / f"{self.backbone}_{draw}_big.npz"
            z = np.load(f)
            a = np.full((len(self.items), z["feats"].shape[1]), np.nan, np.float32)
            a[z["idx"]] = to_var(z["feats"].astype(np.float32), self.backbone)
            self._c[draw] = a
        return self._c[draw]

    def tiles(self) -> tuple[np.ndarray, np.ndarray]:
        z = np.load(FEAT_DIR / f"{self.backbone}_tiles_realart.npz")
        return z["owner"], to_var(z["feats"].astype(np.float32), self.backbone)


def tap_widths(backbone: str) -> list[int]:
    """Channels of the tapped stage outputs (lite0: 80, 192; lite2: 88, 208)."""
    from realart.lite import TAPS, block_specs, load_state, stage_last_blocks
    taps = TAPS[backbone]
    specs = block_specs(load_state(backbone))
    last = stage_last_blocks(specs)
    return [specs[last[t]]["filters_out"] for t in taps]


_TW: dict[str, list[int]] = {}


def to_var(F: np.ndarray, backbone: str) -> np.ndarray:
    """Cached ``[top | meanA | stdA | meanB | stdB]`` → ``[top | meanA | varA | meanB | varB]``,
    the exact quantities the served graph computes (variance from stock Keras layers)."""
    if backbone not in _TW:
        _TW[backbone] = tap_widths(backbone)
    F = F.copy()
    o = 1280
    for w in _TW[backbone]:
        sd = F[:, o + w:o + 2 * w]
        F[:, o + w:o + 2 * w] = np.maximum(sd * sd - 1e-6, 0)
        o += 2 * w
    return F


def feature_slice(dim: int, which: str) -> slice | np.ndarray:
    """Columns: ``top`` (1280 ImageNet head features) or ``all`` (+ mid-level mean/std)."""
    return slice(0, 1280) if which == "top" else slice(0, dim)


# --------------------------------------------------------------------------------------------
# recipe

@dataclass(frozen=True)
class Recipe:
    """How a head is trained. ``draws``: training draws (e.g. clean + augmented);
    ``feats``: ``top``/``all``; ``C``: inverse L2 strength; ``pacs_weight``: total weight of
    PACS relative to realart per class; ``source_cap``: images per source at full weight
    (more are down-weighted to that total); ``headstone``: extra factor for the headstone
    source; ``head``: ``logreg`` or ``mlp``."""
    draws: tuple[str, ...] = ("clean", "full1")
    feats: str = "all"
    C: float = 0.5
    pacs_weight: float = 0.5
    source_cap: int = 80
    headstone: float = 0.3
    head: str = "logreg"
    hidden: int = 256


def sample_weights(items: list[data.Item], idx: np.ndarray, r: Recipe) -> np.ndarray:
    """Weights for training images ``idx``: each realart source counts at most
    ``source_cap`` images (headstones ×``headstone``), classes balanced within realart, PACS
    classes balanced and scaled to ``pacs_weight`` of a realart class."""
    w = np.ones(len(idx))
    src = np.array([items[i].source for i in idx])
    ds = np.array([items[i].dataset for i in idx])
    y = np.array([items[i].y for i in idx])
    for s in np.unique(src[ds == "realart"]):
        m = (src == s) & (ds == "realart")
        w[m] = min(1.0, r.source_cap / m.sum()) * (r.headstone if s == "artstone_headstones" else 1.0)
    for c in range(K):
        m = (y == c) & (ds == "realart")
        if m.any():
            w[m] *= 1.0 / w[m].sum()
        m = (y == c) & (ds == "pacs")
        if m.any():
            w[m] *= r.pacs_weight / w[m].sum()
    return w * len(idx) / w.sum()


class Head:
    """Standardise → logistic regression (multinomial) or a 1-hidden-layer MLP; exposes
    ``mean``, ``scale``, ``W``, ``b`` (logreg) for folding into Keras."""

    def __init__(self, r: Recipe):
        self.r = r

    def fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> "Head":
        self.mean = X.mean(0)
        self.scale = X.std(0) + 1e-3
        Z = (X - self.mean) / self.scale
        if self.r.head == "logreg":
            from sklearn.linear_model import LogisticRegression
            m = LogisticRegression(C=self.r.C, max_iter=400, tol=1e-4)
            m.fit(Z, y, sample_weight=w)
            self.W, self.b = m.coef_.T.astype(np.float32), m.intercept_.astype(np.float32)
        else:
            self._fit_mlp(Z, y, w)
        return self

    def _fit_mlp(self, Z, y, w, epochs: int = 60, lr: float = 3e-3, seed: int = 0):
        """Tiny numpy MLP (ReLU, dropout 0.3, Adam, weight decay 1/C·1e-3) — kept for the
        comparison; full batch is fine at this size."""
        rng = np.random.default_rng(seed)
        d, h = Z.shape[1], self.r.hidden
        P = {"W1": rng.normal(0, np.sqrt(2 / d), (d, h)).astype(np.float32), "b1": np.zeros(h, np.float32),
             "W2": rng.normal(0, np.sqrt(1 / h), (h, K)).astype(np.float32), "b2": np.zeros(K, np.float32)}
        M = {k: np.zeros_like(v) for k, v in P.items()}
        V = {k: np.zeros_like(v) for k, v in P.items()}
        Y = np.eye(K, dtype=np.float32)[y]
        wd = 1e-3 / self.r.C
        wn = (w / w.sum()).astype(np.float32)[:, None]
        Z = Z.astype(np.float32)
        n, bs, t = len(Z), 512, 0
        for ep in range(epochs):
            for s in np.array_split(rng.permutation(n), max(1, n // bs)):
                t += 1
                x = Z[s]
                a = np.maximum(x @ P["W1"] + P["b1"], 0)
                mask = (rng.random(a.shape) > 0.3) / 0.7
                a = a * mask
                lg = a @ P["W2"] + P["b2"]
                p = np.exp(lg - lg.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
                g = (p - Y[s]) * wn[s] * (n / len(s))
                G = {"W2": a.T @ g + wd * P["W2"], "b2": g.sum(0)}
                da = (g @ P["W2"].T) * mask * (a > 0)
                G["W1"] = x.T @ da + wd * P["W1"]; G["b1"] = da.sum(0)
                for k in P:
                    M[k] = 0.9 * M[k] + 0.1 * G[k]; V[k] = 0.999 * V[k] + 0.001 * G[k] ** 2
                    P[k] -= lr * (0.5 * (1 + np.cos(np.pi * ep / epochs))) * (M[k] / (1 - 0.9 ** t)) / (np.sqrt(V[k] / (1 - 0.999 ** t)) + 1e-8)
        self.P = P

    def logits(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean) / self.scale
        if self.r.head == "logreg":
            return Z @ self.W + self.b
        a = np.maximum(Z @ self.P["W1"] + self.P["b1"], 0)
        return a @ self.P["W2"] + self.P["b2"]

    def proba(self, X: np.ndarray) -> np.ndarray:
        lg = self.logits(X).astype(np.float64)
        e = np.exp(lg - lg.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


# --------------------------------------------------------------------------------------------
# training sets and evaluation

def train_matrix(cache: Cache, idx: np.ndarray, r: Recipe) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack the recipe's draws for training images ``idx`` (rows missing in a draw dropped)."""
    Xs, ys, ws = [], [], []
    base_w = sample_weights(cache.items, idx, r)
    y = np.array([cache.items[i].y for i in idx])
    for d in r.draws:
        F = cache.get(d)[idx]
        F = F[:, feature_slice(F.shape[1], r.feats)]
        ok = ~np.isnan(F[:, 0])
        Xs.append(F[ok]); ys.append(y[ok]); ws.append(base_w[ok])
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(ws)


def predict(cache: Cache, head: Head, idx: np.ndarray, mode: str = "center") -> np.ndarray:
    """Probabilities for images ``idx`` from clean features; ``mode="tiles"`` averages the
    probabilities of the multi-crop tiles for elongated images (others: centre crop)."""
    F = cache.get("clean")[idx]
    P = head.proba(F[:, feature_slice(F.shape[1], head.r.feats)])
    if mode == "tiles":
        owner, T = cache.tiles()
        pt = head.proba(T[:, feature_slice(T.shape[1], head.r.feats)])
        pos = {int(i): k for k, i in enumerate(idx)}
        acc: dict[int, list[np.ndarray]] = {}
        for o, p in zip(owner, pt):
            if int(o) in pos:
                acc.setdefault(pos[int(o)], []).append(p)
        for k, ps in acc.items():
            P[k] = np.mean(ps, axis=0)
    return P


def report(y: np.ndarray, pred: np.ndarray, labels_present: list[int] | None = None) -> dict:
    """macro-F1 over the classes present in ``y`` (predictions of other classes count as
    errors), per-class recall/precision, accuracy."""
    present = sorted(set(y.tolist())) if labels_present is None else [c for c in labels_present if (y == c).any()]
    rec, prec, f1 = {}, {}, []
    for c in present:
        tp = np.sum((y == c) & (pred == c)); fn = np.sum((y == c) & (pred != c)); fp = np.sum((y != c) & (pred == c))
        r_ = tp / max(1, tp + fn); p_ = tp / max(1, tp + fp)
        rec[L[c]] = float(r_); prec[L[c]] = float(p_)
        f1.append(0 if r_ + p_ == 0 else 2 * r_ * p_ / (r_ + p_))
    return {"n": int(len(y)), "accuracy": float(np.mean(y == pred)), "macro_f1": float(np.mean(f1)),
            "recall": rec, "precision": prec}


def realart_pool(items: list[data.Item], subset_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(non-test realart indices, PACS indices) within ``subset_idx``."""
    tests = data.test_sources()
    real = np.array([i for i in subset_idx if items[i].dataset == "realart" and items[i].source not in tests])
    pacs = np.array([i for i in subset_idx if items[i].dataset == "pacs"])
    return real, pacs


def fit_head(cache: Cache, tr: np.ndarray, r: Recipe, make=None) -> Head:
    """A head fitted on training images ``tr``: ``Head(r)`` or ``make(r, cache.items, tr)``
    (a head that needs to know the images, e.g. their sources)."""
    head = Head(r) if make is None else make(r, cache.items, tr)
    return head.fit(*train_matrix(cache, tr, r))


def cv_sources(cache: Cache, subset_idx: np.ndarray, r: Recipe, modes=("center",), make=None) -> dict:
    """Leave-source-out 5-fold CV on non-test realart (PACS always in training). Returns
    per-fold reports per mode, and out-of-fold probabilities (``oof[mode]``) with ``idx``.
    ``make``: see `fit_head`."""
    items = cache.items
    folds = data.source_folds(items)
    real, pacs = realart_pool(items, subset_idx)
    fold_of = np.array([folds[items[i].group] for i in real])
    y = np.array([items[i].y for i in real])
    oof = {m: np.zeros((len(real), K)) for m in modes}
    per_fold = {m: [] for m in modes}
    for f in range(5):
        tr = np.concatenate([real[fold_of != f], pacs])
        head = fit_head(cache, tr, r, make)
        va = real[fold_of == f]
        for m in modes:
            P = predict(cache, head, va, m)
            oof[m][fold_of == f] = P
            per_fold[m].append(report(y[fold_of == f], P.argmax(1), list(range(K))))
    out = {"idx": real, "y": y, "fold": fold_of, "oof": oof, "folds": per_fold}
    for m in modes:
        out[m] = fold_summary(per_fold[m], y, oof[m])
    return out


def fold_summary(fs: list[dict], y: np.ndarray, P: np.ndarray) -> dict:
    """Mean / worst macro-F1 and recall over the folds' reports ``fs`` and the pooled report of
    the out-of-fold probabilities ``P`` (n, K) against ``y``."""
    return {"mean_macro_f1": float(np.mean([x["macro_f1"] for x in fs])),
            "worst_macro_f1": float(np.min([x["macro_f1"] for x in fs])),
            "pooled": report(y, P.argmax(1), list(range(K))),
            "mean_recall": {c: float(np.mean([x["recall"][c] for x in fs if c in x["recall"]])) for c in L},
            "worst_recall": {c: float(np.min([x["recall"][c] for x in fs if c in x["recall"]])) for c in L}}


def pacs_loo(cache: Cache, subset_idx: np.ndarray, r: Recipe, make=None) -> dict:
    """PACS leave-one-object-out: train on non-test realart + PACS of the other objects,
    score PACS of the held-out object (4 media; predicting sculpture counts as an error)."""
    items = cache.items
    real, pacs = realart_pool(items, subset_idx)
    obj = np.array([items[i].group for i in pacs])
    res = {}
    for o in data.PACS_OBJECTS:
        head = fit_head(cache, np.concatenate([real, pacs[obj != o]]), r, make)
        va = pacs[obj == o]
        y = np.array([items[i].y for i in va])
        res[o] = report(y, predict(cache, head, va).argmax(1), [0, 1, 2, 3])
    res["mean_macro_f1"] = float(np.mean([res[o]["macro_f1"] for o in data.PACS_OBJECTS]))
    res["worst_macro_f1"] = float(np.min([res[o]["macro_f1"] for o in data.PACS_OBJECTS]))
    res["mean_painting_recall"] = float(np.mean([res[o]["recall"]["painting"] for o in data.PACS_OBJECTS]))
    return res


# --------------------------------------------------------------------------------------------
# calibration and judge

def apply_T(P: np.ndarray, T: float) -> np.ndarray:
    z = np.log(np.clip(P, 1e-12, None)) / T
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit_T(P: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising NLL (grid over log T, then refine)."""
    grid = np.exp(np.linspace(np.log(0.2), np.log(10), 200))
    nll = [-np.mean(np.log(apply_T(P, t)[np.arange(len(y)), y] + 1e-12)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def fit_judge(P: np.ndarray, y: np.ndarray, budget: float = 0.02) -> dict[str, float]:
    """Per-stated-medium thresholds: flag when p(stated) < t[stated]; t[m] is the largest value
    flagging at most ``budget`` of correctly stated posts of medium m (validation)."""
    t = {}
    for c in range(K):
        p = np.sort(P[y == c, c])
        k = int(np.floor(budget * len(p)))  # may flag k posts
        t[L[c]] = float(p[k]) if k < len(p) else 1.0  # flag p < p[k]: exactly k below (ties aside)
    return t


def judge_rates(P: np.ndarray, y: np.ndarray, t: dict[str, float]) -> dict:
    """false_flag_rate: share of correctly stated posts flagged (each image stated as its true
    medium); catch_rate: share of mis-stated posts flagged (each image stated once as every
    other medium); per stated medium too."""
    th = np.array([t[c] for c in L])
    ff = P[np.arange(len(y)), y] < th[y]
    mis = np.ones_like(P, bool); mis[np.arange(len(y)), y] = False
    flagged = P < th[None, :]
    out = {"false_flag_rate": float(ff.mean()), "catch_rate": float(flagged[mis].mean()),
           "per_stated": {}}
    for c in range(K):
        out["per_stated"][L[c]] = {"false_flag": float(ff[y == c].mean()) if (y == c).any() else None,
                                   "catch": float(flagged[:, c][y != c].mean())}
    return out
