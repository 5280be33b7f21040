"""Retraining: champion/challenger runs, the promotion gates, and the live model swap.

One run (:func:`retrain_once`; ``modbot retrain``, or the daemon's scheduled job):

1. **Labels** up to a cut-off (the run's start): moderator reviews outrank stated media; stated
   media count only as ``[learning]`` allows (:mod:`modbot.learning.labels`).
2. **Fixed evaluation set**: each labelled image is put once on the ``train`` or ``eval`` side,
   stratified by medium (``label_splits``); ``eval`` images are never trained on.
3. **Classes**: the champion's media, plus every medium it lacks that has at least
   ``new_medium_min_labels`` labelled images. A medium the champion predicts but that has no
   training label stops the run (``skipped``): a challenger must never silently drop a medium.
4. **Challenger**: :func:`modbot.ml.training.train_model` on a folder-per-medium tree of symlinks into
   the image cache (evicted images are downloaded again or skipped with a reason).
5. **Evaluation** of champion and challenger on the same evaluation images
   (:func:`modbot.ml.training.classification_report`).
6. **Gates** (:func:`decide`): promote only if the challenger's macro-F1 beats the champion's
   by at least ``margin`` (and by more than 0), and its recall of every evaluated medium is at
   least that medium's floor.
7. **Promotion**: the challenger's directory is moved into the registry and the champion
   pointer replaced atomically (:mod:`modbot.learning.registry`). Every run, whatever its outcome, is a
   row of the ``models`` table (data counts, both models' metrics, decision, duration).

In the daemon, :class:`RetrainScheduler` (APScheduler 3 ``BackgroundScheduler``; ``coalesce``,
``max_instances=1``, ``misfire_grace_time``) runs each retraining in a child process
(``python -m modbot.learning.retrain``, niced, its own TensorFlow threads) so that streaming never
stalls, and swaps the promoted model into a :class:`SwappableClassifier` once it is fully
loaded and warmed up. A failed run is logged and recorded, never fatal.

Importing this module does not import TensorFlow or APScheduler.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from modbot.config import Config
from modbot.domain import MEDIA, Prediction
from modbot.errors import ConfigError, ModelError
from modbot.learning.labels import (
    LabelPolicy,
    assign_splits,
    build_tree,
    gather_labels,
    locate_images,
    write_transaction,
)
from modbot.learning.registry import ModelRegistry, resolve_model_dir, set_champion

log = structlog.get_logger("modbot.learning.retrain")

#: Final statuses of a ``models`` row (``running`` while a run is in progress).
STATUSES = ("promoted", "passed", "refused", "skipped", "failed", "baseline")
#: Images decoded and evaluated at a time: bounds memory with large originals (a 4000×3000
#: RGB image decodes to 36 MB).
EVAL_CHUNK = 8


def check_learning(learning: Any) -> None:
    """Validate ``[learning]`` values types alone cannot; raise ``ConfigError`` with the key."""
    LabelPolicy.from_config(learning)
    if not 0.0 < learning.eval_fraction < 1.0:
        raise ConfigError("[learning] eval_fraction must be between 0 and 1 (exclusive)")
    for key in ("margin", "recall_floor"):
        if not 0.0 <= getattr(learning, key) <= 1.0:
            raise ConfigError(f"[learning] {key} must be in [0, 1]")
    for medium, floor in learning.recall_floors.items():
        if medium not in MEDIA or not isinstance(floor, int | float) or not 0.0 <= floor <= 1.0:
            raise ConfigError(f"[learning] recall_floors: {medium} = {floor!r} (a canonical medium = 0-1)")
    for key in ("min_train_labels", "min_eval_labels", "new_medium_min_labels", "batch_size",
                "threads"):
        if getattr(learning, key) < 1:
            raise ConfigError(f"[learning] {key} must be at least 1")
    if learning.epochs < 0:
        raise ConfigError("[learning] epochs must be at least 1 (0 = the architecture's default)")
    if learning.image_size != 0 and learning.image_size < 8:
        raise ConfigError("[learning] image_size must be at least 8 pixels (0 = the architecture's default)")
    if not 0 <= learning.nice <= 19:
        raise ConfigError("[learning] nice must be in 0-19")
    if learning.timeout_s <= 0 or learning.watch_interval_s <= 0 or learning.interval_s < 0:
        raise ConfigError("[learning] timeout_s and watch_interval_s must be > 0, interval_s >= 0")


# --- the gates -------------------------------------------------------------------------------


def decide(champion: dict[str, Any], challenger: dict[str, Any], learning: Any) -> tuple[bool, str]:
    """Whether the challenger may replace the champion, and why (a one-line reason).

    ``champion``/``challenger``: :func:`modbot.ml.training.classification_report` results on the same
    evaluation images. Refused when any medium with evaluation images (support > 0) has a
    challenger recall below ``learning.floor_for(medium)``, or when the macro-F1 gain is
    below ``learning.margin`` or not positive (a tie keeps the champion).
    """
    old = champion.get("macro_f1") or 0.0
    new = challenger.get("macro_f1") or 0.0
    gain = new - old
    below = [(m, c["recall"], learning.floor_for(m)) for m, c in challenger["per_class"].items()
             if c["support"] > 0 and c["recall"] < learning.floor_for(m)]
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
    """Classification reports of each classifier on the same images.

    ``classifiers``: objects with ``predict_proba(images) -> (N, len(labels))`` and
    ``labels`` (:class:`modbot.classify.KerasClassifier`). ``paths``: image files (decoded
    upright with :func:`modbot.ml.training.load_image`, in chunks of :data:`EVAL_CHUNK`); ``truth``:
    their media; ``labels``: the report's label order (must contain every true and predictable
    medium). An unreadable file raises (images were checked when located).
    """
    from modbot.ml.training import classification_report, load_image

    preds: list[list[str]] = [[] for _ in classifiers]
    for start in range(0, len(paths), EVAL_CHUNK):
        images = [load_image(p) for p in paths[start : start + EVAL_CHUNK]]
        for k, clf in enumerate(classifiers):
            probs = np.asarray(clf.predict_proba(images))
            preds[k].extend(clf.labels[i] for i in probs.argmax(axis=1))
    return [classification_report(list(truth), p, list(labels)) for p in preds]


# --- one run ---------------------------------------------------------------------------------


@dataclass
class RetrainResult:
    """What one run decided (also its ``models`` row, ``run_id``).

    ``status``: ``promoted`` | ``passed`` (gates passed, promotion not asked) | ``refused`` |
    ``skipped`` (not enough data, or another run in progress) | ``failed``. ``version``: the
    challenger's (None when none was trained). Macro-F1s are on the evaluation set (0-1).
    """

    run_id: int
    status: str
    reason: str
    version: str | None = None
    champion_version: str | None = None
    champion_macro_f1: float | None = None
    challenger_macro_f1: float | None = None
    duration_s: float | None = None

    @property
    def promoted(self) -> bool:
        """True when the challenger became the champion."""
        return self.status == "promoted"


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def start_run(db: Any, *, trigger: str, now: float | None = None) -> int:
    """Insert a ``models`` row in status ``running``; return its id."""
    row = {"status": "running", "trigger": trigger, "started_at": time.time() if now is None else now}
    with write_transaction(db):
        return int(db["models"].insert(row).last_pk)


def _update_run(db: Any, run_id: int, **fields: Any) -> None:
    with write_transaction(db):
        db["models"].update(run_id, {k: (_json(v) if isinstance(v, dict | list) else v)
                                     for k, v in fields.items()})


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[bool]:
    """Hold ``<root>/.retrain.lock`` (flock) while the block runs; yields False when another
    process holds it."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process exclusion
        yield True
        return
    with open(root / ".retrain.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _adopt_baseline(db: Any, registry: ModelRegistry, champion_dir: Path, meta: dict[str, Any]) -> None:
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


def _trainer_kwargs(train: Callable[..., Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The options ``train`` accepts (the trainer's signature grows over time)."""
    params = inspect.signature(train).parameters
    return {k: v for k, v in wanted.items() if k in params}


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
    the daemon is serving (the scheduler passes it), else :func:`modbot.learning.registry.resolve_model_dir`.

    Never raises for a failed run: the exception is logged and recorded (status ``failed``,
    ``error``) and returned as such. Imports TensorFlow.
    """
    from modbot.classify import KerasClassifier, read_labels, shipped_model_dir
    from modbot.record import open_database
    from modbot.ml.training import train_model

    learning = config.learning
    started = time.time()
    cutoff = started if cutoff is None else float(cutoff)
    db = open_database(config.storage.database)
    if run_id is None:
        run_id = start_run(db, trigger=trigger, now=started)
    registry = ModelRegistry(learning.models_dir)
    params = {**training_options(learning), "shuffle_labels": shuffle_labels,
              "eval_fraction": learning.eval_fraction, "margin": learning.margin,
              "recall_floor": learning.recall_floor, "recall_floors": dict(learning.recall_floors),
              "stated_labels": learning.stated_labels, "trusted_media": list(learning.trusted_media),
              "collected_labels": learning.collected_labels}
    _update_run(db, run_id, cutoff=cutoff, params=params)
    result = RetrainResult(run_id=run_id, status="failed", reason="")
    work: Path | None = None
    fetcher = None

    def finish(status: str, reason: str, **fields: Any) -> RetrainResult:
        now = time.time()
        _update_run(db, run_id, status=status, reason=reason, finished_at=now,
                    duration_s=round(now - started, 1), **fields)
        result.status, result.reason, result.duration_s = status, reason, round(now - started, 1)
        log.info("retrain_finished", run_id=run_id, status=status, reason=reason,
                 champion=result.champion_version, challenger=result.version,
                 champion_macro_f1=result.champion_macro_f1,
                 challenger_macro_f1=result.challenger_macro_f1, duration_s=result.duration_s)
        return result

    try:
        check_learning(learning)
        with _exclusive(registry.root) as alone:
            if not alone:
                return finish("skipped", "another retraining run holds the lock")
            # we hold the lock: rows still 'running' from before are runs whose process died
            with write_transaction(db):
                db.execute("UPDATE models SET status = 'failed', finished_at = ?, reason = "
                           "'abandoned: the process running it ended before recording an outcome' "
                           "WHERE status = 'running' AND id != ? AND started_at < ?",
                           [started, run_id, started])
            # --- champion
            served = champion_dir if champion_dir is not None else resolve_model_dir(config)
            champion_dir = Path(served) if served else shipped_model_dir()
            champion_meta = read_labels(champion_dir)
            result.champion_version = champion_meta["version"]
            champion_labels = tuple(champion_meta["labels"])
            _update_run(db, run_id, champion_version=result.champion_version)
            _adopt_baseline(db, registry, champion_dir, champion_meta)

            # --- labels and the fixed evaluation split
            label_set = gather_labels(db, LabelPolicy.from_config(learning), cutoff=cutoff)
            sides = assign_splits(db, label_set.labels, learning.eval_fraction, now=started)
            per_medium = Counter(label.medium for label in label_set.labels)
            classes = [m for m in MEDIA if m in champion_labels
                       or per_medium[m] >= learning.new_medium_min_labels]
            excluded = {m: n for m, n in per_medium.items() if m not in classes}
            used = [label for label in label_set.labels if label.medium in classes]

            if fetch_evicted:
                from modbot.images import ImageFetcher

                im = config.images
                fetcher = ImageFetcher(config.storage.image_cache, max_bytes=im.max_bytes,
                                       connect_timeout=im.connect_timeout,
                                       read_timeout=im.read_timeout, allow_hosts=im.allow_hosts,
                                       user_agent=config.reddit.user_agent)
            located = locate_images(used, config.storage.image_cache, fetcher=fetcher)
            skipped = Counter(item.reason for item in located if item.path is None)
            train_items = [(i.path, i.label.medium) for i in located
                           if i.path is not None and sides[i.label.sha256] == "train"]
            eval_items = [(i.path, i.label.medium) for i in located
                          if i.path is not None and sides[i.label.sha256] == "eval"]
            counts = {
                "labels": {"total": len(label_set.labels), "by_source": label_set.by_source(),
                           "by_medium": label_set.by_medium(),
                           "by_detail": dict(Counter(f"{lb.source}:{lb.detail}" for lb in label_set.labels))},
                "dropped_candidates": dict(label_set.dropped),
                "excluded_media": excluded,
                "train": dict(Counter(m for _, m in train_items)),
                "eval": dict(Counter(m for _, m in eval_items)),
                "skipped_images": dict(skipped),
            }
            _update_run(db, run_id, labels=classes, n_train=len(train_items), n_eval=len(eval_items),
                        data_counts=counts)
            missing = [m for m in champion_labels if not any(mm == m for _, mm in train_items)]
            if missing:
                return finish("skipped", f"no training labels for media the champion predicts: "
                                         f"{', '.join(missing)} (a challenger must not drop them)")
            if len(train_items) < learning.min_train_labels:
                return finish("skipped", f"{len(train_items)} training images < min_train_labels "
                                         f"{learning.min_train_labels}")
            if len(eval_items) < learning.min_eval_labels:
                return finish("skipped", f"{len(eval_items)} evaluation images < min_eval_labels "
                                         f"{learning.min_eval_labels}")

            # --- train the challenger (in this process; the scheduler runs us in a child)
            work = registry.work_dir(f"run{run_id}")
            media = [m for _, m in train_items]
            if shuffle_labels:
                rng = np.random.default_rng(learning.seed + 7919)
                media = [str(m) for m in rng.permutation(media)]
            build_tree(work / "train", [(p, m) for (p, _), m in zip(train_items, media, strict=True)])
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            version = f"v{run_id}-{stamp}" + ("-shuffled" if shuffle_labels else "")
            result.version = version
            train_started = time.time()
            _update_run(db, run_id, version=version, train_started_at=train_started)
            log.info("challenger_training", run_id=run_id, version=version, n_train=len(train_items),
                     n_eval=len(eval_items), classes=classes)
            kwargs = _trainer_kwargs(train_model, training_options(learning, version=version))
            train_model(work / "train", work / "model", **kwargs)
            _update_run(db, run_id, train_finished_at=time.time())

            # --- evaluate both on the same held-out images
            challenger = KerasClassifier.load(work / "model")
            champion = KerasClassifier.load(champion_dir)
            order = [m for m in MEDIA if m in set(classes) | set(champion.labels) | set(challenger.labels)]
            old_rep, new_rep = evaluate([champion, challenger], [p for p, _ in eval_items],
                                        [m for _, m in eval_items], order)
            result.champion_macro_f1 = old_rep["macro_f1"]
            result.challenger_macro_f1 = new_rep["macro_f1"]
            _update_run(db, run_id, champion_metrics=old_rep, challenger_metrics=new_rep,
                        champion_macro_f1=old_rep["macro_f1"], challenger_macro_f1=new_rep["macro_f1"],
                        labels=list(challenger.labels))
            ok, reason = decide(old_rep, new_rep, learning)
            if not ok:
                return finish("refused", reason)
            if not promote:
                return finish("passed", reason + " (not promoted: --no-promote)")
            path = registry.add(work / "model", version, move=True)
            set_champion(registry, version, event="promoted", db=db, run_id=run_id,
                         note=f"macro-F1 {old_rep['macro_f1']:.4f} -> {new_rep['macro_f1']:.4f}")
            return finish("promoted", reason, path=str(path))
    except Exception as exc:  # a failed run is recorded, never fatal
        log.error("retrain_failed", run_id=run_id, error_type=type(exc).__name__, error=str(exc)[:500],
                  traceback=traceback.format_exc(limit=12))
        return finish("failed", f"{type(exc).__name__}: {str(exc)[:300]}",
                      error=traceback.format_exc(limit=12)[-4000:])
    finally:
        if fetcher is not None:
            fetcher.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        db.conn.close()


# --- live swap -------------------------------------------------------------------------------


class SwappableClassifier:
    """A classifier that forwards to the current model, which :meth:`swap` replaces atomically.

    Implements the daemon's ``Classifier`` protocol (``predict``, ``labels``, ``version``).
    :meth:`predict` takes one reference to the current model, under a lock, for the whole call:
    the images of one post are all classified by the same, fully loaded model even if a swap
    happens meanwhile (the old model finishes the call; its predictions carry its version).
    ``version``/``labels`` are those of the model that served *this thread's* last
    :meth:`predict` (so the daemon, which reads ``version`` right after predicting, records
    the version that really classified the post), else of the current model. Thread-safe.
    """

    def __init__(self, classifier: Any) -> None:
        self._lock = threading.Lock()
        self._current = classifier
        self._local = threading.local()
        #: Number of swaps done.
        self.swaps = 0

    @property
    def current(self) -> Any:
        """The model new :meth:`predict` calls will use."""
        with self._lock:
            return self._current

    def _served(self) -> Any:
        used = getattr(self._local, "model", None)
        return used if used is not None else self.current

    @property
    def version(self) -> str:
        """Version of the model of this thread's last prediction, else of the current model."""
        return self._served().version

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the model of this thread's last prediction, else of the current model."""
        return tuple(self._served().labels)

    def predict(self, images: Sequence[Any]) -> list[Prediction]:
        """One :class:`~modbot.domain.Prediction` per image, all by the same model."""
        with self._lock:
            model = self._current
        predictions = model.predict(images)
        self._local.model = model
        return predictions

    def swap(self, new: Any, *, warm_up: bool = True) -> Any:
        """Serve ``new`` from the next :meth:`predict` on; return the previous model.

        With ``warm_up`` (default), ``new`` first classifies a grey 64×64 image and must return
        one prediction whose probabilities cover its labels and sum to 1 — else ``ModelError``
        is raised and nothing changes. ``new`` must already be fully loaded (e.g.
        ``KerasClassifier.load``, which also traces its serving function).
        """
        if warm_up:
            from PIL import Image

            probe = new.predict([Image.new("RGB", (64, 64), (127, 127, 127))])
            if (len(probe) != 1 or set(probe[0].probabilities) != set(new.labels)
                    or abs(sum(probe[0].probabilities.values()) - 1.0) > 1e-3
                    or probe[0].model_version != new.version):
                raise ModelError(f"model {getattr(new, 'version', '?')} failed its warm-up prediction")
        with self._lock:
            old, self._current = self._current, new
            self.swaps += 1
        log.info("model_swapped", old=getattr(old, "version", None), new=new.version)
        return old


# --- the scheduled job -----------------------------------------------------------------------


def config_to_json(config: Config) -> str:
    """``config`` as JSON sections (``Config().replace(**json.loads(text))`` rebuilds it)."""
    data = dataclasses.asdict(config)
    data.pop("source", None)
    return json.dumps(data)


def config_from_json(text: str) -> Config:
    """Inverse of :func:`config_to_json`."""
    return Config().replace(**json.loads(text))


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_day_names(field: str) -> str:
    """A crontab day-of-week field with numbers (crontab's: 0 and 7 = Sunday, 1 = Monday)
    turned into day names, e.g. ``"1-5"`` → ``"mon,tue,wed,thu,fri"``, ``"*/2"`` →
    ``"sun,tue,thu,sat"``. Fields without digits (``*``, ``mon-fri``) are returned unchanged.

    Needed because APScheduler 3's ``CronTrigger.from_crontab`` reads numbers as 0 = Monday
    (agronholm/apscheduler#286, fixed only in 4.0), so ``0 4 * * 1`` would run on Tuesdays.
    Raises ``ValueError`` for a malformed field.
    """
    if not any(c.isdigit() for c in field):
        return field
    days: set[int] = set()
    for token in field.split(","):
        part, _, step_text = token.partition("/")
        step = int(step_text) if step_text else 1
        if part == "*":
            lo, hi = 0, 6
        elif "-" in part:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
        else:
            lo = int(part)
            hi = 7 if step_text else lo
        if not (0 <= lo <= hi <= 7) or step < 1:
            raise ValueError(f"bad day-of-week {token!r}")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_CRON_DAYS[d] for d in sorted(days))


def cron_trigger(line: str, tz: Any = timezone.utc) -> Any:
    """An APScheduler ``CronTrigger`` for a standard 5-field crontab ``line`` (minute hour day
    month weekday) in ``tz`` (default UTC), with crontab's weekday numbers
    (:func:`crontab_day_names`). Raises ``ValueError`` for a malformed line."""
    from apscheduler.triggers.cron import CronTrigger

    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    fields[4] = crontab_day_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=tz)


def _default_loader(model_dir: Path) -> Any:
    from modbot.classify import KerasClassifier

    return KerasClassifier.load(model_dir)


class RetrainScheduler:
    """Scheduled retraining inside the daemon, and the swap of promoted models.

    :meth:`start` adds two jobs to an APScheduler 3 ``BackgroundScheduler`` (its own threads,
    UTC): ``retrain`` on ``[learning] cron`` (or every ``interval_s`` seconds when > 0) with
    ``coalesce=True``, ``max_instances=1`` and ``misfire_grace_time=misfire_grace_s`` — only
    when ``[learning] enabled`` is true — and, always, ``sync_champion`` every
    ``watch_interval_s`` seconds, which swaps in the registry's champion whenever it differs
    from the served model (a promotion by ``modbot retrain``, or ``modbot models rollback``).

    The retraining itself runs in a child process (``python -m modbot.learning.retrain``, nice level
    ``[learning] nice``, ``threads`` TensorFlow threads, killed after ``timeout_s``), so the
    daemon's stream and classification go on meanwhile; its output goes to
    ``<models_dir>/logs/run-<id>.log``. ``loader(model_dir)`` loads a promoted model in the
    daemon process (default ``KerasClassifier.load``). Failures are logged and recorded in
    ``models``; nothing raised by a job reaches the daemon.
    """

    def __init__(self, *, loader: Callable[[Path], Any] | None = None,
                 python: str = sys.executable) -> None:
        self.loader = loader or _default_loader
        self.python = python
        self.config: Config | None = None
        self.target: SwappableClassifier | None = None
        self.scheduler: Any = None
        self.last_result: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._sync_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def start(self, target: Any, config: Config, *, first_run_at: datetime | None = None) -> None:
        """Start the jobs for ``target`` (a :class:`SwappableClassifier`, or a daemon whose
        ``classifier`` is one). ``first_run_at``: an aware datetime for the first retraining
        (default: the trigger's). Raises ``TypeError`` for another target and ``ConfigError``
        for bad ``[learning]`` values."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        swappable = target if isinstance(target, SwappableClassifier) else getattr(target, "classifier", None)
        if not isinstance(swappable, SwappableClassifier):
            raise TypeError("RetrainScheduler needs a SwappableClassifier (or a daemon serving one)")
        learning = config.learning
        check_learning(learning)
        self.config, self.target = config, swappable
        self._stopping.clear()
        if learning.interval_s > 0:
            trigger: Any = IntervalTrigger(seconds=learning.interval_s, timezone=timezone.utc)
        else:
            try:
                trigger = cron_trigger(learning.cron)
            except ValueError as exc:
                raise ConfigError(f"[learning] cron {learning.cron!r}: {exc}") from exc
        # 3 threads: the retrain job, and two sync_champion instances (see below).
        self.scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(3)},
                                             timezone=timezone.utc)
        extra = {"next_run_time": first_run_at} if first_run_at is not None else {}
        if learning.enabled:
            self.scheduler.add_job(self.run_retrain, trigger, id="retrain", name="retrain",
                                   coalesce=True, max_instances=1,
                                   misfire_grace_time=int(learning.misfire_grace_s), **extra)
        self.scheduler.add_job(self.sync_champion, IntervalTrigger(seconds=learning.watch_interval_s,
                                                                   timezone=timezone.utc),
                               id="sync_champion", name="sync_champion", coalesce=True,
                               # a second instance returns at once while a slow model load holds
                               # _sync_lock; with max_instances=1 APScheduler would log a
                               # "maximum number of running instances" warning every interval
                               max_instances=2, misfire_grace_time=int(learning.watch_interval_s) + 1)
        self.scheduler.start()
        job = self.scheduler.get_job("retrain")
        log.info("retrain_scheduled" if job else "retrain_disabled",
                 next_run=str(job.next_run_time) if job else None,
                 cron=None if learning.interval_s > 0 or not job else learning.cron,
                 interval_s=(learning.interval_s or None) if job else None,
                 watch_interval_s=learning.watch_interval_s)

    def shutdown(self, *, wait: bool = True, timeout_s: float = 10.0) -> None:
        """Stop the jobs; a training child still running is terminated (its run is recorded as
        failed: interrupted)."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        """True while a retraining child process is running."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    def run_retrain(self, *, trigger: str = "schedule",
                    extra_args: Sequence[str] = ()) -> dict[str, Any] | None:
        """The ``retrain`` job: one run in a child process, then the swap if it promoted.

        Returns the run's ``models`` row (as a dict), or None when a run is already in
        progress in this scheduler. Never raises.
        """
        if self.config is None or not self._run_lock.acquire(blocking=False):
            return None
        try:
            return self._run_child(trigger, extra_args)
        except Exception as exc:  # never fatal for the daemon
            log.error("retrain_job_failed", error_type=type(exc).__name__, error=str(exc)[:300],
                      traceback=traceback.format_exc(limit=8))
            return None
        finally:
            self._run_lock.release()

    def _run_child(self, trigger: str, extra_args: Sequence[str]) -> dict[str, Any] | None:
        from modbot.record import open_database

        assert self.config is not None
        learning = self.config.learning
        db = open_database(self.config.storage.database)
        try:
            run_id = start_run(db, trigger=trigger)
            logs = Path(learning.models_dir) / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            cfg_file = logs / f"run-{run_id}.config.json"
            cfg_file.write_text(config_to_json(self.config), encoding="utf-8")
            log_file = logs / f"run-{run_id}.log"
            env = dict(os.environ)
            cmd = [self.python, "-m", "modbot.learning.retrain", "--config-json", str(cfg_file),
                   "--run-id", str(run_id), "--trigger", trigger, *extra_args]
            served = getattr(self.target.current, "model_dir", None) if self.target else None
            if served is not None:  # evaluate against exactly the model being served
                cmd += ["--champion-dir", str(served)]
            log.info("retrain_started", run_id=run_id, log=str(log_file))
            started = time.monotonic()
            with open(log_file, "wb") as out:
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT, env=env, start_new_session=True)
                rc = None
                while rc is None:
                    try:
                        rc = self._proc.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        if self._stopping.is_set() or time.monotonic() - started > learning.timeout_s:
                            self._proc.kill()
                            rc = self._proc.wait()
                            break
            self._proc = None
            with contextlib.suppress(OSError):
                cfg_file.unlink()
            row = dict(db["models"].get(run_id))
            if row["status"] == "running":
                why = ("interrupted: the daemon stopped" if self._stopping.is_set() else
                       f"timed out after {learning.timeout_s:.0f} s" if rc in (-9, 137) else
                       f"the training process exited with status {rc}")
                tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
                now = time.time()
                _update_run(db, run_id, status="failed", reason=why, error=tail, finished_at=now,
                            duration_s=round(now - row["started_at"], 1))
                log.error("retrain_failed", run_id=run_id, reason=why, log=str(log_file))
                row = dict(db["models"].get(run_id))
            self.last_result = row
            if row["status"] == "promoted":
                self.sync_champion()
            return row
        finally:
            db.conn.close()

    def sync_champion(self) -> bool:
        """Swap in the registry's champion if it is not the served model; True if swapped.
        A model that fails to load or warm up is logged (``champion_sync_failed``) and the
        served model stays. Never raises."""
        if self.config is None or self.target is None or not self._sync_lock.acquire(blocking=False):
            return False
        try:
            from modbot.classify import read_labels

            folder = ModelRegistry(self.config.learning.models_dir).champion_dir()
            if folder is None:
                return False
            version = read_labels(folder)["version"]
            if version == self.target.current.version:
                return False
            self.target.swap(self.loader(folder))
            return True
        except Exception as exc:
            log.error("champion_sync_failed", error_type=type(exc).__name__, error=str(exc)[:300])
            return False
        finally:
            self._sync_lock.release()


# --- the child process -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m modbot.learning.retrain --config-json FILE [--run-id N] [--trigger T]
    [--shuffle-labels] [--no-promote]``: one run (what :class:`RetrainScheduler` starts).

    Lowers its priority (``[learning] nice``), sets TensorFlow's thread pool to ``[learning]
    threads``, runs :func:`retrain_once` and prints its result as one JSON line. Exit status 0
    when the run was recorded (whatever the decision), 1 when it failed.
    """
    parser = argparse.ArgumentParser(prog="python -m modbot.learning.retrain", description=main.__doc__)
    parser.add_argument("--config-json", required=True, help="config as written by config_to_json")
    parser.add_argument("--run-id", type=int, default=None)
    parser.add_argument("--trigger", default="schedule")
    parser.add_argument("--shuffle-labels", action="store_true")
    parser.add_argument("--no-promote", action="store_true")
    parser.add_argument("--champion-dir", default=None, help="the model directory being served")
    args = parser.parse_args(argv)
    from modbot.log import configure_logging

    configure_logging(json=True)
    config = config_from_json(Path(args.config_json).read_text(encoding="utf-8"))
    with contextlib.suppress(OSError):
        os.nice(config.learning.nice)
    from modbot.classify import load_tensorflow

    load_tensorflow(config.learning.threads)
    result = retrain_once(config, trigger=args.trigger, run_id=args.run_id,
                          shuffle_labels=args.shuffle_labels, promote=not args.no_promote,
                          champion_dir=args.champion_dir)
    print(json.dumps(dataclasses.asdict(result)), flush=True)
    return 1 if result.status == "failed" else 0


if __name__ == "__main__":  # pragma: no cover - the child process
    sys.exit(main())
