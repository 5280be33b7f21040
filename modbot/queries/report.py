"""The figures of ``modbot report``: flair accuracy, modbot's own precision, weekly trends — SQL
over the schema.

Every figure is computed by SQL over the tables and views of ``migrations/`` (``submissions``,
``verdicts``, ``actions`` and the latest row of ``reviews`` per submission), so the same numbers can
be reproduced in ``sqlite3`` or Datasette. The query functions are pure: they take a
``sqlite_utils.Database`` and a :class:`Period` and return plain dicts/lists; :func:`build_report`
assembles them into the document that ``modbot report --format json`` prints (keys:
:data:`REPORT_KEYS`). Rendering (tables, CSV, plots) is in :mod:`modbot.cli.report`.

Terms used throughout:

- *judged*: a verdict of ``match`` or ``mismatch`` (the model was confident enough to compare);
  ``uncertain`` and ``not_judged`` verdicts are counted separately.
- *agreement* of a stated medium = match / judged. *mismatch rate* = mismatch / judged.
- *flag precision* = confirmed / reviewed over mismatch verdicts whose decision in force
  (``latest_reviews``) is ``confirm`` or ``dismiss``. The 95 % interval is Wilson's score interval
  (E. B. Wilson, JASA 22:209-212, 1927), which stays sensible for the small counts of a first week.
- The period filters on ``submissions.created_utc`` (when the post was made, UTC), whatever
  the time of the verdict or review.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from modbot.domain import MEDIA, UNKNOWN
from modbot.errors import InputError

#: Version of the JSON document's layout; raised only when a key changes meaning or goes away.
SCHEMA_VERSION = 1

#: Top-level keys of the ``--format json`` document, in order.
REPORT_KEYS: tuple[str, ...] = (
    "schema_version", "generated_at", "period", "totals", "flair_accuracy", "confusion",
    "unknown_share", "unknown", "flag_precision", "weekly", "top_authors", "actions", "reposts",
)

#: Tables ``--format csv --table NAME`` can write (each also a key of the JSON document).
CSV_TABLES: tuple[str, ...] = (
    "flair_accuracy", "confusion", "flag_precision", "weekly", "top_authors", "actions",
)

#: Verdict kinds that flag a submission for moderators.
FLAGGED_KINDS: tuple[str, ...] = ("mismatch", "uncertain")


# --- period ----------------------------------------------------------------------------------
def parse_day(text: str, *, end: bool = False) -> float:
    """Parse an ISO date ``YYYY-MM-DD`` (UTC) to Unix seconds.

    ``end=False`` gives the start of the day (00:00 UTC); ``end=True`` the start of the next day,
    so ``--until 2020-11-25`` includes all of 25 November. Raises ``InputError`` for another format.
    """
    try:
        d = date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(f"not a date (YYYY-MM-DD): {text!r}") from exc
    if end:
        d = d + timedelta(days=1)
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def iso_utc(ts: float | None, *, seconds: bool = False) -> str | None:
    """Unix seconds → ``YYYY-MM-DD`` (or ``YYYY-MM-DDTHH:MM:SSZ`` with ``seconds``), UTC; None → None."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(float(ts), UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else dt.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Period:
    """Which submissions a report covers.

    ``since``: Unix seconds, inclusive; ``until``: Unix seconds, exclusive (None = unbounded);
    ``subreddit``: a subreddit name, compared case-insensitively, ``r/`` prefix allowed.
    """

    since: float | None = None
    until: float | None = None
    subreddit: str | None = None

    @classmethod
    def from_options(cls, since: str | None, until: str | None, subreddit: str | None) -> Period:
        """From the CLI's ``--since/--until`` (ISO dates, UTC, both inclusive) and ``--subreddit``.

        Raises ``InputError`` for a malformed date or ``since`` after ``until``.
        """
        p = cls(
            since=parse_day(since) if since else None,
            until=parse_day(until, end=True) if until else None,
            subreddit=subreddit.strip().removeprefix("r/").removeprefix("/r/") if subreddit else None,
        )
        if p.since is not None and p.until is not None and p.since >= p.until:
            raise InputError(f"--since {since} is after --until {until}")
        return p

    def where(self, alias: str = "s") -> tuple[str, list[Any]]:
        """An SQL condition on the ``submissions`` alias (``"1"`` when unbounded) and its parameters."""
        clauses, params = [], []
        if self.since is not None:
            clauses.append(f"{alias}.created_utc >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append(f"{alias}.created_utc < ?")
            params.append(self.until)
        if self.subreddit:
            clauses.append(f"{alias}.subreddit = ? COLLATE NOCASE")
            params.append(self.subreddit)
        return (" AND ".join(clauses) or "1"), params

    def as_dict(self) -> dict[str, Any]:
        """``since``/``until`` as inclusive ISO dates (or None) and the subreddit (or None)."""
        return {
            "since": iso_utc(self.since),
            "until": iso_utc(self.until - 86400) if self.until is not None else None,
            "subreddit": self.subreddit,
        }


# --- small helpers ---------------------------------------------------------------------------
def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval for a proportion k/n (default 95 %: z = 1.96); None when n = 0.

    Returns (low, high), both in [0, 1].
    """
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _media_order(found: Sequence[str]) -> list[str]:
    """Canonical media, then ``unknown``, then any other label found (sorted)."""
    base = list(MEDIA) + [UNKNOWN]
    return base + sorted({f for f in found if f is not None and f not in base})


# --- the queries -----------------------------------------------------------------------------
#: The decision in force on the submission named by ``{col}`` (the last review recorded), as a
#: ``LEFT JOIN`` of ``reviews r``: a correlated ``MAX(id)`` on the index ``(submission, id)``,
#: one index probe per row — never a scan of ``reviews`` per submission (the ``GROUP BY`` inside
#: the original ``latest_reviews`` view was re-run for every joined row).
LATEST_REVIEW_JOIN = ("LEFT JOIN reviews r ON r.id = "
                      "(SELECT MAX(r2.id) FROM reviews r2 WHERE r2.submission = {col})")


@dataclass(frozen=True)
class Fact:
    """One group of submissions of the period (a row of :func:`facts`): ``n`` submissions with
    this status, stated medium, source, whether a stated text was read (``unparsed`` counts
    only for ``unknown``), and verdict kind / predicted medium (None without a verdict)."""

    status: str
    stated: str
    source: str
    has_raw: bool
    kind: str | None
    predicted: str | None
    n: int


def facts(db: Database, period: Period) -> list[Fact]:
    """The submissions of the period grouped by everything :func:`totals`,
    :func:`flair_accuracy`, :func:`confusion` and :func:`unknown_stated` count: one pass over
    ``submissions`` (the covering index ``idx_submissions_report``) joined to ``verdicts``, so
    a report reads the 1,000,000 submissions once instead of five times."""
    where, params = period.where()
    # Counted here rather than by GROUP BY: SQLite sorts the million joined rows into a temporary
    # B-tree first (~2.0 s at 1,000,000 rows against ~1.5 s for this; a few hundred groups)
    groups = Counter(db.execute(f"""
        SELECT s.stated_medium, COALESCE(s.stated_source, 'none'),
               s.stated_raw IS NOT NULL AND s.stated_raw != '', v.kind, v.predicted, s.status
        FROM submissions s LEFT JOIN verdicts v ON v.submission = s.fullname
        WHERE {where}""", params))
    return [Fact(r[5], r[0], r[1], bool(r[2]), r[3], r[4], n)
            for r, n in sorted(groups.items(), key=lambda item: tuple((v is None, v) for v in item[0]))]


def _count_by(rows: Sequence[Fact], key: Any) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for f in rows:
        k = key(f)
        out[k] = out.get(k, 0) + f.n
    return dict(sorted(out.items()))


def totals(db: Database, period: Period, grouped: Sequence[Fact] | None = None) -> dict[str, Any]:
    """Submissions in the period: count, first/last post date, counts by status and by verdict
    (``none`` for submissions without a verdict: skipped, failed, still in retry).
    ``grouped``: :func:`facts` of the period when already read."""
    where, params = period.where()
    grouped = facts(db, period) if grouped is None else grouped
    first, last = db.execute(
        f"SELECT MIN(s.created_utc), MAX(s.created_utc) FROM submissions s WHERE {where}",
        params).fetchone()
    return {"submissions": sum(f.n for f in grouped), "first_post": iso_utc(first),
            "last_post": iso_utc(last), "by_status": _count_by(grouped, lambda f: f.status),
            "by_verdict": _count_by(grouped, lambda f: f.kind or "none")}


def flair_accuracy(db: Database, period: Period,
                   grouped: Sequence[Fact] | None = None) -> list[dict[str, Any]]:
    """Per stated medium (``submissions.stated_medium``, ``unknown`` included), how often the
    model agreed.

    One dict per stated medium present, in canonical order, with: ``stated``; ``posts`` (all
    submissions, whatever their status); ``classified`` (with a verdict that has a prediction);
    ``match``, ``mismatch``, ``uncertain``, ``not_judged`` (verdict counts); ``judged`` (match +
    mismatch); ``agreement`` = match / judged (float 0-1, None when nothing was judged).
    """
    grouped = facts(db, period) if grouped is None else grouped
    by_stated: dict[str, dict[str, Any]] = {}
    for f in grouped:
        r = by_stated.setdefault(f.stated, {"stated": f.stated, "posts": 0, "classified": 0,
                                            "match": 0, "mismatch": 0, "uncertain": 0,
                                            "not_judged": 0})
        r["posts"] += f.n
        r["classified"] += f.n if f.predicted is not None else 0
        if f.kind in ("match", "mismatch", "uncertain", "not_judged"):
            r[f.kind] += f.n
    rows = list(by_stated.values())
    order = _media_order([r["stated"] for r in rows])
    rows.sort(key=lambda r: order.index(r["stated"]) if r["stated"] in order else len(order))
    for r in rows:
        r["judged"] = r["match"] + r["mismatch"]
        r["agreement"] = _ratio(r["match"], r["judged"])
    return rows


def confusion(db: Database, period: Period, grouped: Sequence[Fact] | None = None) -> dict[str, Any]:
    """Stated-vs-predicted confusion matrix over every classified submission.

    Returns ``{"labels": [...], "matrix": [[...]], "total": n}``: ``matrix[i][j]`` counts
    submissions stated ``labels[i]`` whose combined top prediction (``verdicts.predicted``) is
    ``labels[j]``, whatever the verdict (uncertain ones included, so the diagonal share can
    differ from ``agreement``). Labels: the canonical media, ``unknown``, then any other label
    found — always all of them, so the shape is stable (9 x 9 for the shipped vocabulary).
    """
    grouped = facts(db, period) if grouped is None else grouped
    cells = list(_count_by([f for f in grouped if f.predicted is not None],
                           lambda f: (f.stated, f.predicted)).items())
    labels = _media_order([c[0][0] for c in cells] + [c[0][1] for c in cells])
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for (stated, predicted), n in cells:
        matrix[index[stated]][index[predicted]] += n
    return {"labels": labels, "matrix": matrix, "total": sum(c[1] for c in cells)}


def unknown_stated(db: Database, period: Period,
                   grouped: Sequence[Fact] | None = None) -> dict[str, Any]:
    """How many submissions stated no usable medium.

    ``count``: stated ``unknown``; ``share``: count / submissions (None when there are none);
    ``unparsed``: of those, ones with a text that was read but named no medium
    (``stated_raw`` not NULL, e.g. a title whose medium field is "Me"); ``unstated``: no text
    at all; ``by_source``: all submissions by ``stated_source`` (flair, title, none).
    """
    grouped = facts(db, period) if grouped is None else grouped
    total = sum(f.n for f in grouped)
    count = sum(f.n for f in grouped if f.stated == UNKNOWN)
    unparsed = sum(f.n for f in grouped if f.stated == UNKNOWN and f.has_raw)
    return {"count": count, "share": _ratio(count, total), "unparsed": unparsed,
            "unstated": count - unparsed, "by_source": _count_by(grouped, lambda f: f.source)}


def _precision_row(flagged: int, confirmed: int, dismissed: int) -> dict[str, Any]:
    reviewed = confirmed + dismissed
    ci = wilson_interval(confirmed, reviewed)
    return {"flagged": flagged, "reviewed": reviewed, "confirmed": confirmed,
            "dismissed": dismissed, "unreviewed": flagged - reviewed,
            "precision": _ratio(confirmed, reviewed), "ci95": list(ci) if ci else None}


def flag_precision(db: Database, period: Period) -> dict[str, Any]:
    """modbot's precision where moderators reviewed its flags (decision in force per post).

    Returns ``{"overall": row, "by_medium": [row + {"medium"}], "uncertain": row}``. ``overall``
    and ``by_medium`` (by predicted medium, canonical order) cover ``mismatch`` verdicts — the
    ones actions are taken on; ``uncertain`` covers uncertain verdicts reviewed anyway. Each row:
    ``flagged``, ``reviewed``, ``confirmed``, ``dismissed``, ``unreviewed`` (counts),
    ``precision`` = confirmed / reviewed (None when nothing was reviewed) and ``ci95``
    ([low, high], Wilson) or None. ``by_source``: the reviewed mismatch flags by where the
    decision in force came from (``cli``/``modlog``) → ``{confirmed, dismissed}``; moderators'
    actions on Reddit count like ``modbot review`` decisions (approve = dismissed,
    wrong-medium removal = confirmed).
    """
    where, params = period.where()
    rows = db.execute(f"""
        SELECT v.kind, v.predicted, COUNT(*),
               COALESCE(SUM(r.decision = 'confirm'), 0), COALESCE(SUM(r.decision = 'dismiss'), 0)
        FROM verdicts v JOIN submissions s ON s.fullname = v.submission
        {LATEST_REVIEW_JOIN.format(col="v.submission")}
        WHERE v.kind IN ('mismatch', 'uncertain') AND {where}
        GROUP BY 1, 2""", params).fetchall()
    mism = [r for r in rows if r[0] == "mismatch"]
    unc = [r for r in rows if r[0] == "uncertain"]
    order = _media_order([r[1] for r in mism])
    by_medium = [{"medium": r[1], **_precision_row(r[2], r[3], r[4])}
                 for r in sorted(mism, key=lambda r: order.index(r[1]))]

    def total(rs: list[tuple]) -> dict[str, Any]:
        return _precision_row(sum(r[2] for r in rs), sum(r[3] for r in rs), sum(r[4] for r in rs))

    return {"overall": total(mism), "by_medium": by_medium, "uncertain": total(unc),
            "by_source": _reviews_by_source(db, period)}


def _reviews_by_source(db: Database, period: Period) -> dict[str, dict[str, int]]:
    """Reviewed mismatch flags by the source of the decision in force (``cli``: ``modbot
    review``; ``modlog``: a moderator's action on Reddit) → ``{confirmed, dismissed}``."""
    where, params = period.where()
    out: dict[str, dict[str, int]] = {}
    for source, decision, n in db.execute(f"""
            SELECT COALESCE(r.source, 'cli'), r.decision, COUNT(*)
            FROM verdicts v JOIN submissions s ON s.fullname = v.submission
            {LATEST_REVIEW_JOIN.format(col="v.submission")}
            WHERE v.kind = 'mismatch' AND r.decision IS NOT NULL AND {where}
            GROUP BY 1, 2""", params).fetchall():
        row = out.setdefault(source, {"confirmed": 0, "dismissed": 0})
        row["confirmed" if decision == "confirm" else "dismissed"] += int(n)
    return out


def weekly(db: Database, period: Period) -> list[dict[str, Any]]:
    """Per week (Monday to Sunday, UTC, by post time), oldest first, weeks with posts only.

    Each dict: ``week`` (the Monday, ``YYYY-MM-DD``), ``posts``, ``judged``, ``mismatch``,
    ``uncertain``, ``mismatch_rate`` (mismatch / judged, None when 0 judged), and review
    outcomes of that week's flagged posts: ``reviewed``, ``confirmed``, ``dismissed``.
    """
    where, params = period.where()
    rows = list(db.query(f"""
        SELECT date(s.created_utc, 'unixepoch', 'weekday 0', '-6 days') AS week,
               COUNT(*) AS posts,
               COALESCE(SUM(v.kind IN ('match', 'mismatch')), 0) AS judged,
               COALESCE(SUM(v.kind = 'mismatch'), 0) AS mismatch,
               COALESCE(SUM(v.kind = 'uncertain'), 0) AS uncertain,
               COALESCE(SUM(r.decision IS NOT NULL), 0) AS reviewed,
               COALESCE(SUM(r.decision = 'confirm'), 0) AS confirmed,
               COALESCE(SUM(r.decision = 'dismiss'), 0) AS dismissed
        FROM submissions s
        LEFT JOIN verdicts v ON v.submission = s.fullname
        {LATEST_REVIEW_JOIN.format(col="s.fullname")}
             AND v.kind IN ('mismatch', 'uncertain')
        WHERE {where} AND s.created_utc IS NOT NULL
        GROUP BY week ORDER BY week""", params))
    for r in rows:
        r["mismatch_rate"] = _ratio(r["mismatch"], r["judged"])
    return rows


def top_authors(db: Database, period: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Authors with the most mismatches (deleted accounts left out), most first, then by name.

    Each dict: ``author``, ``mismatch`` (their mismatch verdicts), ``posts`` (all their posts in
    the period), ``confirmed`` / ``dismissed`` (review decisions in force on those mismatches).
    Read from the mismatch verdicts (index ``idx_verdicts_kind``), then each listed author's
    post count (index ``idx_submissions_author``): never a pass over every submission.
    """
    where, params = period.where()
    rows = list(db.query(f"""
        SELECT s.author AS author, COUNT(*) AS mismatch,
               COALESCE(SUM(r.decision = 'confirm'), 0) AS confirmed,
               COALESCE(SUM(r.decision = 'dismiss'), 0) AS dismissed
        FROM verdicts v
        JOIN submissions s ON s.fullname = v.submission
        {LATEST_REVIEW_JOIN.format(col="v.submission")}
        WHERE v.kind = 'mismatch' AND {where} AND s.author IS NOT NULL
              AND s.author != '[deleted]'
        GROUP BY s.author ORDER BY mismatch DESC, author LIMIT ?""", [*params, int(limit)]))
    out = []
    for r in rows:
        posts = db.execute(f"SELECT COUNT(*) FROM submissions s WHERE s.author = ? AND {where}",
                           [r["author"], *params]).fetchone()[0]
        out.append({"author": r["author"], "mismatch": r["mismatch"], "posts": posts,
                    "confirmed": r["confirmed"], "dismissed": r["dismissed"]})
    return out


def action_counts(db: Database, period: Period) -> dict[str, dict[str, int]]:
    """Actions on submissions of the period: ``{kind: {status: n}}`` (kinds ``report``,
    ``comment``, ``remove``, ``removal_message``, ``note:<kind>`` (mod notes); statuses
    ``dry_run``, ``intent``, ``sent``, ``failed``, ``unknown``, ``skipped``), plus ``digest``:
    the modmail digests (:func:`digest_counts`)."""
    where, params = period.where()
    out: dict[str, dict[str, int]] = {}
    for kind, status, n in db.execute(
            f"SELECT a.kind, a.status, COUNT(*) FROM actions a "
            f"JOIN submissions s ON s.fullname = a.submission WHERE {where} "
            f"GROUP BY 1, 2 ORDER BY 1, 2", params):
        out.setdefault(kind, {})[status] = n
    digests = digest_counts(db, period)
    if digests:
        out["digest"] = digests
    return out


def digest_counts(db: Database, period: Period) -> dict[str, int]:
    """Modmail digests (table ``digests``) whose reported day lies in the period (and whose
    subreddit is the period's, if set): ``{status: n}``; empty before migration 005."""
    if not db["digests"].exists():
        return {}
    clauses, params = ["1"], []
    if period.since is not None:
        clauses.append("day >= date(?, 'unixepoch')")
        params.append(period.since)
    if period.until is not None:
        clauses.append("day < date(?, 'unixepoch')")
        params.append(period.until)
    if period.subreddit:
        clauses.append("subreddit = ? COLLATE NOCASE")
        params.append(period.subreddit)
    return {status: n for status, n in db.execute(
        f"SELECT status, COUNT(*) FROM digests WHERE {' AND '.join(clauses)} "
        "GROUP BY 1 ORDER BY 1", params)}


def repost_counts(db: Database, period: Period) -> dict[str, Any]:
    """Repost findings (``modbot.repost``) on submissions of the period: ``submissions`` with a
    finding, ``by_kind`` (submissions by their most severe kind: ``known_original``,
    ``other_author``, ``same_author``), ``mirrored`` (submissions with a mirrored match) and
    ``reported`` (``repost_report`` actions by status)."""
    where, params = period.where()
    kinds = ("known_original", "other_author", "same_author")
    by_kind = dict.fromkeys(kinds, 0)
    n = mirrored = 0
    for kinds_seen, mir in db.execute(
            f"SELECT group_concat(f.kind), MAX(f.mirrored) FROM repost_findings f "
            f"JOIN submissions s ON s.fullname = f.submission WHERE {where} "
            f"GROUP BY f.submission", params):
        seen = set(str(kinds_seen).split(","))
        by_kind[next(k for k in kinds if k in seen)] += 1
        n += 1
        mirrored += int(bool(mir))
    reported = action_counts(db, period).get("repost_report", {})
    return {"submissions": n, "by_kind": by_kind, "mirrored": mirrored, "reported": reported}


def build_report(db: Database, period: Period | None = None, *, top: int = 10,
                 now: float | None = None) -> dict[str, Any]:
    """The whole report as one JSON-ready dict with the keys :data:`REPORT_KEYS` (see README)."""
    period = period or Period()
    grouped = facts(db, period)
    unknown = unknown_stated(db, period, grouped)
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso_utc(time.time() if now is None else now, seconds=True),
        "period": period.as_dict(),
        "totals": totals(db, period, grouped),
        "flair_accuracy": flair_accuracy(db, period, grouped),
        "confusion": confusion(db, period, grouped),
        "unknown_share": unknown["share"],
        "unknown": unknown,
        "flag_precision": flag_precision(db, period),
        "weekly": weekly(db, period),
        "top_authors": top_authors(db, period, top),
        "actions": action_counts(db, period),
        "reposts": repost_counts(db, period),
    }
    return report


