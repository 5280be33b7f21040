"""The modmail digest: once a day, one modmail conversation to the moderators with yesterday's
flags (confidence, links, what modbot did), what moderators reviewed that day, and the running
flag precision (:func:`modbot.queries.report.flag_precision`).

"Yesterday" is the UTC day before the run; a flag belongs to the day its verdict was recorded.
Nothing is sent when there is nothing to say (no flag and no review that day). Like an action,
the digest row (table ``digests``, one per day) is claimed before Reddit is called, so a day's
digest is never sent twice across restarts; a crash mid-send leaves it ``unknown``, never
re-sent. ``[digest] digest = "dry_run"`` records the digest's text without sending it.

:class:`DigestJob` runs it from an APScheduler 3 ``BackgroundScheduler`` (the ``[digest] cron``
line, UTC, and once at start so a day missed while modbot was down still gets its digest); the
daemon starts and stops it with its other background jobs (``Daemon(jobs=[...])``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import prawcore
import structlog

from modbot.config import Config
from modbot.cron import ScheduledJob, cron_trigger
from modbot.errors import AmbiguousWriteError, ShuttingDown
from modbot.queries.report import Period, flag_precision
from modbot.record import Store

log = structlog.get_logger("modbot.digest")

#: Reddit's limit on a modmail subject, in characters.
SUBJECT_MAX = 100


@dataclass(frozen=True)
class DigestOutcome:
    """What happened to one day's digest: ``status`` as stored in ``digests`` (``sent``,
    ``dry_run``, ``failed``, ``unknown``), or ``nothing`` (nothing to say: no row),
    ``already_recorded``, ``abandoned``/``deferred`` (not sent; the claim was removed)."""

    day: str
    status: str
    detail: str | None = None


def report_day(now: float) -> tuple[str, float, float]:
    """The day a digest run at ``now`` (Unix seconds) reports: yesterday, UTC, as
    ``(YYYY-MM-DD, start, end)`` with ``start`` inclusive and ``end`` exclusive (Unix seconds)."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=1)
    return start.strftime("%Y-%m-%d"), start.timestamp(), today.timestamp()


def flags_of(store: Store, start: float, end: float) -> list[dict[str, Any]]:
    """Mismatch verdicts recorded in ``[start, end)`` with the post, the review decision in
    force and modbot's actions (``kind:status`` joined with ", "), oldest first."""
    return list(store.db.query("""
        SELECT s.fullname, s.title, s.author, s.permalink, v.stated, v.predicted, v.confidence,
               r.decision,
               (SELECT group_concat(a.kind || ':' || a.status, ', ') FROM actions a
                WHERE a.submission = s.fullname) AS actions
        FROM verdicts v JOIN submissions s ON s.fullname = v.submission
        LEFT JOIN latest_reviews r ON r.submission = v.submission
        WHERE v.kind = 'mismatch' AND v.created_at >= ? AND v.created_at < ?
        ORDER BY v.created_at, s.fullname""", [start, end]))


def reviews_of(store: Store, start: float, end: float) -> dict[str, int]:
    """Review decisions recorded in ``[start, end)``: ``{"confirm": n, "dismiss": n}``."""
    out = {"confirm": 0, "dismiss": 0}
    for decision, n in store.db.execute(
            "SELECT decision, COUNT(*) FROM reviews WHERE created_at >= ? AND created_at < ? "
            "GROUP BY decision", [start, end]):
        out[str(decision)] = int(n)
    return out


def _link(permalink: str | None) -> str:
    return f"https://www.reddit.com{permalink}" if permalink else "(no link)"


def compose(day: str, flags: list[dict[str, Any]], reviews: dict[str, int],
            precision: dict[str, Any], max_items: int) -> str | None:
    """The digest's Markdown body, or None when there is nothing to say (no flags, no reviews)."""
    if not flags and not any(reviews.values()):
        return None
    lines = [f"**modbot digest for {day} (UTC)**", "",
             f"{len(flags)} post(s) flagged as a medium mismatch:", ""]
    for f in flags[:max_items]:
        title = str(f["title"] or "").replace("[", "(").replace("]", ")")[:80]
        lines.append(
            f"- [{title}]({_link(f['permalink'])}) by u/{f['author'] or '[deleted]'}: looks like "
            f"**{f['predicted']}** ({float(f['confidence'] or 0):.0%}), stated {f['stated']}; "
            f"{f['actions'] or 'no action'}; review: {f['decision'] or 'not yet'}")
    if len(flags) > max_items:
        lines.append(f"- … and {len(flags) - max_items} more (`modbot review list`)")
    overall = precision["overall"]
    share = "n/a" if overall["precision"] is None else f"{overall['precision']:.0%}"
    lines += ["", f"Reviewed that day: {reviews['confirm']} confirmed, {reviews['dismiss']} "
              "dismissed.",
              f"Flag precision so far: {share} ({overall['confirmed']} confirmed of "
              f"{overall['reviewed']} reviewed; {overall['unreviewed']} flags not reviewed yet).",
              "", "^(Sent by modbot once a day. Review flags with `modbot review`.)"]
    return "\n".join(lines)


def send_digest(store: Store, reddit: Any, config: Config, *, now: float) -> DigestOutcome:
    """Compose the digest of the day before ``now`` (Unix seconds) and, unless it was already
    recorded or there is nothing to say, claim its row and send it as one new modmail
    conversation (``subreddit.modmail.create``). Never raises for a Reddit failure: the outcome
    says what happened (see :class:`DigestOutcome`)."""
    d = config.digest
    day, start, end = report_day(now)
    if store.digest_status(day) is not None:
        return DigestOutcome(day, "already_recorded", store.digest_status(day))
    flags = flags_of(store, start, end)
    body = compose(day, flags, reviews_of(store, start, end),
                   flag_precision(store.db, Period()), d.max_items)
    if body is None:
        return DigestOutcome(day, "nothing")
    subreddit = config.reddit.subreddits.split("+")[0]
    subject = d.subject.format(day=day)[:SUBJECT_MAX]
    status = "intent" if d.digest == "on" else "dry_run"
    if not store.claim_digest(day, status=status, subreddit=subreddit, recipient=d.recipient,
                              subject=subject, body=body, n_flags=len(flags)):
        return DigestOutcome(day, "already_recorded", store.digest_status(day))
    if status == "dry_run":
        log.info("digest_dry_run", day=day, flags=len(flags))
        return DigestOutcome(day, "dry_run")
    return _send(store, reddit, day, subreddit, d.recipient, subject, body)


def _send(store: Store, reddit: Any, day: str, subreddit: str, recipient: str, subject: str,
          body: str) -> DigestOutcome:
    """Create the conversation for the claimed ``day`` and record the outcome."""
    try:
        conversation = create_conversation(reddit, subreddit, recipient or str(reddit.user.me()),
                                           subject, body)
    except (ShuttingDown, prawcore.TooManyRequests) as exc:
        store.release_digest(day)  # never sent: the next run tries again
        return DigestOutcome(day, "deferred", type(exc).__name__)
    except AmbiguousWriteError as exc:
        detail = f"{type(exc).__name__}: {exc}"[:300]
        store.complete_digest(day, status="unknown", error=detail)
        log.warning("digest_unknown", day=day, error=detail)
        return DigestOutcome(day, "unknown", detail)
    except Exception as exc:  # praw/prawcore raise many types; all mean "not sent"
        detail = f"{type(exc).__name__}: {exc}"[:300]
        store.complete_digest(day, status="failed", error=detail)
        log.warning("digest_failed", day=day, error=detail)
        return DigestOutcome(day, "failed", detail)
    conv_id = str(getattr(conversation, "id", "") or "") or None
    store.complete_digest(day, status="sent", reddit_id=conv_id)
    log.info("digest_sent", day=day, conversation=conv_id)
    return DigestOutcome(day, "sent", conv_id)


def create_conversation(reddit: Any, subreddit: str, recipient: str, subject: str,
                        body: str) -> Any:
    """A new modmail conversation of ``subreddit`` (``POST /api/mod/conversations``, the form
    of praw's ``subreddit.modmail.create``) → praw ``ModmailConversation``.

    Sent with ``reddit.post`` and the subreddit's *name*: ``modmail.create`` puts the
    ``Subreddit`` object itself in the form, which prawcore deep-copies — impossible once the
    ``praw.Reddit`` carries modbot's request budget (its locks cannot be copied)."""
    from praw.const import API_PATH

    return reddit.post(API_PATH["modmail_conversations"], data={
        "body": body, "isAuthorHidden": False, "srName": subreddit, "subject": subject,
        "to": recipient})


class DigestJob(ScheduledJob):
    """The daily digest as a background job of the daemon (``BackgroundJobs`` protocol of
    :mod:`modbot.daemon`): APScheduler 3 ``BackgroundScheduler``, one job on the ``[digest]
    cron`` line (UTC), coalesced, never two at once, and one run right after :meth:`start`.
    It opens its own database connection (``[storage] database``) in its thread."""

    job_id = "digest"

    def __init__(self, config: Config, reddit: Any) -> None:
        self.config = config
        self.reddit = reddit
        super().__init__()
        self._lock = threading.Lock()
        #: the latest rounds' outcomes (bounded: the daemon runs for months)
        self.outcomes: deque[DigestOutcome] = deque(maxlen=100)

    def run_once(self, now: float | None = None) -> DigestOutcome:
        """One digest run (settling a digest left ``intent`` by a crash first). Never raises."""
        with self._lock:
            store = Store(self.config.storage.database)
            try:
                store.settle_dangling_digests()
                stamp = datetime.now(UTC).timestamp() if now is None else now
                outcome = send_digest(store, self.reddit, self.config, now=stamp)
            except Exception as exc:  # a bug or a locked database must not end the daemon
                log.error("digest_error", error_type=type(exc).__name__, error=str(exc)[:300])
                outcome = DigestOutcome("?", "failed", type(exc).__name__)
            finally:
                store.close()
            log.info("digest_run", day=outcome.day, status=outcome.status)
            self.outcomes.append(outcome)
            return outcome

    def trigger(self) -> Any:
        """``[digest] cron`` (UTC)."""
        return cron_trigger(self.config.digest.cron)


def digest_job(config: Config, reddit: Any) -> DigestJob | None:
    """The digest job for ``config``, or None when ``[digest] digest = "off"``."""
    return None if config.digest.digest == "off" else DigestJob(config, reddit)
