"""The subreddit's own model, cheaply: refit the champion's linear softmax head on the
subreddit's labels, pulled towards the champion's head.

The shipped model (``model/``, ``bench/realart``) is a frozen ImageNet backbone, pooled
features (layer ``pooled``: standardised, ``(N, d)`` float32) and one linear softmax layer
(``medium``: kernel ``(d, k)``, bias ``(k,)``). Its head was fitted on ~6,000 images
(realart + PACS) that a deployment does not have; a subreddit's labels are a few hundred
images, some of them wrong. So the challenger keeps everything below ``pooled`` and refits
only the head, as maximum a posteriori logistic regression with a Gaussian prior centred on the
champion's head::

    minimise  Σ_i w_i · CE(softmax(z_i W + b), y_i) / Σ_i w_i  +  (λ/2)·(‖W − W₀‖² + ‖b − b₀‖²)

(:func:`fit_head`). Large ``λ`` gives the champion back; small ``λ`` trusts the new labels.
``λ`` is chosen per run by cross-validation on the run's own training labels only
(:func:`choose_lambda`, folds by author: what is measured is the head on artists it was not
fitted on), never on the evaluation set the promotion gates use (itself split by author,
:func:`modbot.learning.labels.assign_splits`). No author counts for more than
:data:`AUTHOR_CAP` images. A medium the champion lacks starts from a zero column.
Each training image counts twice, as is and mirrored left-right (a mirrored artwork keeps its
medium). Classes are balanced (each medium's weights sum to the same total).

Cost on 2 cores: one forward pass of the backbone per image and mirror (Keras, ~30–60 images/s)
and well under a second of numpy for the fit. The calibration temperature and the judge's
flag thresholds are the champion's (``labels.json``): they were fitted on held-out artists.

:func:`refit_head` needs TensorFlow (imported inside); :func:`fit_head`,
:func:`choose_lambda` and :func:`balanced_weights` are numpy only.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modbot.classify import (
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    TFLITE_FILE,
    preprocess,
)
from modbot.errors import ModelError

#: Layer names a champion must have for this recipe (``bench/realart/final.py`` builds them).
FEATURES_LAYER = "pooled"
HEAD_LAYER = "medium"
#: Candidate prior strengths λ (per-sample loss scale). The shipped head was fitted with
#: λ₀ ≈ 1/(C·N₀) ≈ 0.17 (C = 1e-3, N₀ ≈ 6,000 images); refitting on N new images as if they had
#: joined the champion's own N₀ would take about λ₀·N₀/N — ~3 for 300 labels, ~0.3 for 3,000 —
#: so the grid spans that range and a decade beyond either end.
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: Cross-validation folds for λ (over authors).
CV_FOLDS = 4
#: Most images one author counts for (larger ones are down-weighted to it); the shipped
#: recipe caps each realart source the same way (``bench/realart/heads.py``).
AUTHOR_CAP = 80
#: Most optimiser iterations (:func:`fit_head`; it needs 10·√(L/λ), a few hundred to ~2,000).
STEPS = 4000
#: Images decoded and passed through the backbone at a time (memory bound with large originals).
CHUNK = 16


def has_linear_head(model: Any) -> bool:
    """Whether a Keras model has the ``pooled`` features layer feeding a ``medium`` Dense softmax."""
    try:
        head = model.get_layer(HEAD_LAYER)
        model.get_layer(FEATURES_LAYER)
    except ValueError:
        return False
    return head.__class__.__name__ == "Dense" and len(head.get_weights()) == 2


def champion_has_linear_head(model_dir: str | Path, *, threads: int | None = None) -> bool:
    """Whether the model directory's ``model.keras`` has a head :func:`refit_head` can refit.
    Raises ``ModelError`` when it cannot be loaded. Imports TensorFlow."""
    from modbot.ml.keras_classifier import KerasClassifier

    return has_linear_head(KerasClassifier.load(model_dir, threads=threads)._model)


def balanced_weights(y: np.ndarray, n_classes: int, base: np.ndarray | None = None) -> np.ndarray:
    """Per-sample weights ``(N,)`` float64 such that every present class has the same total
    weight (mean weight 1). ``base``: prior weights ``(N,)`` (e.g. 0.5 for a doubtful label),
    kept within a class."""
    base = np.ones(len(y)) if base is None else np.asarray(base, dtype=np.float64)
    w = np.zeros(len(y))
    present = [c for c in range(n_classes) if base[y == c].sum() > 0]
    for c in present:
        mask = y == c
        w[mask] = base[mask] / base[mask].sum()
    return w * len(y) / max(w.sum(), 1e-12)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_head(z: np.ndarray, y: np.ndarray, w: np.ndarray, W0: np.ndarray, b0: np.ndarray, lam: float, *,
             steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """MAP softmax regression with a Gaussian prior at ``(W0, b0)`` (module docstring).

    ``z``: features ``(N, d)`` float; ``y``: class indices ``(N,)`` int in ``[0, k)``;
    ``w``: sample weights ``(N,)`` ≥ 0 (not all 0); ``W0`` ``(d, k)``, ``b0`` ``(k,)``: the
    prior's centre; ``lam`` > 0. The objective is smooth and ``lam``-strongly convex, so
    Nesterov's accelerated gradient from ``(W0, b0)`` with step 1/L (L: a bound on the
    curvature, ½·λ_max(Zᵀ diag(w) Z) + ``lam``, by power iteration) converges to the one
    optimum; it runs ``10·√(L/lam)`` iterations (error shrinks ~e⁻¹⁰), at most ``steps``.
    Returns ``(W, b)`` float64 of the same shapes. Raises ``ValueError`` for inconsistent
    shapes or a non-positive ``lam``.
    """
    z = np.asarray(z, dtype=np.float64)
    n, d = z.shape
    k = W0.shape[1]
    if W0.shape != (d, k) or b0.shape != (k,) or y.shape != (n,) or w.shape != (n,):
        raise ValueError(f"shapes do not agree: z {z.shape}, y {y.shape}, w {w.shape}, W0 {W0.shape}, b0 {b0.shape}")
    if lam <= 0:
        raise ValueError(f"lam must be > 0, not {lam}")
    z1 = np.hstack([z, np.ones((n, 1))])
    theta0 = np.vstack([W0, b0[None, :]]).astype(np.float64)
    onehot = np.eye(k)[y]
    ws = w / max(w.sum(), 1e-12)
    v = np.random.default_rng(0).normal(size=d + 1)
    for _ in range(30):  # power iteration: the largest eigenvalue of z1ᵀ diag(ws) z1
        v = z1.T @ (ws * (z1 @ v))
        top = float(np.linalg.norm(v))
        v /= max(top, 1e-12)
    L = 0.5 * top * 1.05 + lam
    beta = (np.sqrt(L) - np.sqrt(lam)) / (np.sqrt(L) + np.sqrt(lam))
    theta, previous = theta0.copy(), theta0.copy()
    for _ in range(min(steps, int(10 * np.sqrt(L / lam)) + 20)):
        look = theta + beta * (theta - previous)
        grad = z1.T @ ((_softmax(z1 @ look) - onehot) * ws[:, None]) + lam * (look - theta0)
        previous, theta = theta, look - grad / L
    return theta[:d], theta[d]


def _macro_f1(y: np.ndarray, pred: np.ndarray, classes: Sequence[int]) -> float:
    f1 = []
    for c in classes:
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1)) if f1 else 0.0


def choose_lambda(z: np.ndarray, y: np.ndarray, w: np.ndarray, W0: np.ndarray, b0: np.ndarray,
                  groups: np.ndarray, *, lambdas: Sequence[float] = LAMBDAS, folds: int = CV_FOLDS,
                  seed: int = 0, steps: int = STEPS) -> tuple[float, dict[str, float]]:
    """The prior strength chosen by cross-validated macro-F1 on the training labels, with the
    one-standard-error rule: the largest λ (closest to the champion) whose mean score is
    within one standard error (over folds) of the best mean. Author folds are few and small;
    the rule keeps a lucky fold from pulling the head away from the champion.

    ``groups`` ``(N,)``: rows with the same group (an author's images and their mirrors)
    are kept on one side. Folds are dealt over groups at random (``seed``). Returns ``(λ, {str(λ): mean macro-F1})``; with fewer than ``folds`` groups
    the largest λ and an empty score table.
    """
    uniq = np.unique(groups)
    if len(uniq) < folds:
        return float(max(lambdas)), {}
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq.tolist(), (rng.permutation(len(uniq)) % folds).tolist(), strict=True))
    fold = np.array([fold_of[g] for g in groups.tolist()])
    per_fold: dict[float, list[float]] = {}
    for lam in lambdas:
        f1s = []
        for f in range(folds):
            tr, te = fold != f, fold == f
            if not tr.any() or not te.any():
                continue
            W, b = fit_head(z[tr], y[tr], balanced_weights(y[tr], W0.shape[1], w[tr]), W0, b0, lam, steps=steps)
            pred = (z[te] @ W + b).argmax(axis=1)
            f1s.append(_macro_f1(y[te], pred, np.unique(y[te]).tolist()))
        per_fold[lam] = f1s or [0.0]
    scores = {str(lam): float(np.mean(v)) for lam, v in per_fold.items()}
    top = max(lambdas, key=lambda lam: (round(scores[str(lam)], 6), lam))
    se = float(np.std(per_fold[top]) / np.sqrt(len(per_fold[top])))
    # the one-standard-error rule: the strongest prior within one standard error of the best
    best = max(lam for lam in lambdas if scores[str(lam)] >= scores[str(top)] - se - 1e-12)
    return float(best), scores


def _features(feature_model: Any, paths: Sequence[Path], size: tuple[int, int], *, mirror: bool = True) -> np.ndarray:
    """Pooled features of each image and of its mirror: ``(2N, d)`` float32 (row ``2i`` the
    image, ``2i+1`` its mirror); ``(N, d)`` without ``mirror``."""
    from modbot.decode import open_image

    feats = []
    for start in range(0, len(paths), CHUNK):
        batch = preprocess([open_image(p) for p in paths[start : start + CHUNK]], size)
        both = np.stack([batch, batch[:, :, ::-1, :]], axis=1).reshape((-1, *batch.shape[1:])) if mirror else batch
        feats.append(np.asarray(feature_model([both.astype(np.float32)], training=False)))
    return np.concatenate(feats)


def author_weights(authors: Sequence[str | None], cap: int = AUTHOR_CAP) -> np.ndarray:
    """Per-image weights ``(N,)`` float64: 1, or ``cap / n`` for each of the ``n`` > ``cap``
    images of one author, so that no poster counts for more than ``cap`` images (None: an
    unknown author, weight 1)."""
    counts = Counter(a for a in authors if a)
    return np.array([min(1.0, cap / counts[a]) if a else 1.0 for a in authors], dtype=np.float64)


def refit_head(champion_dir: str | Path, train: Sequence[tuple[Path, str]], out: str | Path, *,
               version: str, labels: Sequence[str] | None = None, sample_weights: Sequence[float] | None = None,
               authors: Sequence[str | None] | None = None, seed: int = 0,
               threads: int | None = None) -> dict[str, Any]:
    """Write a challenger model directory: the champion with its head refitted on ``train``.

    ``champion_dir``: a model directory whose ``model.keras`` has the ``pooled`` and ``medium``
    layers (:func:`has_linear_head`). ``train``: ``(image path, medium)`` pairs. ``labels``:
    the challenger's media (default: the champion's, plus any medium of ``train`` it lacks,
    appended); every champion medium must stay. ``sample_weights``: one per training image
    (default 1). ``authors``: the poster of each training image (None: unknown): the
    cross-validation that chooses λ leaves whole authors out, so it measures what moderators
    need — the model on artists it was not fitted on — and no author counts for more than
    :data:`AUTHOR_CAP` images (:func:`author_weights`). Writes ``model.keras``, ``labels.json`` (the champion's, with ``version``, the
    new labels and the recipe; no LiteRT record) and ``metrics.json`` (``training``: λ and its
    cross-validation scores, counts, seconds) into ``out``. Returns the ``training`` record.

    Raises ``ModelError`` when the champion has no linear head or a champion medium would be
    dropped; ``ValueError`` for an empty ``train`` or a medium outside ``labels``; decoding
    errors of :func:`modbot.decode.open_image`. Imports TensorFlow.
    """
    from modbot.ml.export import write_json
    from modbot.ml.keras_classifier import KerasClassifier
    from modbot.ml.tf import load_keras

    t0 = time.perf_counter()
    if not train:
        raise ValueError("no training images")
    champ = KerasClassifier.load(champion_dir, threads=threads)
    keras = load_keras(threads)
    model = champ._model
    if not has_linear_head(model):
        raise ModelError(f"{champion_dir}: the model has no '{FEATURES_LAYER}' → '{HEAD_LAYER}' linear head "
                         "to refit (set [learning] recipe = \"train\")")
    old = list(champ.labels)
    new = list(labels) if labels is not None else old + sorted({m for _, m in train} - set(old))
    if missing := [m for m in old if m not in new]:
        raise ModelError(f"the challenger would drop media the champion predicts: {missing}")
    index = {m: i for i, m in enumerate(new)}
    if unknown := sorted({m for _, m in train} - set(index)):
        raise ValueError(f"training media {unknown} are not among the labels {new}")
    K, B = champ._model.get_layer(HEAD_LAYER).get_weights()
    W0 = np.zeros((K.shape[0], len(new)))
    b0 = np.full(len(new), float(np.mean(B)))
    for i, m in enumerate(old):
        W0[:, index[m]], b0[index[m]] = K[:, i], B[i]

    feature_model = keras.Model(model.input, model.get_layer(FEATURES_LAYER).output)
    z = _features(feature_model, [p for p, _ in train], tuple(champ.input_size))
    y = np.repeat([index[m] for _, m in train], 2)
    authors = list(authors) if authors is not None else [None] * len(train)
    if len(authors) != len(train):
        raise ValueError(f"{len(authors)} authors for {len(train)} training images")
    base = np.ones(len(train)) if sample_weights is None else np.asarray(sample_weights, float)
    base = np.repeat(base * author_weights(authors), 2)
    groups = np.repeat([f"a:{a}" if a else f"i:{i}" for i, a in enumerate(authors)], 2)
    lam, cv = choose_lambda(z, y, base, W0, b0, groups, seed=seed)
    W, b = fit_head(z, y, balanced_weights(y, len(new), base), W0, b0, lam)

    write_head_model(model, W, b, new, out, version=version, base_labels=Path(champion_dir) / LABELS_FILE,
                     recipe=f"head refitted on the subreddit's labels from {champ.version} (modbot.ml.headfit)")
    record = {"recipe": "head", "champion": champ.version, "lambda": lam, "lambda_cv_macro_f1": cv,
              "n_authors": len({a for a in authors if a}),
              "n_images": len(train), "n_rows": len(y), "mirrored": True,
              "per_medium": {m: int(sum(1 for _, x in train if x == m)) for m in new},
              "seconds": round(time.perf_counter() - t0, 2)}
    write_json(Path(out) / METRICS_FILE, {"version": version, "labels": new, "training": record})
    return record


def write_head_model(model: Any, W: np.ndarray, b: np.ndarray, labels: Sequence[str], out: str | Path, *,
                     version: str, base_labels: Path, recipe: str) -> None:
    """Write a model directory: ``model``'s layers up to ``pooled`` with a new ``medium`` softmax
    layer (kernel ``W`` ``(d, k)``, bias ``b`` ``(k,)``, k = ``len(labels)``) as ``model.keras``,
    and ``labels.json`` copied from ``base_labels`` (temperature, judge thresholds) with the new
    ``labels``, ``version`` and ``recipe`` and no LiteRT record. Imports TensorFlow."""
    from keras import layers

    from modbot.ml.export import deflate_keras_file, write_json
    from modbot.ml.tf import load_keras

    keras = load_keras()
    head = layers.Dense(len(labels), activation="softmax", name=HEAD_LAYER)
    new_model = keras.Model(model.input, head(model.get_layer(FEATURES_LAYER).output), name=model.name)
    head.set_weights([np.asarray(W, np.float32), np.asarray(b, np.float32)])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / TFLITE_FILE).unlink(missing_ok=True)
    new_model.save(out / MODEL_FILE)
    deflate_keras_file(out / MODEL_FILE)
    doc = json.loads(base_labels.read_text(encoding="utf-8"))
    doc.pop("tflite", None)
    doc.update(labels=list(labels), version=version, recipe=recipe)
    write_json(out / LABELS_FILE, doc)


def pooled_features(model_dir: str | Path, paths: Sequence[Path], *, mirror: bool = False,
                    threads: int | None = None) -> np.ndarray:
    """The ``pooled`` features a model directory's head sees, ``(N, d)`` float32 (``(2N, d)``
    with ``mirror``: rows ``2i``/``2i+1`` = image ``i`` as is / mirrored). Raises ``ModelError``
    for a model without a linear head. Imports TensorFlow."""
    from modbot.ml.keras_classifier import KerasClassifier
    from modbot.ml.tf import load_keras

    clf = KerasClassifier.load(model_dir, threads=threads)
    if not has_linear_head(clf._model):
        raise ModelError(f"{model_dir}: the model has no '{FEATURES_LAYER}' → '{HEAD_LAYER}' linear head")
    keras = load_keras(threads)
    feature_model = keras.Model(clf._model.input, clf._model.get_layer(FEATURES_LAYER).output)
    return _features(feature_model, paths, tuple(clf.input_size), mirror=mirror)


def export_for_serving(model_dir: str | Path, paths: Sequence[Path], *, threads: int | None = None,
                       seed: int = 0) -> dict[str, Any]:
    """Export a refitted model to LiteRT so that the daemon keeps serving without TensorFlow
    after a promotion: int8, as the shipped model is served, when that export passes its check
    against the Keras model; else float16 (about 1.5× the int8 inference time; its check
    bounds the largest probability difference). Measured: int8 exports of refitted heads
    calibrated on a subreddit's few hundred images agreed on 97–98 % of top-1 predictions, under
    the 99 % the check asks (``bench/learning_real.py``).

    ``paths``: images of the subreddit (shuffled with ``seed``; up to
    :data:`~modbot.ml.export.INT8_CALIBRATION_IMAGES` fit the int8 ranges, up to 512 check
    the exports, the criteria of :func:`modbot.ml.export.export_tflite`). Returns the record of
    the export that stays (``labels.json`` ``tflite``); ``passed`` False only when neither
    passed (the directory is then served through Keras). Imports TensorFlow.
    """
    import random

    from modbot.decode import open_image
    from modbot.ml.export import INT8_CALIBRATION_IMAGES, export_tflite
    from modbot.ml.keras_classifier import KerasClassifier

    size = tuple(KerasClassifier.load(model_dir, threads=threads).input_size)
    chosen = list(paths)
    random.Random(seed).shuffle(chosen)
    chosen = chosen[:512]
    inputs = np.concatenate([preprocess([open_image(p) for p in chosen[i : i + CHUNK]], size)
                             for i in range(0, len(chosen), CHUNK)])
    record = export_tflite(model_dir, inputs, quantize="int8", calibration_images=inputs[:INT8_CALIBRATION_IMAGES])
    if record["passed"]:
        return record
    return export_tflite(model_dir, inputs[:64], quantize="float16")
