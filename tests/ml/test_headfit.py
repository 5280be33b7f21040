"""The ``head`` challenger recipe (:mod:`modbot.ml.headfit`): the MAP fit towards the
champion's head, the choice of its strength, and a refit of the shipped model on real images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import REPO

SAMPLE = REPO / "modbot" / "sandbox" / "sample"


def _problem(seed=0, n=120, d=16, k=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2
    y = rng.integers(0, k, size=n)
    z = centres[y] + rng.normal(size=(n, d))
    W0 = rng.normal(size=(d, k)) * 0.1  # a champion that knows nothing useful
    b0 = np.zeros(k)
    return z, y, W0, b0


def _weighted_ce(z, y, w, W, b):
    logits = z @ W + b
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-(w * logp[np.arange(len(y)), y]).sum() / w.sum())


def test_fit_head_trades_the_labels_against_the_champion():
    from modbot.ml.headfit import balanced_weights, fit_head

    z, y, W0, b0 = _problem()
    w = balanced_weights(y, 3)
    loose = fit_head(z, y, w, W0, b0, lam=0.01)
    tight = fit_head(z, y, w, W0, b0, lam=100.0)
    # the labels are learned when the prior is weak ...
    assert _weighted_ce(z, y, w, *loose) < 0.5 * _weighted_ce(z, y, w, W0, b0)
    assert (np.argmax(z @ loose[0] + loose[1], axis=1) == y).mean() > 0.95
    # ... and a strong prior keeps the champion's head
    assert np.linalg.norm(tight[0] - W0) < 0.1 * np.linalg.norm(loose[0] - W0)
    # it is the optimum: the objective's gradient vanishes there
    for lam, (W, b) in ((0.01, loose), (100.0, tight)):
        p = np.exp(z @ W + b - (z @ W + b).max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - np.eye(3)[y]) * (w / w.sum())[:, None]
        assert np.abs(z.T @ g + lam * (W - W0)).max() < 1e-4
        assert np.abs(g.sum(axis=0) + lam * (b - b0)).max() < 1e-4
    with pytest.raises(ValueError):
        fit_head(z, y, w, W0, b0, lam=0.0)
    with pytest.raises(ValueError):
        fit_head(z, y[:-1], w, W0, b0, lam=1.0)


def test_balanced_weights_give_every_present_class_the_same_total():
    from modbot.ml.headfit import balanced_weights

    y = np.array([0, 0, 0, 0, 1, 2, 2])
    base = np.array([1, 1, 1, 0.5, 1, 1, 1], dtype=float)
    w = balanced_weights(y, 4, base)
    totals = [w[y == c].sum() for c in range(3)]
    assert np.allclose(totals, totals[0]) and w.mean() == pytest.approx(1.0)
    assert w[3] == pytest.approx(w[0] / 2)          # a doubtful label counts half within its class


def test_choose_lambda_uses_cross_validation_and_prefers_the_champion_on_ties():
    from modbot.ml.headfit import choose_lambda

    z, y, W0, b0 = _problem(seed=1)
    groups = np.arange(len(y))
    lam, scores = choose_lambda(z, y, np.ones(len(y)), W0, b0, groups, lambdas=(0.01, 1000.0))
    assert lam == 0.01 and scores["0.01"] > scores["1000.0"]   # useless champion: trust the labels
    # a champion that is already right: every λ scores the same, and the tie keeps the champion
    zs = np.eye(3)[y] * 10 + np.random.default_rng(2).normal(size=(len(y), 3)) * 0.1
    lam2, scores2 = choose_lambda(zs, y, np.ones(len(y)), np.eye(3), np.zeros(3), groups, lambdas=(0.01, 1000.0))
    assert scores2["0.01"] == scores2["1000.0"] == 1.0 and lam2 == 1000.0
    # too few groups for the folds: the strongest prior, no scores
    assert choose_lambda(z[:3], y[:3], np.ones(3), W0, b0, np.arange(3)) == (30.0, {})


def _sample_items():
    """(image path, true medium) of the demo sample's real images (sandbox sample, licences in
    modbot/sandbox/sample/licences.json)."""
    posts = json.loads((SAMPLE / "posts.json").read_text(encoding="utf-8"))
    items = []
    for p in posts:
        t = p["_sandbox_truth"]
        if t.get("kind") == "image" and t.get("medium") in ("digital", "painting", "drawing", "photography",
                                                            "sculpture"):
            items += [(SAMPLE / "images" / name, t["medium"]) for name in t.get("images", [])]
    return items


def test_refit_head_of_the_shipped_model_on_real_images(tmp_path):
    from modbot.classify import shipped_model_dir
    from modbot.errors import ModelError
    from modbot.ml.headfit import HEAD_LAYER, refit_head
    from modbot.ml.keras_classifier import KerasClassifier

    items = _sample_items()
    assert len(items) >= 30
    out = tmp_path / "challenger"
    record = refit_head(shipped_model_dir(), items, out, version="test-head")
    champion = KerasClassifier.load(shipped_model_dir())
    challenger = KerasClassifier.load(out)
    assert challenger.version == "test-head" and challenger.labels == champion.labels
    assert record["n_images"] == len(items) and record["n_rows"] == 2 * len(items)
    assert record["lambda"] in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
    meta = json.loads((out / "labels.json").read_text())
    assert "tflite" not in meta and meta["judge"] == json.loads(
        (shipped_model_dir() / "labels.json").read_text())["judge"]          # the champion's thresholds
    # only the head changed; on its own training images the challenger is at least as right
    old_w = champion._model.get_layer(HEAD_LAYER).get_weights()[0]
    new_w = challenger._model.get_layer(HEAD_LAYER).get_weights()[0]
    assert not np.allclose(old_w, new_w)
    from modbot.decode import open_image

    images = [open_image(p) for p, _ in items]
    truth = [m for _, m in items]

    def hits(clf):
        probs = clf.predict_proba(images)
        return sum(clf.labels[i] == t for i, t in zip(probs.argmax(axis=1), truth, strict=True))

    assert hits(challenger) >= hits(champion)
    # a challenger must keep every medium of the champion; a new medium is appended
    with pytest.raises(ModelError, match="drop"):
        refit_head(shipped_model_dir(), items, tmp_path / "x", version="x", labels=["digital", "painting"])
    with pytest.raises(ValueError, match="no training images"):
        refit_head(shipped_model_dir(), [], tmp_path / "y", version="y")


def test_a_model_without_a_linear_head_is_not_refitted():
    from modbot.ml.headfit import has_linear_head
    from modbot.ml.tf import load_keras

    keras = load_keras()
    inp = keras.Input((8, 8, 3))
    plain = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="medium")(
        keras.layers.GlobalAveragePooling2D()(inp)))
    assert has_linear_head(plain) is False


def test_no_author_counts_for_more_than_the_cap():
    from modbot.ml.headfit import author_weights

    w = author_weights(["a"] * 160 + ["b"] * 10 + [None] * 3, cap=80)
    assert w[:160].sum() == pytest.approx(80) and np.all(w[160:] == 1.0)


@pytest.mark.slow
def test_a_refitted_head_is_exported_so_the_daemon_serves_it_without_tensorflow(tmp_path):
    """int8 when its check passes, else float16: either way a checked LiteRT file that
    ``load_classifier`` serves (the daemon never falls back to Keras after a promotion)."""
    from modbot.classify import LiteRTClassifier, load_classifier, shipped_model_dir
    from modbot.ml.headfit import export_for_serving, refit_head
    from modbot.ml.keras_classifier import KerasClassifier

    items = _sample_items()
    out = tmp_path / "challenger"
    refit_head(shipped_model_dir(), items, out, version="test-export")
    record = export_for_serving(out, [p for p, _ in items])
    assert record["passed"] and record["quantize"] in ("int8", "float16")
    served = load_classifier(out)
    assert isinstance(served, LiteRTClassifier) and served.version == "test-export"
    from modbot.decode import open_image

    images = [open_image(p) for p, _ in items[:16]]
    keras_top = KerasClassifier.load(out).predict_proba(images).argmax(axis=1)
    assert (served.predict_proba(images).argmax(axis=1) == keras_top).mean() >= 0.9
