"""Scheduled retraining inside the daemon, and the swap of promoted models.

:class:`RetrainScheduler` (APScheduler 3 ``BackgroundScheduler``: ``coalesce``,
``max_instances=1``, ``misfire_grace_time``) runs each retraining in a child process
(``python -m modbot.learning.child``, niced, its own TensorFlow threads) so that streaming
never stalls, and swaps the promoted model into a
:class:`~modbot.learning.serving.SwappableClassifier` once it is fully loaded and warmed up.
A failed run is logged and recorded, never fatal. :func:`cron_trigger` reads ``[learning]
cron`` with crontab's weekday numbers.

Importing this module does not import TensorFlow or APScheduler (:meth:`RetrainScheduler.start`
and :func:`cron_trigger` import APScheduler, an optional dependency of the daemon's path).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from modbot.classify import load_classifier, read_labels
from modbot.config import Config
from modbot.configcheck import validate
from modbot.cron import cron_trigger
from modbot.errors import ConfigError
from modbot.learning.child import MODULE as CHILD_MODULE
from modbot.learning.child import config_to_json
from modbot.learning.registry import ModelRegistry
from modbot.learning.retrain import start_run, update_run
from modbot.learning.serving import SwappableClassifier
from modbot.record import open_database

log = structlog.get_logger("modbot.learning.scheduler")

def _retrain_trigger(learning: Any) -> Any:
    """The ``retrain`` job's trigger: every ``interval_s`` seconds when > 0, else ``cron``
    (``ConfigError`` for a malformed line)."""
    from apscheduler.triggers.interval import IntervalTrigger

    if learning.interval_s > 0:
        return IntervalTrigger(seconds=learning.interval_s, timezone=UTC)
    try:
        return cron_trigger(learning.cron)
    except ValueError as exc:
        raise ConfigError(f"[learning] cron {learning.cron!r}: {exc}") from exc


class RetrainScheduler:
    """Scheduled retraining inside the daemon, and the swap of promoted models.

    :meth:`start` adds two jobs to an APScheduler 3 ``BackgroundScheduler`` (its own threads,
    UTC): ``retrain`` on ``[learning] cron`` (or every ``interval_s`` seconds when > 0) with
    ``coalesce=True``, ``max_instances=1`` and ``misfire_grace_time=misfire_grace_s`` — only
    when ``[learning] enabled`` is true — and, always, ``sync_champion`` every
    ``watch_interval_s`` seconds, which swaps in the registry's champion whenever it differs
    from the served model (a promotion by ``modbot retrain``, or ``modbot models rollback``).

    The retraining itself runs in a child process (``python -m modbot.learning.child``, nice
    level ``[learning] nice``, ``threads`` TensorFlow threads, killed after ``timeout_s``), so
    the daemon's stream and classification go on meanwhile; its output goes to
    ``<models_dir>/logs/run-<id>.log``. ``loader(model_dir)`` loads a promoted model in the
    daemon process (default :func:`modbot.classify.load_classifier`: the checked LiteRT
    export when the model has one — a refitted challenger is exported before promotion, so the
    daemon stays free of TensorFlow — else Keras); ``python`` runs the child.
    Failures are logged and recorded in ``models``; nothing raised by a job reaches the daemon.
    """

    def __init__(self, *, loader: Callable[[Path], Any] | None = None,
                 python: str = sys.executable) -> None:
        self.loader = loader or load_classifier
        self.python = python
        self.config: Config | None = None
        self.target: SwappableClassifier | None = None
        self.scheduler: Any = None
        #: The ``models`` row (a dict) of the last run this scheduler started, or None.
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
        learning = validate(config).learning
        self.config, self.target = config, swappable
        self._stopping.clear()
        trigger = _retrain_trigger(learning)
        # 3 threads: the retrain job, and two sync_champion instances (see below).
        self.scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(3)},
                                             timezone=UTC)
        extra = {"next_run_time": first_run_at} if first_run_at is not None else {}
        if learning.enabled:
            self.scheduler.add_job(self.run_retrain, trigger, id="retrain", name="retrain",
                                   coalesce=True, max_instances=1,
                                   misfire_grace_time=int(learning.misfire_grace_s), **extra)
        self.scheduler.add_job(self.sync_champion, IntervalTrigger(seconds=learning.watch_interval_s,
                                                                   timezone=UTC),
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
        """Stop the jobs (``wait``: until running jobs end); a training child still running is
        terminated, killed after ``timeout_s`` seconds (its run is recorded as failed:
        interrupted). Safe to call more than once, or before :meth:`start`."""
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

    def run_retrain(self, *, trigger: str = "schedule",
                    extra_args: Sequence[str] = ()) -> dict[str, Any] | None:
        """The ``retrain`` job: one run in a child process, then the swap if it promoted.

        ``extra_args``: more child options (``--shuffle-labels``, ``--no-promote``). Returns
        the run's ``models`` row (as a dict), or None when a run is already in progress in
        this scheduler (or it was never started). Never raises.
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

    def _child_command(self, cfg_file: Path, run_id: int, trigger: str,
                       extra_args: Sequence[str]) -> list[str]:
        cmd = [self.python, "-m", CHILD_MODULE, "--config-json", str(cfg_file),
               "--run-id", str(run_id), "--trigger", trigger, *extra_args]
        served = getattr(self.target.current, "model_dir", None) if self.target else None
        if served is not None:  # evaluate against exactly the model being served
            cmd += ["--champion-dir", str(served)]
        return cmd

    def _wait_child(self, cmd: list[str], log_file: Path, timeout_s: float) -> int:
        """Run ``cmd`` with its output in ``log_file`` until it exits, the daemon stops or
        ``timeout_s`` passes (then killed); return its exit status."""
        started = time.monotonic()
        with open(log_file, "wb") as out:
            self._proc = proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
            try:
                while True:
                    try:
                        return proc.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        if self._stopping.is_set() or time.monotonic() - started > timeout_s:
                            proc.kill()
                            return proc.wait()
            finally:
                self._proc = None

    def _run_child(self, trigger: str, extra_args: Sequence[str]) -> dict[str, Any] | None:
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
            log.info("retrain_started", run_id=run_id, log=str(log_file))
            rc = self._wait_child(self._child_command(cfg_file, run_id, trigger, extra_args),
                                  log_file, learning.timeout_s)
            with contextlib.suppress(OSError):
                cfg_file.unlink()
            row = dict(db["models"].get(run_id))
            if row["status"] == "running":
                row = self._record_child_failure(db, row, rc, log_file)
            self.last_result = row
            if row["status"] == "promoted":
                self.sync_champion()
            return row
        finally:
            db.conn.close()

    def _record_child_failure(self, db: Any, row: dict[str, Any], rc: int,
                              log_file: Path) -> dict[str, Any]:
        """Record as failed a run whose child ended without recording an outcome."""
        assert self.config is not None
        why = ("interrupted: the daemon stopped" if self._stopping.is_set() else
               f"timed out after {self.config.learning.timeout_s:.0f} s" if rc in (-9, 137) else
               f"the training process exited with status {rc}")
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        now = time.time()
        update_run(db, row["id"], status="failed", reason=why, error=tail, finished_at=now,
                   duration_s=round(now - row["started_at"], 1))
        log.error("retrain_failed", run_id=row["id"], reason=why, log=str(log_file))
        return dict(db["models"].get(row["id"]))

    def sync_champion(self) -> bool:
        """Swap in the registry's champion if it is not the served model; True if swapped.
        A model that fails to load or warm up is logged (``champion_sync_failed``) and the
        served model stays. Never raises."""
        if self.config is None or self.target is None or not self._sync_lock.acquire(blocking=False):
            return False
        try:
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
