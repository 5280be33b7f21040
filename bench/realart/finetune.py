"""Fine-tune the top of EfficientNet-Lite0 (block 15 + head conv, or blocks 11–15 + head conv)
on cached block inputs, with the frozen stage 1–5 statistics beside it, and measure it with the
SAME validation as the baseline ``cand_lite0x_pacs1_C1e-3`` (5-fold leave-source-out on the
non-test realart sources, ``data.source_folds``; macro-F1 as ``heads.report``; centre crop).

Model (per fold), all float32 on CPU:
  b14 ``(B,7,7,192)`` (float16 cache → float32) → block15 → top_conv/top_bn/ReLU6 ``(B,7,7,1280)``
  → GAP ``(B,1280)`` → fixed Normalization (the fold's baseline head mean/scale of the frozen GAP)
  ‖ frozen stage 1–5 mean/var ``(B,896)`` standardised with the same head's mean/scale
  → Dropout → Dense(5) logits (softmax in the loss).
Layer names and construction equal ``realart.lite.body`` (BatchNormalization frozen: inference
statistics, not trainable), so the trained weights move into ``final.build_served`` by name.
Initialisation: ImageNet weights for the blocks and the fold's BASELINE logistic regression (same
recipe, fitted with ``heads.Head`` on the clean cached features) for the Dense, so epoch 0 IS the
baseline. Loss: Σ wᵢ·CEᵢ / B with ``heads.sample_weights`` (cap 80, headstones ×0.3, PACS 1.0,
classes balanced) + the logistic regression's own L2, ‖W‖²/(2·C·N_train), on the Dense kernel.
Optimisers: AdamW for the blocks (lr_b, weight decay 1e-2·lr), Adam for the Dense (lr_d).
Constant learning rates; the validation fold is scored after every epoch and the epoch count is
chosen by the mean over folds (reported as such: an inner choice on the validation folds).

Usage (from bench/, with REALART_WORK set, as for the other realart steps):
  python -m realart.finetune time                      # seconds/epoch, both depths
  python -m realart.finetune cv NAME LR_B LR_D EPOCHS [--aug] [--start 15]
  python -m realart.finetune loo NAME LR_B LR_D EPOCHS OBJ... [--aug]
Writes ``$REALART_WORK/ft/cv_<NAME>.json`` and ``oof_<NAME>.npz`` (idx, y, fold, P[epoch]).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import numpy as np

from realart import data
from realart.extract import subset_indices
from realart.ft_cache import CACHE
from realart.heads import Head, Recipe, report, sample_weights, to_var

K = len(data.LABELS)
#: the baseline recipe (experiment cand_lite0x_pacs1_C1e-3)
RECIPE = replace(Recipe(), draws=("clean",), feats="all", C=0.001, pacs_weight=1.0)
OUT = data.EXP / "ft"


class FtData:
    """Cached block inputs and frozen stats of the cmp subset. ``row[item_index]`` → cache row.
    ``maps[draw]``: float16 (N,7,7,192) (or (N,14,14,112) for start=11); ``stats[draw]``: float32
    (N,2176) ``[top | mean_j | var_j …]`` (variance, as the served graph computes)."""

    def __init__(self, draws=("clean",), start: int = 15):
        self.items = data.all_items()
        self.idx = np.load(CACHE / "clean" / "idx.npy")
        self.row = {int(i): k for k, i in enumerate(self.idx)}
        self.maps, self.stats = {}, {}
        for d in draws:
            assert np.array_equal(np.load(CACHE / d / "idx.npy"), self.idx)
            self.maps[d] = np.load(CACHE / d / ("b14.npy" if start == 15 else "b10.npy"))
            self.stats[d] = to_var(np.load(CACHE / d / "stats.npy").astype(np.float32), "lite0x")


def build_tail(start: int = 15, dropout: float = 0.2, mean_top=None, scale_top=None):
    """Keras model (map, taps_z) → logits: blocks ``start``…15 + top conv (ImageNet weights,
    frozen BN), GAP, Normalization ``norm_top`` ((x − mean_top)/scale_top, constants), concat with ``taps_z`` (B,896),
    Dropout, Dense ``medium`` (5, linear). Returns (model, list of block/top trainable vars)."""
    from modbot.ml.tf import load_tensorflow
    load_tensorflow()
    import keras
    from keras import layers

    from realart.lite import block_specs, head_conv, keras_weights, load_state, mbconv
    state = load_state("lite0x")
    specs = block_specs(state)
    shp = (7, 7, 192) if start == 15 else (14, 14, 112)
    inp = keras.Input(shp, name="map")
    tz = keras.Input((896,), name="taps_z")

    x = inp
    for s in specs[start:]:  # the same layers as realart.lite.body
        x = mbconv(x, s)
    x = head_conv(x, state["_conv_head.weight"].shape[0])
    g = layers.GlobalAveragePooling2D(name="gap")(x)
    mt = np.zeros(1280, np.float32) if mean_top is None else np.asarray(mean_top[:1280], np.float32)
    st = np.ones(1280, np.float32) if scale_top is None else np.asarray(scale_top[:1280], np.float32)
    g = layers.Normalization(mean=mt, variance=st ** 2, name="norm_top")(g)
    z = layers.Concatenate(name="pooled")([g, tz])
    z = layers.Dropout(dropout, name="drop")(z)
    out = layers.Dense(K, name="medium")(z)
    model = keras.Model([inp, tz], out)
    mapped = keras_weights(state, specs)
    for layer in model.layers:
        if layer.name in mapped:
            layer.set_weights(mapped[layer.name])
    body_vars = [v for l in model.layers if l.name not in ("medium",) for v in l.trainable_weights]
    return model, body_vars


class Trainer:
    """One fine-tuning run on training rows (cache rows ``tr_rows`` of each draw) with
    per-row weights ``w``; ``predict(rows)`` → probabilities (clean draw)."""

    def __init__(self, D: FtData, head: Head, start: int, lr_b: float, lr_d: float, n_train: int, seed: int = 0):
        import keras
        import tensorflow as tf
        keras.utils.set_random_seed(seed)
        self.D, self.head = D, head
        self.model, self.body_vars = build_tail(start, mean_top=head.mean, scale_top=head.scale)
        self.model.get_layer("medium").set_weights([head.W, head.b])
        self.dense_vars = self.model.get_layer("medium").trainable_weights
        self.opt_b = keras.optimizers.AdamW(learning_rate=lr_b, weight_decay=1e-2)
        self.opt_d = keras.optimizers.Adam(learning_rate=lr_d)
        self.l2 = 1.0 / (2.0 * RECIPE.C * n_train)
        model, bv, dv, l2 = self.model, self.body_vars, self.dense_vars, self.l2
        opt_b, opt_d = self.opt_b, self.opt_d

        @tf.function(reduce_retracing=True)
        def step(m, z, y, w):
            with tf.GradientTape() as tape:
                lg = model([tf.cast(m, tf.float32), z], training=True)
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=lg)
                loss = tf.reduce_mean(w * ce) + l2 * tf.reduce_sum(tf.square(dv[0]))
            g = tape.gradient(loss, bv + dv)
            opt_b.apply_gradients(zip(g[:len(bv)], bv))
            opt_d.apply_gradients(zip(g[len(bv):], dv))
            return loss

        @tf.function(reduce_retracing=True)
        def fwd(m, z):
            return tf.nn.softmax(model([tf.cast(m, tf.float32), z], training=False))
        self._step, self._fwd = step, fwd

    def taps_z(self, draw: str, rows: np.ndarray) -> np.ndarray:
        X = self.D.stats[draw][rows]
        return ((X[:, 1280:] - self.head.mean[1280:]) / self.head.scale[1280:]).astype(np.float32)

    def epoch(self, batches: list[tuple[str, np.ndarray]], y: dict, w: dict, bs: int = 64, rng=None) -> float:
        """One pass over ``batches`` = list of (draw, rows) sets; shuffled minibatches of ``bs``."""
        allr = [(d, r) for d, rows in batches for r in rows]
        order = rng.permutation(len(allr))
        losses = []
        for s in range(0, len(order), bs):
            sel = [allr[k] for k in order[s:s + bs]]
            ds = sorted(set(d for d, _ in sel))
            M = np.concatenate([self.D.maps[d][[r for dd, r in sel if dd == d]] for d in ds])
            Z = np.concatenate([self.taps_z(d, np.array([r for dd, r in sel if dd == d])) for d in ds])
            Y = np.concatenate([np.array([y[r] for dd, r in sel if dd == d], np.int32) for d in ds])
            W = np.concatenate([np.array([w[r] for dd, r in sel if dd == d], np.float32) for d in ds])
            losses.append(float(self._step(M, Z, Y, W)))
        return float(np.mean(losses))

    def predict(self, rows: np.ndarray, draw: str = "clean", bs: int = 128) -> np.ndarray:
        out = []
        for s in range(0, len(rows), bs):
            r = rows[s:s + bs]
            out.append(np.asarray(self._fwd(self.D.maps[draw][r], self.taps_z(draw, r))))
        return np.concatenate(out).astype(np.float64)


def pools(D: FtData) -> tuple[np.ndarray, np.ndarray]:
    """(non-test realart item indices, PACS item indices) in the cmp subset (as heads.realart_pool)."""
    from realart.heads import realart_pool
    return realart_pool(D.items, subset_indices(D.items, "cmp"))


def fit_run(D: FtData, tr: np.ndarray, draws: tuple[str, ...], start: int, lr_b: float, lr_d: float,
            epochs: int, eval_sets: dict[str, np.ndarray], log=print, seed: int = 0):
    """Train on items ``tr`` (all ``draws``), score ``eval_sets`` (name → item indices, clean)
    after every epoch (epoch 0 = baseline init). Returns (trainer, {name: [P_epoch0, …]}, secs)."""
    w_items = sample_weights(D.items, tr, RECIPE)
    rows = np.array([D.row[int(i)] for i in tr])
    y = {r: D.items[int(i)].y for r, i in zip(rows, tr)}
    w = {r: float(v) for r, v in zip(rows, w_items)}
    Fc = D.stats["clean"][rows]
    head = Head(RECIPE).fit(Fc, np.array([y[r] for r in rows]), w_items)
    trainer = Trainer(D, head, start, lr_b, lr_d, n_train=len(rows) * len(draws), seed=seed)
    ev_rows = {k: np.array([D.row[int(i)] for i in v]) for k, v in eval_sets.items()}
    preds = {k: [trainer.predict(r)] for k, r in ev_rows.items()}
    secs = []
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        t = time.time()
        loss = trainer.epoch([(d, rows) for d in draws], y, w, rng=rng)
        secs.append(time.time() - t)
        for k, r in ev_rows.items():
            preds[k].append(trainer.predict(r))
        log(f"  epoch {e + 1} loss {loss:.4f} {secs[-1]:.0f}s")
    return trainer, preds, secs


def cv(name: str, lr_b: float, lr_d: float, epochs: int, draws=("clean",), start: int = 15) -> dict:
    """5-fold leave-source-out CV (folds of data.source_folds; PACS always in training)."""
    D = FtData(draws, start)
    items = D.items
    folds = data.source_folds(items)
    real, pacs = pools(D)
    fold_of = np.array([folds[items[i].group] for i in real])
    y = np.array([items[i].y for i in real])
    P = np.zeros((epochs + 1, len(real), K))
    res = {"name": name, "lr_b": lr_b, "lr_d": lr_d, "epochs": epochs, "draws": list(draws), "start_block": start,
           "folds": [], "sec_per_epoch": []}
    log = lambda s: print(s, flush=True)  # noqa: E731
    for f in range(5):
        t0 = time.time()
        tr = np.concatenate([real[fold_of != f], pacs])
        _, preds, secs = fit_run(D, tr, draws, start, lr_b, lr_d, epochs, {"va": real[fold_of == f]}, log)
        for e in range(epochs + 1):
            P[e][fold_of == f] = preds["va"][e]
        f1s = [report(y[fold_of == f], preds["va"][e].argmax(1), list(range(K)))["macro_f1"] for e in range(epochs + 1)]
        res["folds"].append({"n_train_rows": int(len(tr) * len(draws)), "macro_f1_by_epoch": f1s})
        res["sec_per_epoch"] += secs
        log(f"{name} fold {f}: F1 by epoch " + " ".join(f"{v:.3f}" for v in f1s) + f" [{time.time() - t0:.0f}s]")
    res["by_epoch"] = []
    for e in range(epochs + 1):
        fs = [report(y[fold_of == f], P[e][fold_of == f].argmax(1), list(range(K))) for f in range(5)]
        res["by_epoch"].append({"epoch": e, "mean_macro_f1": float(np.mean([x["macro_f1"] for x in fs])),
                                "worst_macro_f1": float(np.min([x["macro_f1"] for x in fs])),
                                "pooled": report(y, P[e].argmax(1), list(range(K))),
                                "fold_macro_f1": [x["macro_f1"] for x in fs],
                                "fold_recall": [x["recall"] for x in fs]})
        b = res["by_epoch"][-1]
        log(f"{name} epoch {e}: mean {b['mean_macro_f1']:.3f} worst {b['worst_macro_f1']:.3f} pooled rec "
            + " ".join(f"{k[:3]}={v:.2f}" for k, v in b["pooled"]["recall"].items()))
    OUT.mkdir(exist_ok=True)
    (OUT / f"cv_{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    np.savez(OUT / f"oof_{name}.npz", idx=real, y=y, fold=fold_of, P=P)
    return res


def loo(name: str, lr_b: float, lr_d: float, epochs: int, objs: list[str], draws=("clean",), start: int = 15) -> dict:
    """PACS leave-one-object-out for the given objects (4 media; as heads.pacs_loo)."""
    D = FtData(draws, start)
    real, pacs = pools(D)
    obj = np.array([D.items[i].group for i in pacs])
    res = {}
    for o in objs:
        va = pacs[obj == o]
        _, preds, _ = fit_run(D, np.concatenate([real, pacs[obj != o]]), draws, start, lr_b, lr_d, epochs, {"va": va})
        yv = np.array([D.items[i].y for i in va])
        res[o] = [report(yv, p.argmax(1), [0, 1, 2, 3]) for p in preds["va"]]
        print(f"{name} PACS-LOO {o}: F1 by epoch " + " ".join(f"{r['macro_f1']:.3f}" for r in res[o]), flush=True)
    (OUT / f"loo_{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


def time_epochs(n_batches: int = 12, bs: int = 64) -> dict:
    """Seconds per epoch of the 6,309 clean cmp rows, measured on ``n_batches`` train steps."""
    import tensorflow as tf
    D = FtData(("clean",), 15)
    out = {}
    for start in (15, 11):
        if start == 11:
            D.maps["clean"] = np.load(CACHE / "clean" / "b10.npy")
        model, bv = build_tail(start)
        dv = model.get_layer("medium").trainable_weights
        opt = tf.keras.optimizers.Adam(1e-4) if hasattr(tf, "keras") else None
        import keras
        opt = keras.optimizers.Adam(1e-4)

        @tf.function
        def step(m, z, y):
            with tf.GradientTape() as tape:
                lg = model([tf.cast(m, tf.float32), z], training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=lg))
            g = tape.gradient(loss, bv + dv)
            opt.apply_gradients(zip(g, bv + dv))
            return loss
        M = D.maps["clean"][:bs]
        Z = np.zeros((bs, 896), np.float32)
        Y = np.zeros(bs, np.int32)
        step(M, Z, Y)
        t = time.time()
        for _ in range(n_batches):
            step(M, Z, Y)
        per = (time.time() - t) / n_batches
        out[f"blocks{start}-15+head"] = {"sec_per_batch64": per, "sec_per_epoch_6309": per * 6309 / bs}
        print(start, out[f"blocks{start}-15+head"], flush=True)
    return out


if __name__ == "__main__":
    a = sys.argv[1:]
    draws = ("clean", "full1") if "--aug" in a else ("clean",)
    start = int(a[a.index("--start") + 1]) if "--start" in a else 15
    a = [x for i, x in enumerate(a) if not x.startswith("--") and not (i > 0 and a[i - 1] == "--start")]
    if a[0] == "time":
        r = time_epochs()
        OUT.mkdir(exist_ok=True)
        (OUT / "timing.json").write_text(json.dumps(r, indent=1) + "\n")
    elif a[0] == "cv":
        cv(a[1], float(a[2]), float(a[3]), int(a[4]), draws, start)
    elif a[0] == "loo":
        loo(a[1], float(a[2]), float(a[3]), int(a[4]), a[5:], draws, start)
