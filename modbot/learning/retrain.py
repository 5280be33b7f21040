"""One retraining run: champion/challenger, the promotion gates, and the run's record.

One run (:func:`retrain_once`; ``modbot retrain``, or the daemon's scheduled job through
:mod:`modbot.learning.child`):

1. **Labels** up to a cut-off (the run's start): moderator reviews outrank stated media; stated
   media count only as ``[learning]`` allows (:mod:`modbot.learning.labels`).
2. **Fixed evaluation set**: each labelled image is put once on the ``train`` or ``eval`` side,
   stratified by medium (``label_splits``); ``eval`` images are never trained on.
3. **Classes**: the champion's media, plus every medium it lacks that has at least
   ``new_medium_min_labels`` labelled images. A medium the champion predicts but that has no
   training label stops the run (``skipped``): a challenger must never silently drop a medium.
4. **Challenger** (``[learning] recipe``): the champion's linear softmax head refitted on the
   training labels, pulled towards the champion's head (``head``, :mod:`modbot.ml.headfit`;
   the shipped model's recipe), or :func:`modbot.ml.training.train_model` on a folder-per-medium
   tree of symlinks into the image cache (``train``). Evicted images are downloaded again or
   skipped with a reason.
5. **Evaluation** of champion and challenger on the same evaluation images (:func:`evaluate`).
6. **Gates** (:func:`decide`): promote only if the challenger's macro-F1 beats the champion's
   by at least ``margin`` (and by more than 0), and its recall of every evaluated medium is at
   least that medium's floor (or the champion's recall, where that is lower).
7. **Promotion**: the challenger's directory is moved into the registry and the champion
   pointer replaced atomically (:mod:`modbot.learning.registry`). Every run, whatever its
   outcome, is a row of the ``models`` table (data counts, both models' metrics, decision,
   duration): :func:`start_run`, :class:`RunRecord`.

The daemon runs this in a child process and swaps promoted models in live
(:mod:`modbot.learning.scheduler`, :mod:`modbot.learning.serving`). Importing this module does
not import TensorFlow or APScheduler; :func:`retrain_once` imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from sqlite_utils import Database

from modbot.classify import read_labels, shipped_model_dir
from modbot.config import Config
from modbot.configcheck import validate
from modbot.decode import open_image
from modbot.domain import MEDIA
from modbot.errors import ModelError
from modbot.fsutil import file_lock
from modbot.imagecache import CACHE_IN_USE_LOCK
from modbot.learning.labels import RunData, build_tree, gather_data
from modbot.learning.registry import (
    ModelRegistry,
    baseline_versions,
    serving_model_dir,
    set_champion,
)
from modbot.ml.keras_classifier import KerasClassifier
from modbot.ml.metrics import classification_report
from modbot.ml.training import train_model
from modbot.record import open_database, write_transaction

log = structlog.get_logger("modbot.learning.retrain")

#: Lock file in ``[learning] models_dir``: one retraining run at a time, across processes.
RETRAIN_LOCK = ".retrain.lock"

#: Images decoded and evaluated at a time: bounds memory with large originals (a 4000×3000
#: RGB image decodes to 36 MB).
EVAL_CHUNK = 8


# --- the gates -------------------------------------------------------------------------------


def decide(champion: dict[str, Any], challenger: dict[str, Any], learning: Any) -> tuple[bool, str]:
    """Whether the challenger may replace the champion, and why (a one-line reason).

    ``champion``/``challenger``: classification reports (:func:`evaluate`) on the same
    evaluation images. Refused when any medium with evaluation images (support > 0) has a
    challenger recall below its floor, or when the macro-F1 gain is below ``learning.margin``
    or not positive (a tie keeps the champion). A medium's floor is
    ``learning.floor_for(medium)``, or the champion's own recall of it when that is lower: the
    floor keeps a medium from getting worse than acceptable, and must not block a challenger
    that improves a medium the champion was already weak at.
    """
    old = champion.get("macro_f1") or 0.0
    new = challenger.get("macro_f1") or 0.0
    gain = new - old
    champion_recall = {m: c["recall"] for m, c in champion.get("per_class", {}).items() if c["support"] > 0}

    def floor(medium: str) -> float:
        return min(learning.floor_for(medium), champion_recall.get(medium, learning.floor_for(medium)))

    below = [(m, c["recall"], floor(m)) for m, c in challenger["per_class"].items()
             if c["support"] > 0 and c["recall"] < floor(m)]
    failed = []
    if gain < learning.margin or gain <= 0:
        failed.append(f"macro-F1 {new:.4f} vs champion {old:.4f}: gain {gain:+.4f} is below the "
                      f"margin {learning.margin:.4f}")
    if below:
        failed.append("recall below its floor: " + ", ".join(f"{m} {r:.3f} < {f:.2f}" for m, r, f in below))
    if failed:
        return False, "; ".join(failed)
    return True, (f"macro-F1 {old:.4f} -> {new:.4f} (gain {gain:+.4f} >= margin "
                  f"{learning.margin:.4f}); every medium's recall reaches its floor")


def evaluate(classifiers: Sequence[Any], paths: Sequence[Path], truth: Sequence[str],
             labels: Sequence[str]) -> list[dict[str, Any]]:
    """Classification reports of each classifier on the same images, in ``classifiers`` order.

    ``classifiers``: objects with ``predict_proba(images) -> (N, len(labels))`` float array and
    ``labels`` (e.g. :class:`~modbot.ml.keras_classifier.KerasClassifier`). ``paths``: image files, decoded at full scale as
    the daemon decodes downloads (:func:`modbot.decode.open_image`), in chunks of
    :data:`EVAL_CHUNK`; ``truth``: their media; ``labels``: the report's label order (must
    contain every true and predictable medium). An unreadable file raises
    (``modbot.errors.ImageError`` or ``OSError``; images were checked when located).
    """
    preds: list[list[str]] = [[] for _ in classifiers]
    for start in range(0, len(paths), EVAL_CHUNK):
        images = [open_image(p) for p in paths[start : start + EVAL_CHUNK]]
        for k, clf in enumerate(classifiers):
            probs = np.asarray(clf.predict_proba(images))
            preds[k].extend(clf.labels[i] for i in probs.argmax(axis=1))
    return [classification_report(list(truth), p, list(labels)) for p in preds]


# --- run bookkeeping -------------------------------------------------------------------------


@dataclass
class RetrainResult:
    """What one run decided (also its ``models`` row, ``run_id``).

    ``status``: ``promoted`` | ``passed`` (gates passed, promotion not asked) | ``refused`` |
    ``skipped`` (not enough data, or another run in progress) | ``failed``. ``version``: the
    challenger's (None when none was trained). Macro-F1s are on the evaluation set (0-1);
    ``duration_s`` in seconds.
    """

    run_id: int
    status: str
    reason: str
    version: str | None = None
    champion_version: str | None = None
    champion_macro_f1: float | None = None
    challenger_macro_f1: float | None = None
    duration_s: float | None = None
    #: How the challenger was made: ``head`` or ``train`` (None when none was).
    recipe: str | None = None

    @property
    def promoted(self) -> bool:
        """True when the challenger became the champion."""
        return self.status == "promoted"


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def start_run(db: Database, *, trigger: str, now: float | None = None) -> int:
    """Insert a ``models`` row in status ``running`` (``started_at``: ``now``, Unix seconds,
    default the current time); return its id."""
    row = {"status": "running", "trigger": trigger, "started_at": time.time() if now is None else now}
    with write_transaction(db):
        return int(db["models"].insert(row).last_pk)


def update_run(db: Database, run_id: int, **fields: Any) -> None:
    """Set columns of the ``models`` row ``run_id``; dict and list values are stored as JSON."""
    with write_transaction(db):
        db["models"].update(run_id, {k: (_json(v) if isinstance(v, dict | list) else v)
                                     for k, v in fields.items()})


@dataclass
class RunRecord:
    """The ``models`` row of a run in progress and the :class:`RetrainResult` it will return.

    ``started``: Unix seconds when the run began (durations are measured from it).
    """

    db: Database
    run_id: int
    started: float
    result: RetrainResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = RetrainResult(run_id=self.run_id, status="failed", reason="")

    def update(self, **fields: Any) -> None:
        """Set columns of the run's row (:func:`update_run`)."""
        update_run(self.db, self.run_id, **fields)

    def finish(self, status: str, reason: str, **fields: Any) -> RetrainResult:
        """Record the run's outcome (status, reason, end, duration, and ``fields``), log it and
        return the result."""
        now = time.time()
        duration = round(now - self.started, 1)
        self.update(status=status, reason=reason, finished_at=now, duration_s=duration, **fields)
        result = self.result
        result.status, result.reason, result.duration_s = status, reason, duration
        log.info("retrain_finished", run_id=self.run_id, status=status, reason=reason,
                 champion=result.champion_version, challenger=result.version,
                 champion_macro_f1=result.champion_macro_f1,
                 challenger_macro_f1=result.challenger_macro_f1, duration_s=duration)
        return result

    def abandon_stale(self) -> None:
        """Mark ``failed`` the rows still ``running`` from before this run: their process died
        (call only while holding the run lock)."""
        with write_transaction(self.db):
            self.db.execute("UPDATE models SET status = 'failed', finished_at = ?, reason = "
                            "'abandoned: the process running it ended before recording an outcome' "
                            "WHERE status = 'running' AND id != ? AND started_at < ?",
                            [self.started, self.run_id, self.started])


def _adopt_baseline(db: Database, registry: ModelRegistry, champion_dir: Path,
                    meta: dict[str, Any]) -> None:
    """Copy the served model into the registry (once) so that it can be rolled back to."""
    version = meta["version"]
    if registry.has(version):
        return
    registry.add(champion_dir, version)
    now = time.time()
    metrics = None
    with contextlib.suppress(OSError, ValueError):
        metrics = json.loads((champion_dir / "metrics.json").read_text(encoding="utf-8"))
    with write_transaction(db):
        db["models"].insert({
            "version": version, "status": "baseline", "trigger": "adopted",
            "reason": f"the model served before the first retraining, copied from {champion_dir}",
            "labels": _json(list(meta["labels"])), "started_at": now, "finished_at": now,
            "duration_s": 0.0, "path": str(registry.path(version)),
            "params": _json({"source": str(champion_dir),
                             "test_macro_f1": ((metrics or {}).get("test") or {}).get("macro_f1")}),
        })
    log.info("baseline_adopted", version=version, source=str(champion_dir))


def training_options(learning: Any, *, version: str | None = None) -> dict[str, Any]:
    """Keyword arguments for :func:`modbot.ml.training.train_model` from ``[learning]``: ``arch``,
    ``image_size`` and ``epochs`` only when set (else the trainer's defaults), ``batch_size``,
    ``seed``, ``version``, ``verbose=0`` and ``export=False`` (challengers are evaluated and
    served through Keras; no TFLite file is needed)."""
    options: dict[str, Any] = {"batch_size": learning.batch_size, "seed": learning.seed,
                               "verbose": 0, "export": False}
    if learning.arch:
        options["arch"] = learning.arch
    if learning.image_size:
        options["image_size"] = learning.image_size
    if learning.epochs:
        options["epochs"] = learning.epochs
    if version is not None:
        options["version"] = version
    return options


def _run_params(learning: Any, shuffle_labels: bool) -> dict[str, Any]:
    """The settings recorded in a run's ``params`` column."""
    return {**training_options(learning), "shuffle_labels": shuffle_labels,
            "eval_fraction": learning.eval_fraction, "margin": learning.margin,
            "recall_floor": learning.recall_floor, "recall_floors": dict(learning.recall_floors),
            "recipe": learning.recipe, "stated_labels": learning.stated_labels, "trusted_media": list(learning.trusted_media),
            "collected_labels": learning.collected_labels}


# --- one run ---------------------------------------------------------------------------------


def skip_reason(data: RunData, champion_labels: Sequence[str], learning: Any) -> str | None:
    """Why the run cannot train a challenger (a medium of the champion without training
    images, or fewer than ``min_train_labels``/``min_eval_labels`` images), else None."""
    trained = {m for _, m in data.train}
    missing = [m for m in champion_labels if m not in trained]
    if missing:
        return (f"no training labels for media the champion predicts: {', '.join(missing)} "
                "(a challenger must not drop them)")
    if len(data.train) < learning.min_train_labels:
        return f"{len(data.train)} training images < min_train_labels {learning.min_train_labels}"
    if len(data.eval) < learning.min_eval_labels:
        return f"{len(data.eval)} evaluation images < min_eval_labels {learning.min_eval_labels}"
    return None


def resolve_recipe(learning: Any, champion_dir: Path) -> str:
    """``head`` or ``train``: ``[learning] recipe``, with ``auto`` = ``head`` when the champion
    has a linear head to refit (:func:`modbot.ml.headfit.champion_has_linear_head`). Imports
    TensorFlow for ``auto``."""
    if learning.recipe != "auto":
        return str(learning.recipe)
    from modbot.ml.headfit import champion_has_linear_head

    return "head" if champion_has_linear_head(champion_dir, threads=learning.threads) else "train"


def _train_challenger(run: RunRecord, data: RunData, work: Path, learning: Any, *,
                      shuffle_labels: bool, champion_dir: Path, false_flag_budget: float) -> Path:
    """Make the challenger in this process from ``data.train`` into ``work/model``: the
    champion's head refitted (recipe ``head``, :func:`modbot.ml.headfit.refit_head`; it keeps
    the champion's judge thresholds) or a model trained from scratch (``train``,
    :func:`modbot.ml.training.train_model`, its thresholds fitted to ``false_flag_budget``,
    ``[judge]``); return it. Imports TensorFlow."""
    media = [m for _, m in data.train]
    if shuffle_labels:
        rng = np.random.default_rng(learning.seed + 7919)
        media = [str(m) for m in rng.permutation(media)]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    version = f"v{run.run_id}-{stamp}" + ("-shuffled" if shuffle_labels else "")
    run.result.version = version
    run.update(version=version, train_started_at=time.time())
    recipe = resolve_recipe(learning, champion_dir)
    run.result.recipe = recipe
    run.update(params={**_run_params(learning, shuffle_labels), "recipe_used": recipe})
    log.info("challenger_training", run_id=run.run_id, version=version, recipe=recipe,
             n_train=len(data.train), n_eval=len(data.eval), classes=data.classes)
    if recipe == "head":
        from modbot.ml.headfit import refit_head

        # labels: the champion's, plus any new medium the training labels bring (refit_head's default)
        refit_head(champion_dir, [(p, m) for (p, _), m in zip(data.train, media, strict=True)], work / "model",
                   version=version, authors=data.train_authors or None, seed=learning.seed,
                   threads=learning.threads)
    else:
        build_tree(work / "train", [(p, m) for (p, _), m in zip(data.train, media, strict=True)])
        train_model(work / "train", work / "model", false_flag_budget=false_flag_budget,
                    **training_options(learning, version=version))
    run.update(train_finished_at=time.time())
    return work / "model"


def _export_for_serving(run: RunRecord, challenger: Path, data: RunData, learning: Any) -> None:
    """Export a refitted challenger to LiteRT before promotion (int8, else float16:
    :func:`modbot.ml.headfit.export_for_serving`), so that the daemon serves it without
    TensorFlow, like the shipped model; the export's check is in the challenger's
    ``labels.json``. Imports TensorFlow."""
    from modbot.ml.headfit import export_for_serving

    t0 = time.time()
    record = export_for_serving(challenger, [p for p, _ in data.train] + [p for p, _ in data.eval],
                                threads=learning.threads, seed=learning.seed)
    log.info("challenger_exported", run_id=run.run_id, quantize=record["quantize"], passed=record["passed"],
             argmax_agreement=record.get("argmax_agreement"), seconds=round(time.time() - t0, 1))


def _compare(run: RunRecord, data: RunData, champion_dir: Path,
             challenger_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate champion and challenger on the evaluation images; record and return both
    reports (champion's first). Imports TensorFlow."""
    challenger = KerasClassifier.load(challenger_dir)
    champion = KerasClassifier.load(champion_dir)
    media = set(data.classes) | set(champion.labels) | set(challenger.labels)
    order = [m for m in MEDIA if m in media]
    old, new = evaluate([champion, challenger], [p for p, _ in data.eval],
                        [m for _, m in data.eval], order)
    run.result.champion_macro_f1 = old["macro_f1"]
    run.result.challenger_macro_f1 = new["macro_f1"]
    run.update(champion_metrics=old, challenger_metrics=new, champion_macro_f1=old["macro_f1"],
               challenger_macro_f1=new["macro_f1"], labels=list(challenger.labels))
    return old, new


def _champion(run: RunRecord, registry: ModelRegistry, config: Config,
              champion_dir: str | os.PathLike[str] | None) -> tuple[Path, tuple[str, ...]]:
    """The champion's directory and labels (``champion_dir``, else :func:`serving_model_dir`,
    else the shipped model); recorded, and adopted into the registry as a baseline."""
    served = champion_dir if champion_dir is not None else serving_model_dir(config)
    folder = Path(served) if served else shipped_model_dir()
    meta = read_labels(folder)
    run.result.champion_version = meta["version"]
    run.update(champion_version=meta["version"])
    _adopt_baseline(run.db, registry, folder, meta)
    return folder, tuple(meta["labels"])


def _round(run: RunRecord, config: Config, registry: ModelRegistry, *, cutoff: float,
           shuffle_labels: bool, promote: bool, fetch_evicted: bool,
           champion_dir: str | os.PathLike[str] | None) -> RetrainResult:
    """Steps 1-7 of the module docstring, with the run lock held."""
    learning = config.learning
    run.abandon_stale()
    champion, champion_labels = _champion(run, registry, config, champion_dir)
    data = gather_data(config, run.db, champion_labels, cutoff=cutoff, now=run.started,
                       fetch_evicted=fetch_evicted)
    run.update(labels=data.classes, n_train=len(data.train), n_eval=len(data.eval),
               data_counts=data.counts)
    why_not = skip_reason(data, champion_labels, learning)
    if why_not:
        return run.finish("skipped", why_not)
    work = registry.work_dir(f"run{run.run_id}")
    try:
        challenger = _train_challenger(run, data, work, learning, shuffle_labels=shuffle_labels,
                                       champion_dir=champion, false_flag_budget=config.judge.false_flag_budget)
        old, new = _compare(run, data, champion, challenger)
        ok, reason = decide(old, new, learning)
        if not ok:
            return run.finish("refused", reason)
        if not promote:
            return run.finish("passed", reason + " (not promoted: --no-promote)")
        version = run.result.version
        assert version is not None
        if run.result.recipe == "head":
            _export_for_serving(run, challenger, data, learning)
        path = registry.add(challenger, version, move=True)
        set_champion(registry, version, event="promoted", db=run.db, run_id=run.run_id,
                     note=f"macro-F1 {old['macro_f1']:.4f} -> {new['macro_f1']:.4f}")
        prune_versions(registry, run.db, learning.keep_versions)
        return run.finish("promoted", reason, path=str(path))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prune_versions(registry: ModelRegistry, db: Database, keep: int) -> None:
    """After a promotion: delete versions beyond ``[learning] keep_versions`` (0 = none), keeping
    the champion, the previous champion and the baseline (:meth:`ModelRegistry.prune`). A
    failure is logged (``model_versions_prune_failed``) and never fails the promoted run."""
    if keep <= 0:
        return
    try:
        report = registry.prune(keep, protect=baseline_versions(db))
    except (OSError, ModelError) as exc:
        log.warning("model_versions_prune_failed", error=str(exc), models_dir=str(registry.root))
        return
    if report.removed:
        log.info("model_versions_pruned", removed=report.removed, bytes_freed=report.bytes_freed,
                 kept=len(report.kept))


def retrain_once(config: Config, *, trigger: str = "cli", run_id: int | None = None,
                 cutoff: float | None = None, shuffle_labels: bool = False, promote: bool = True,
                 fetch_evicted: bool = True,
                 champion_dir: str | os.PathLike[str] | None = None) -> RetrainResult:
    """Run one champion/challenger round (see the module docstring) and record it.

    ``trigger``: recorded (``cli``, ``schedule``, ``bench``...). ``run_id``: an existing
    ``models`` row in status ``running`` (:func:`start_run`; the scheduler creates it before
    starting the child process), else a new one. ``cutoff``: Unix seconds; labels recorded
    later are not used (default: now). ``shuffle_labels``: train on randomly permuted labels
    (a deliberately worse challenger, to show the gates refuse it). ``promote``: False
    evaluates and records only (status ``passed`` instead of ``promoted``).
    ``fetch_evicted``: download evicted images again. ``champion_dir``: the model directory
    the daemon is serving (the scheduler passes it), else :func:`serving_model_dir`.

    Never raises for a failed run: the exception is logged and recorded (status ``failed``,
    ``error``) and returned as such. Imports TensorFlow.
    """
    learning = config.learning
    started = time.time()
    cutoff = started if cutoff is None else float(cutoff)
    db = open_database(config.storage.database)
    if run_id is None:
        run_id = start_run(db, trigger=trigger, now=started)
    run = RunRecord(db, run_id, started)
    registry = ModelRegistry(learning.models_dir)
    run.update(cutoff=cutoff, params=_run_params(learning, shuffle_labels))
    try:
        validate(config)
        with file_lock(registry.root / RETRAIN_LOCK, wait=False) as alone:
            if not alone:
                return run.finish("skipped", "another retraining run holds the lock")
            # the image cache is not pruned while a run reads it (modbot.learning.cache)
            with file_lock(Path(config.storage.image_cache) / CACHE_IN_USE_LOCK, shared=True):
                return _round(run, config, registry, cutoff=cutoff, shuffle_labels=shuffle_labels,
                              promote=promote, fetch_evicted=fetch_evicted, champion_dir=champion_dir)
    except Exception as exc:  # a failed run is recorded, never fatal
        log.error("retrain_failed", run_id=run_id, error_type=type(exc).__name__, error=str(exc)[:500],
                  traceback=traceback.format_exc(limit=12))
        return run.finish("failed", f"{type(exc).__name__}: {str(exc)[:300]}",
                          error=traceback.format_exc(limit=12)[-4000:])
    finally:
        db.conn.close()

