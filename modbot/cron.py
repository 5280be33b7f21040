"""Crontab lines as APScheduler 3 triggers (``[learning] cron``, and the config's validation).

A core module (no modbot imports): :mod:`modbot.config` checks the line with it at load time,
:mod:`modbot.learning.scheduler` schedules the retrain job with it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

__all__ = ["cron_trigger", "crontab_day_names"]

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


def cron_trigger(line: str, tz: Any = UTC) -> Any:
    """An APScheduler ``CronTrigger`` for a standard 5-field crontab ``line`` (minute hour day
    month weekday) in ``tz`` (default UTC), with crontab's weekday numbers
    (:func:`crontab_day_names`). Raises ``ValueError`` for a malformed line."""
    from apscheduler.triggers.cron import CronTrigger

    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    fields[4] = crontab_day_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=tz)


class ScheduledJob:
    """A background job of the daemon on its own APScheduler 3 ``BackgroundScheduler`` (UTC):
    subclasses set ``job_id``, and define :meth:`trigger` and :meth:`run_once`. The first run is
    due at once; runs are coalesced, never overlap, and may start up to an hour late. It has
    the ``start()`` / ``shutdown(wait)`` the daemon's ``BackgroundJobs`` protocol asks for."""

    job_id = "job"

    def __init__(self) -> None:
        self._scheduler: Any = None

    def trigger(self) -> Any:
        """The APScheduler trigger of the job (e.g. :func:`cron_trigger`)."""
        raise NotImplementedError

    def run_once(self) -> Any:
        """One run; must not raise (a failed run is logged and recorded by the job)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the scheduler (idempotent)."""
        from datetime import datetime

        from apscheduler.schedulers.background import BackgroundScheduler

        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(self.run_once, self.trigger(), id=self.job_id, coalesce=True,
                          max_instances=1, misfire_grace_time=3600, next_run_time=datetime.now(UTC))
        scheduler.start()
        self._scheduler = scheduler

    def shutdown(self, wait: bool = True) -> None:
        """Stop the scheduler (idempotent); ``wait`` for a run in progress."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=wait)
