"""Moderators' actions on Reddit as labels: the subreddit's moderation log, read through praw.

What a moderator does to a post modbot judged is a decision about its medium, recorded like a
``modbot review`` decision (a row of ``reviews`` with ``source = 'modlog'``, the moderator, the
time of the action and the mod log entry's id ``modlog_id``), so ``modbot review show`` lists
it, ``modbot report`` counts it in flag precision, and retraining reads it as a label (source
``modlog``; moderator decisions — ``review`` and ``modlog`` — outrank every other source, the
latest wins):

- ``approvelink`` → ``dismiss``: the stated medium stands (true medium = stated medium).
- ``addremovalreason`` (or a ``removelink`` whose ``details``/``description`` name the reason)
  with a *wrong-medium* reason → ``confirm`` with the model's **predicted** medium as the true
  medium. Wrong-medium reasons are ``[actions] removal_reason`` (modbot's own) and ``[learning]
  modlog_removal_reasons``, by id or title (case-insensitive). Why only then: a removal for
  another reason (spam, not original, a rule) or without a reason says nothing about the
  medium, and such a removal only says that the stated medium is wrong — the one candidate for
  the true medium is the prediction the moderator was shown (modbot's report "looks like X").
  When the prediction *is* the stated medium (a ``match`` verdict), the true medium is unknown
  and nothing is recorded. On Reddit the reason is its own entry (``addremovalreason``, the
  reason's title in ``description``), so a removal with a reason is exactly one label.
- ``editflair`` → the medium of the post's flair, read with :func:`modbot.medium.stated_medium`
  (Reddit's entry does not carry the new flair: the submission's current ``link_flair_text``
  is fetched, 100 per request through ``/api/info``; the entry's ``description`` is the
  fallback when the post cannot be read): ``dismiss`` when it is the stated medium, else
  ``confirm`` with that medium. A flair that names no medium ("Artwork") is no label.

Entries are ignored (kept with a ``reason``) when they are modbot's own (the account modbot runs
as), AutoModerator's or Reddit's, target no submission modbot judged (``not_recorded``,
``no_verdict``), or repeat the decision already in force by the same moderator
(``already_in_force``). Every entry read is stored (``modlog_entries``, primary key = the
entry's id), so none is read twice, across restarts too.

Reading: per subreddit of ``[reddit] subreddits`` and per action, ``subreddit.mod.log(action=…)``
(``GET /r/{sub}/about/log?type=…``) pages back from the newest entry with ``after`` (100 per
request) and stops at the first entry already stored (the newest one read before is kept in
``modlog_cursors``), or after ``max_pages`` pages (a gap, logged). About four requests per
subreddit per read when nothing is new; every request passes the praw client's request budget
(:func:`modbot.stream.make_reddit`). :class:`ModlogJob` runs it every ``[learning]
modlog_interval_s`` seconds inside ``modbot run``; ``modbot modlog`` runs it once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import structlog

from modbot.config import Config
from modbot.cron import ScheduledJob
from modbot.domain import MEDIA
from modbot.errors import InputError, ShuttingDown
from modbot.medium import Vocabulary, stated_medium
from modbot.queries.review import check_moderator, latest_review
from modbot.record import write_transaction

log = structlog.get_logger("modbot.learning.modlog")

#: Mod log actions read, in the order entries of the same second are applied.
ACTIONS = ("approvelink", "removelink", "addremovalreason", "editflair")
#: Accounts whose actions are never a moderator's decision (lower case).
NOT_MODERATORS = ("automoderator", "reddit")
#: Entries read per request, and default most pages per action and read.
PAGE = 100
MAX_PAGES = 10


@dataclass(frozen=True)
class ModlogEntry:
    """One mod log entry (``modaction``): ``id`` ``ModAction_…``, ``action``, ``mod`` (name),
    ``target_fullname`` (``t3_…``/``t1_…`` or None), ``created_utc`` (Unix seconds),
    ``details`` and ``description`` (free text or None), ``subreddit``."""

    id: str
    subreddit: str
    action: str
    mod: str
    target_fullname: str | None
    created_utc: float
    details: str | None = None
    description: str | None = None

    @classmethod
    def from_praw(cls, item: Any, subreddit: str) -> ModlogEntry | None:
        """The entry of a praw ``ModAction`` (or a dict of its fields); None when malformed."""
        data = dict(item) if isinstance(item, Mapping) else dict(vars(item))
        mod = data.get("mod", data.get("_mod"))
        mod = getattr(mod, "name", mod)
        ident, action, created = data.get("id"), data.get("action"), data.get("created_utc")
        if not (isinstance(ident, str) and ident and isinstance(action, str)
                and isinstance(mod, str) and isinstance(created, int | float)):
            return None
        target = data.get("target_fullname")

        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value not in (None, "") else None

        return cls(ident, str(data.get("subreddit") or subreddit), action, mod,
                   str(target) if target else None, float(created),
                   text("details"), text("description"))


@dataclass
class ModlogResult:
    """What one read did: ``read`` entries stored, ``labels`` written, ``ignored`` by reason,
    ``decisions`` by kind (``dismiss``/``confirm``), ``malformed`` entries skipped, ``gaps``
    (``subreddit/action`` whose new entries did not fit in ``max_pages``)."""

    read: int = 0
    labels: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    gaps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"read": self.read, "labels": self.labels, "ignored": dict(self.ignored),
                "decisions": dict(self.decisions), "malformed": self.malformed,
                "gaps": list(self.gaps)}


def wrong_medium_reasons(config: Config) -> frozenset[str]:
    """Lower-cased removal reason ids/titles that mean "wrong medium" (``[actions]
    removal_reason`` and ``[learning] modlog_removal_reasons``)."""
    names = [config.actions.removal_reason, *config.learning.modlog_removal_reasons]
    return frozenset(n.strip().lower() for n in names if n and n.strip())


# --- reading ----------------------------------------------------------------------------------


def _known(db: Any, entry_id: str) -> bool:
    return db.execute("SELECT 1 FROM modlog_entries WHERE id = ?", [entry_id]).fetchone() is not None


def new_entries(reddit: Any, db: Any, subreddit: str, action: str, *, max_pages: int = MAX_PAGES,
                result: ModlogResult | None = None) -> list[ModlogEntry]:
    """Entries of ``action`` in ``subreddit``'s mod log not stored yet, newest first.

    Pages back from the newest entry and stops at the first stored one. Without one within
    ``max_pages`` pages, a stored cursor means entries were missed (appended to
    ``result.gaps``). Errors from praw/prawcore propagate (nothing is stored then).
    """
    result = result if result is not None else ModlogResult()
    out: list[ModlogEntry] = []
    listing = reddit.subreddit(subreddit).mod.log(action=action, limit=max_pages * PAGE,
                                                  request_limit=PAGE)
    reached = False
    for item in listing:
        entry = ModlogEntry.from_praw(item, subreddit)
        if entry is None:
            result.malformed += 1
            continue
        if _known(db, entry.id):
            reached = True
            break
        out.append(entry)
    cursor = db.execute("SELECT newest_id FROM modlog_cursors WHERE subreddit = ? AND action = ?",
                        [subreddit.lower(), action]).fetchone()
    if not reached and cursor is not None and len(out) >= max_pages * PAGE:
        result.gaps.append(f"{subreddit}/{action}")
        log.warning("modlog_gap", subreddit=subreddit, action=action, read=len(out))
    return out


def current_flairs(reddit: Any, fullnames: Iterable[str]) -> dict[str, str | None]:
    """fullname → current ``link_flair_text`` of each submission Reddit still serves
    (``/api/info``, 100 per request)."""
    wanted = sorted({f for f in fullnames if f and f.startswith("t3_")})
    out: dict[str, str | None] = {}
    for start in range(0, len(wanted), PAGE):
        for thing in reddit.info(fullnames=wanted[start:start + PAGE]):
            out[str(thing.fullname)] = getattr(thing, "link_flair_text", None)
    return out


# --- deciding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What deciding needs besides the entry: modbot's account (lower case, or None), the
    wrong-medium reasons, the vocabulary and the current flairs of ``editflair`` targets."""

    me: str | None
    reasons: frozenset[str]
    vocabulary: Vocabulary
    flairs: Mapping[str, str | None]


def _verdict(db: Any, fullname: str) -> dict[str, Any] | None | str:
    row = db.execute(
        "SELECT s.fullname, v.kind, v.stated, v.predicted, v.confidence, v.model_version "
        "FROM submissions s LEFT JOIN verdicts v ON v.submission = s.fullname "
        "WHERE s.fullname = ?", [fullname]).fetchone()
    if row is None:
        return "not_recorded"
    if row[1] is None:
        return "no_verdict"
    return dict(zip(("fullname", "verdict", "stated", "predicted", "confidence",
                     "model_version"), row, strict=True))


def _decision(entry: ModlogEntry, v: Mapping[str, Any], ctx: _Context
              ) -> tuple[str, str, str] | str:
    """``(decision, true medium, note)`` for the entry, or why it is no label."""
    stated, predicted = v["stated"], v["predicted"]
    if entry.action == "approvelink":
        if stated not in MEDIA:
            return "stated_medium_unknown"
        return "dismiss", stated, "approved on Reddit"
    if entry.action in ("removelink", "addremovalreason"):
        named = [t for t in (entry.description, entry.details) if t]
        hit = next((t for t in named if t.strip().lower() in ctx.reasons), None)
        if hit is None:
            return "not_a_medium_reason"
        if predicted not in MEDIA or predicted == stated:
            return "true_medium_unknown"
        return "confirm", predicted, f"removed on Reddit: {hit.strip()}"
    if entry.action == "editflair":
        assert entry.target_fullname is not None
        flair = ctx.flairs.get(entry.target_fullname, entry.description)
        medium = stated_medium("", flair, vocabulary=ctx.vocabulary).medium if flair else "unknown"
        if medium not in MEDIA:
            return "flair_not_a_medium"
        if medium == stated:
            return "dismiss", medium, f"flair set on Reddit: {flair}"
        return "confirm", medium, f"flair set on Reddit: {flair}"
    return "action_not_read"


def _judge_entry(db: Any, entry: ModlogEntry, ctx: _Context
                 ) -> tuple[str, dict[str, Any] | None, int | None]:
    """(reason or decision, the ``reviews`` row to write or None, review id in force)."""
    mod = entry.mod.lower()
    if mod in NOT_MODERATORS:
        return "not_a_moderator", None, None
    if ctx.me is not None and mod == ctx.me:
        return "own_action", None, None
    try:
        check_moderator(entry.mod)
    except InputError:
        return "moderator_unknown", None, None
    if not (entry.target_fullname or "").startswith("t3_"):
        return "not_a_submission", None, None
    v = _verdict(db, str(entry.target_fullname))
    if isinstance(v, str) or v is None:
        return v or "not_recorded", None, None
    decided = _decision(entry, v, ctx)
    if isinstance(decided, str):
        return decided, None, None
    decision, true_medium, note = decided
    current = latest_review(db, v["fullname"])
    if current is not None and (current.decision, current.true_medium, current.moderator) == (
            decision, true_medium, entry.mod):
        return "already_in_force", None, current.id
    row = {"submission": v["fullname"], "decision": decision, "true_medium": true_medium,
           "stated": v["stated"], "predicted": v["predicted"], "confidence": v["confidence"],
           "verdict": v["verdict"], "model_version": v["model_version"], "moderator": entry.mod,
           "note": note, "created_at": entry.created_utc, "source": "modlog",
           "modlog_id": entry.id}
    return decision, row, None


def record_entry(db: Any, entry: ModlogEntry, ctx: _Context, result: ModlogResult, *,
                 now: float) -> None:
    """Decide one entry and store it (and its label) in one transaction; a stored id is
    skipped (never read twice)."""
    with write_transaction(db):
        if _known(db, entry.id):
            return
        why, review, review_id = _judge_entry(db, entry, ctx)
        if review is not None:
            review_id = int(db["reviews"].insert(review).last_pk)
        db["modlog_entries"].insert({
            "id": entry.id, "subreddit": entry.subreddit, "action": entry.action,
            "mod": entry.mod, "target_fullname": entry.target_fullname,
            "created_utc": entry.created_utc, "details": entry.details,
            "description": entry.description,
            "flair": ctx.flairs.get(entry.target_fullname or "") if entry.action == "editflair" else None,
            "outcome": "label" if review is not None else "ignored", "reason": why,
            "review_id": review_id, "read_at": now})
    result.read += 1
    if review is not None:
        result.labels += 1
        result.decisions[why] += 1
    else:
        result.ignored[why] += 1
    log.info("modlog_entry", id=entry.id, action=entry.action, mod=entry.mod,
             target=entry.target_fullname, outcome="label" if review else "ignored", reason=why)


def _save_cursor(db: Any, subreddit: str, action: str, newest: ModlogEntry, now: float) -> None:
    with write_transaction(db):
        db["modlog_cursors"].upsert({"subreddit": subreddit.lower(), "action": action,
                                     "newest_id": newest.id,
                                     "newest_created_utc": newest.created_utc,
                                     "updated_at": now}, pk=("subreddit", "action"))


def read_modlog(reddit: Any, db: Any, *, subreddits: Sequence[str], reasons: Collection[str],
                me: str | None, vocabulary: Vocabulary | None = None,
                max_pages: int = MAX_PAGES, now: Callable[[], float] = time.time) -> ModlogResult:
    """Read the new mod log entries of every subreddit in ``subreddits`` and store each once,
    with its label (see the module docstring), oldest first.

    ``reddit``: a ``praw.Reddit`` logged in as a moderator (modbot's client: its budget applies).
    ``db``: the modbot database. ``reasons``: lower-cased wrong-medium removal reasons
    (:func:`wrong_medium_reasons`). ``me``: modbot's account name (its own actions are no
    labels). Raises ``ValueError`` for ``max_pages`` < 1; praw/prawcore errors propagate (what
    was stored before stays; the rest is read next time).
    """
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    result = ModlogResult()
    for subreddit in subreddits:
        fetched = {a: new_entries(reddit, db, subreddit, a, max_pages=max_pages, result=result)
                   for a in ACTIONS}
        flair_targets = [e.target_fullname for e in fetched["editflair"] if e.target_fullname]
        ctx = _Context(me.lower() if me else None, frozenset(r.lower() for r in reasons),
                       vocabulary or Vocabulary.default(), current_flairs(reddit, flair_targets))
        # oldest first; within a second, listing order per action, actions in ACTIONS order
        entries = [e for a in ACTIONS for e in reversed(fetched[a])]
        entries.sort(key=lambda e: e.created_utc)
        for entry in entries:
            record_entry(db, entry, ctx, result, now=now())
        for action, got in fetched.items():
            if got:
                _save_cursor(db, subreddit, action, got[0], now())
    log.info("modlog_read", **result.as_dict())
    return result


def subreddits_of(config: Config) -> list[str]:
    """The subreddits of ``[reddit] subreddits`` (``"Art+ArtistLounge"`` → two)."""
    return [s for s in config.reddit.subreddits.split("+") if s]


def account_name(reddit: Any) -> str | None:
    """The name of the account ``reddit`` is logged in as (one request), or None."""
    me = reddit.user.me()
    return str(me.name) if me is not None else None


# --- the daemon's job -------------------------------------------------------------------------


class ModlogJob(ScheduledJob):
    """The mod log read as a background job of the daemon (``BackgroundJobs`` protocol of
    :mod:`modbot.daemon`): APScheduler 3 ``BackgroundScheduler``, every ``[learning]
    modlog_interval_s`` seconds, coalesced, never two at once, the first run right after
    :meth:`start`. It opens its own database connection in its thread and uses the daemon's
    praw client (so its requests share the daemon's request budget)."""

    job_id = "modlog"

    def __init__(self, config: Config, reddit: Any) -> None:
        self.config = config
        self.reddit = reddit
        self._me: str | None = None
        super().__init__()
        self._lock = threading.Lock()
        #: the latest rounds' results (bounded: the daemon runs for months)
        self.results: deque[ModlogResult] = deque(maxlen=100)

    def run_once(self) -> ModlogResult | None:
        """One read; errors are logged (None returned), never raised."""
        from modbot.record import Store

        with self._lock:
            try:
                if self._me is None:
                    self._me = account_name(self.reddit)
                store = Store(self.config.storage.database)
                try:
                    result = read_modlog(
                        self.reddit, store.db, subreddits=subreddits_of(self.config),
                        reasons=wrong_medium_reasons(self.config), me=self._me,
                        vocabulary=Vocabulary.default().with_terms(self.config.medium.vocabulary))
                finally:
                    store.close()
            except ShuttingDown:  # the daemon is stopping: the rest is read next time
                log.info("modlog_interrupted")
                return None
            except Exception as exc:  # noqa: BLE001 - Reddit down, 403 (not a moderator), a locked db
                log.error("modlog_error", error_type=type(exc).__name__, error=str(exc)[:300])
                return None
            self.results.append(result)
            return result

    def trigger(self) -> Any:
        """Every ``[learning] modlog_interval_s`` seconds."""
        from apscheduler.triggers.interval import IntervalTrigger

        return IntervalTrigger(seconds=float(self.config.learning.modlog_interval_s), timezone=UTC)


def modlog_job(config: Config, reddit: Any) -> ModlogJob | None:
    """The mod log job for ``config``, or None when ``[learning] modlog_interval_s`` is 0."""
    return ModlogJob(config, reddit) if config.learning.modlog_interval_s > 0 else None
