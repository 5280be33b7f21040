"""``modbot report``: flair accuracy, modbot's own precision, weekly trends — SQL over the schema.

Every figure is computed by SQL over the tables and views of ``migrations/`` (``submissions``,
``verdicts``, ``actions`` and the ``latest_reviews`` view of ``reviews``), so the same numbers can
be reproduced in ``sqlite3`` or Datasette. The query functions here are pure: they take a
``sqlite_utils.Database`` and a :class:`Period` and return plain dicts/lists; :func:`build_report`
assembles them into the document that ``--format json`` prints (keys: :data:`REPORT_KEYS`).

Terms used throughout:

- *judged*: a verdict of ``match`` or ``mismatch`` (the model was confident enough to compare);
  ``uncertain`` and ``not_judged`` verdicts are counted separately.
- *agreement* of a stated medium = match / judged. *mismatch rate* = mismatch / judged.
- *flag precision* = confirmed / reviewed over mismatch verdicts whose decision in force
  (``latest_reviews``) is ``confirm`` or ``dismiss``. The 95 % interval is Wilson's score interval
  (E. B. Wilson, JASA 22:209-212, 1927), which stays sensible for the small counts of a first week.
- The period filters on ``submissions.created_utc`` (when the post was made, UTC), whatever
  the time of the verdict or review.

No TensorFlow is imported; matplotlib only by :func:`write_plots` (``--plot``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlite_utils import Database

from modbot.domain import MEDIA, UNKNOWN

#: Version of the JSON document's layout; raised only when a key changes meaning or goes away.
SCHEMA_VERSION = 1

#: Top-level keys of the ``--format json`` document, in order.
REPORT_KEYS: tuple[str, ...] = (
    "schema_version", "generated_at", "period", "totals", "flair_accuracy", "confusion",
    "unknown_share", "unknown", "flag_precision", "weekly", "top_authors", "actions",
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
    so ``--until 2020-11-25`` includes all of 25 November. Raises ``ValueError`` for another format.
    """
    try:
        d = date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from exc
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

        Raises ``ValueError`` for a malformed date or ``since`` after ``until``.
        """
        p = cls(
            since=parse_day(since) if since else None,
            until=parse_day(until, end=True) if until else None,
            subreddit=subreddit.strip().removeprefix("r/").removeprefix("/r/") if subreddit else None,
        )
        if p.since is not None and p.until is not None and p.since >= p.until:
            raise ValueError(f"--since {since} is after --until {until}")
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
def _rows(db: Database, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = db.execute(sql, list(params))
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


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
def totals(db: Database, period: Period) -> dict[str, Any]:
    """Submissions in the period: count, first/last post date, counts by status and by verdict
    (``none`` for submissions without a verdict: skipped, failed, still in retry)."""
    where, params = period.where()
    row = db.execute(
        f"SELECT COUNT(*), MIN(s.created_utc), MAX(s.created_utc) FROM submissions s WHERE {where}",
        params).fetchone()
    by_status = {r[0]: r[1] for r in db.execute(
        f"SELECT s.status, COUNT(*) FROM submissions s WHERE {where} GROUP BY 1 ORDER BY 1", params)}
    by_verdict = {r[0]: r[1] for r in db.execute(
        f"SELECT COALESCE(v.kind, 'none'), COUNT(*) FROM submissions s "
        f"LEFT JOIN verdicts v ON v.submission = s.fullname WHERE {where} GROUP BY 1 ORDER BY 1",
        params)}
    return {"submissions": row[0], "first_post": iso_utc(row[1]), "last_post": iso_utc(row[2]),
            "by_status": by_status, "by_verdict": by_verdict}


def flair_accuracy(db: Database, period: Period) -> list[dict[str, Any]]:
    """Per stated medium (``submissions.stated_medium``, ``unknown`` included), how often the
    model agreed.

    One dict per stated medium present, in canonical order, with: ``stated``; ``posts`` (all
    submissions, whatever their status); ``classified`` (with a verdict that has a prediction);
    ``match``, ``mismatch``, ``uncertain``, ``not_judged`` (verdict counts); ``judged`` (match +
    mismatch); ``agreement`` = match / judged (float 0-1, None when nothing was judged).
    """
    where, params = period.where()
    rows = _rows(db, f"""
        SELECT s.stated_medium AS stated,
               COUNT(*) AS posts,
               COALESCE(SUM(v.predicted IS NOT NULL), 0) AS classified,
               COALESCE(SUM(v.kind = 'match'), 0) AS match,
               COALESCE(SUM(v.kind = 'mismatch'), 0) AS mismatch,
               COALESCE(SUM(v.kind = 'uncertain'), 0) AS uncertain,
               COALESCE(SUM(v.kind = 'not_judged'), 0) AS not_judged
        FROM submissions s LEFT JOIN verdicts v ON v.submission = s.fullname
        WHERE {where}
        GROUP BY s.stated_medium""", params)
    order = _media_order([r["stated"] for r in rows])
    rows.sort(key=lambda r: order.index(r["stated"]) if r["stated"] in order else len(order))
    for r in rows:
        r["judged"] = r["match"] + r["mismatch"]
        r["agreement"] = _ratio(r["match"], r["judged"])
    return rows


def confusion(db: Database, period: Period) -> dict[str, Any]:
    """Stated-vs-predicted confusion matrix over every classified submission.

    Returns ``{"labels": [...], "matrix": [[...]], "total": n}``: ``matrix[i][j]`` counts
    submissions stated ``labels[i]`` whose combined top prediction (``verdicts.predicted``) is
    ``labels[j]``, whatever the verdict (uncertain ones included, so the diagonal share can
    differ from ``agreement``). Labels: the canonical media, ``unknown``, then any other label
    found — always all of them, so the shape is stable (9 x 9 for the shipped vocabulary).
    """
    where, params = period.where()
    cells = db.execute(
        f"SELECT s.stated_medium, v.predicted, COUNT(*) FROM verdicts v "
        f"JOIN submissions s ON s.fullname = v.submission "
        f"WHERE v.predicted IS NOT NULL AND {where} GROUP BY 1, 2", params).fetchall()
    labels = _media_order([c[0] for c in cells] + [c[1] for c in cells])
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for stated, predicted, n in cells:
        matrix[index[stated]][index[predicted]] += n
    return {"labels": labels, "matrix": matrix, "total": sum(c[2] for c in cells)}


def unknown_stated(db: Database, period: Period) -> dict[str, Any]:
    """How many submissions stated no usable medium.

    ``count``: stated ``unknown``; ``share``: count / submissions (None when there are none);
    ``unparsed``: of those, ones with a text that was read but named no medium
    (``stated_raw`` not NULL, e.g. a title whose medium field is "Me"); ``unstated``: no text
    at all; ``by_source``: all submissions by ``stated_source`` (flair, title, none).
    """
    where, params = period.where()
    total, count, unparsed = db.execute(
        f"SELECT COUNT(*), COALESCE(SUM(s.stated_medium = ?), 0), "
        f"COALESCE(SUM(s.stated_medium = ? AND s.stated_raw IS NOT NULL AND s.stated_raw != ''), 0) "
        f"FROM submissions s WHERE {where}", [UNKNOWN, UNKNOWN, *params]).fetchone()
    by_source = {r[0]: r[1] for r in db.execute(
        f"SELECT COALESCE(s.stated_source, 'none'), COUNT(*) FROM submissions s WHERE {where} "
        f"GROUP BY 1 ORDER BY 1", params)}
    return {"count": count, "share": _ratio(count, total), "unparsed": unparsed,
            "unstated": count - unparsed, "by_source": by_source}


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
    ([low, high], Wilson) or None.
    """
    where, params = period.where()
    rows = db.execute(f"""
        SELECT v.kind, v.predicted, COUNT(*),
               COALESCE(SUM(r.decision = 'confirm'), 0), COALESCE(SUM(r.decision = 'dismiss'), 0)
        FROM verdicts v JOIN submissions s ON s.fullname = v.submission
        LEFT JOIN latest_reviews r ON r.submission = v.submission
        WHERE v.kind IN ('mismatch', 'uncertain') AND {where}
        GROUP BY 1, 2""", params).fetchall()
    mism = [r for r in rows if r[0] == "mismatch"]
    unc = [r for r in rows if r[0] == "uncertain"]
    order = _media_order([r[1] for r in mism])
    by_medium = [{"medium": r[1], **_precision_row(r[2], r[3], r[4])}
                 for r in sorted(mism, key=lambda r: order.index(r[1]))]

    def total(rs: list[tuple]) -> dict[str, Any]:
        return _precision_row(sum(r[2] for r in rs), sum(r[3] for r in rs), sum(r[4] for r in rs))

    return {"overall": total(mism), "by_medium": by_medium, "uncertain": total(unc)}


def weekly(db: Database, period: Period) -> list[dict[str, Any]]:
    """Per week (Monday to Sunday, UTC, by post time), oldest first, weeks with posts only.

    Each dict: ``week`` (the Monday, ``YYYY-MM-DD``), ``posts``, ``judged``, ``mismatch``,
    ``uncertain``, ``mismatch_rate`` (mismatch / judged, None when 0 judged), and review
    outcomes of that week's flagged posts: ``reviewed``, ``confirmed``, ``dismissed``.
    """
    where, params = period.where()
    rows = _rows(db, f"""
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
        LEFT JOIN latest_reviews r ON r.submission = s.fullname
             AND v.kind IN ('mismatch', 'uncertain')
        WHERE {where} AND s.created_utc IS NOT NULL
        GROUP BY week ORDER BY week""", params)
    for r in rows:
        r["mismatch_rate"] = _ratio(r["mismatch"], r["judged"])
    return rows


def top_authors(db: Database, period: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Authors with the most mismatches (deleted accounts left out), most first, then by name.

    Each dict: ``author``, ``mismatch`` (their mismatch verdicts), ``posts`` (all their posts in
    the period), ``confirmed`` / ``dismissed`` (review decisions in force on those mismatches).
    """
    where, params = period.where()
    return _rows(db, f"""
        SELECT s.author AS author,
               COALESCE(SUM(v.kind = 'mismatch'), 0) AS mismatch,
               COUNT(*) AS posts,
               COALESCE(SUM(v.kind = 'mismatch' AND r.decision = 'confirm'), 0) AS confirmed,
               COALESCE(SUM(v.kind = 'mismatch' AND r.decision = 'dismiss'), 0) AS dismissed
        FROM submissions s
        LEFT JOIN verdicts v ON v.submission = s.fullname
        LEFT JOIN latest_reviews r ON r.submission = s.fullname
        WHERE {where} AND s.author IS NOT NULL AND s.author != '[deleted]'
        GROUP BY s.author HAVING mismatch > 0
        ORDER BY mismatch DESC, author LIMIT ?""", [*params, int(limit)])


def action_counts(db: Database, period: Period) -> dict[str, dict[str, int]]:
    """Actions on submissions of the period: ``{kind: {status: n}}`` (kinds ``report``,
    ``comment``; statuses ``dry_run``, ``intent``, ``sent``, ``failed``, ``unknown``)."""
    where, params = period.where()
    out: dict[str, dict[str, int]] = {}
    for kind, status, n in db.execute(
            f"SELECT a.kind, a.status, COUNT(*) FROM actions a "
            f"JOIN submissions s ON s.fullname = a.submission WHERE {where} "
            f"GROUP BY 1, 2 ORDER BY 1, 2", params):
        out.setdefault(kind, {})[status] = n
    return out


def build_report(db: Database, period: Period | None = None, *, top: int = 10,
                 now: float | None = None) -> dict[str, Any]:
    """The whole report as one JSON-ready dict with the keys :data:`REPORT_KEYS` (see README)."""
    period = period or Period()
    unknown = unknown_stated(db, period)
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso_utc(time.time() if now is None else now, seconds=True),
        "period": period.as_dict(),
        "totals": totals(db, period),
        "flair_accuracy": flair_accuracy(db, period),
        "confusion": confusion(db, period),
        "unknown_share": unknown["share"],
        "unknown": unknown,
        "flag_precision": flag_precision(db, period),
        "weekly": weekly(db, period),
        "top_authors": top_authors(db, period, top),
        "actions": action_counts(db, period),
    }
    assert tuple(report) == REPORT_KEYS
    return report


# --- flat tables (CSV) ------------------------------------------------------------------------
def table_rows(report: Mapping[str, Any], name: str) -> tuple[list[str], list[dict[str, Any]]]:
    """One section of ``report`` as (column names, rows) — what ``--format csv --table NAME``
    writes. ``confusion`` becomes a wide table (``stated`` then one column per predicted label);
    ``flag_precision`` one row per predicted medium plus ``ALL`` (mismatches) and ``UNCERTAIN``;
    ``actions`` rows of (kind, status, count). Raises ``KeyError`` for an unknown name."""
    if name == "flair_accuracy":
        cols = ["stated", "posts", "classified", "match", "mismatch", "uncertain", "not_judged",
                "judged", "agreement"]
        return cols, [{c: r[c] for c in cols} for r in report["flair_accuracy"]]
    if name == "confusion":
        labels = report["confusion"]["labels"]
        rows = [{"stated": lab, **dict(zip(labels, report["confusion"]["matrix"][i], strict=True))}
                for i, lab in enumerate(labels)]
        return ["stated", *labels], rows
    if name == "flag_precision":
        cols = ["medium", "flagged", "reviewed", "confirmed", "dismissed", "unreviewed",
                "precision", "ci95_low", "ci95_high"]
        fp = report["flag_precision"]
        src = [*fp["by_medium"], {"medium": "ALL", **fp["overall"]},
               {"medium": "UNCERTAIN", **fp["uncertain"]}]
        rows = []
        for r in src:
            ci = r["ci95"] or [None, None]
            rows.append({**{c: r.get(c) for c in cols[:7]}, "ci95_low": ci[0], "ci95_high": ci[1]})
        return cols, rows
    if name == "weekly":
        cols = ["week", "posts", "judged", "mismatch", "uncertain", "mismatch_rate", "reviewed",
                "confirmed", "dismissed"]
        return cols, [{c: r[c] for c in cols} for r in report["weekly"]]
    if name == "top_authors":
        cols = ["author", "mismatch", "posts", "confirmed", "dismissed"]
        return cols, [{c: r[c] for c in cols} for r in report["top_authors"]]
    if name == "actions":
        rows = [{"kind": k, "status": s, "count": n}
                for k, by in report["actions"].items() for s, n in by.items()]
        return ["kind", "status", "count"], rows
    raise KeyError(f"unknown table {name!r} (one of {', '.join(CSV_TABLES)})")


def to_csv(report: Mapping[str, Any], name: str = "flair_accuracy") -> str:
    """The table ``name`` of ``report`` as CSV text (header row; empty cell for None; ratios as
    plain decimals with 6 digits)."""
    cols, rows = table_rows(report, name)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else round(v, 6) if isinstance(v, float) else v)
                    for k, v in r.items()})
    return buf.getvalue()


# --- terminal tables ---------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


_SHORT = {"digital": "digi", "painting": "pain", "drawing": "draw", "sculpture": "sculp",
          "photography": "photo", "mixed_media": "mixed", "other": "other", "unknown": "unkn",
          "ink": "ink"}


def render_tables(report: Mapping[str, Any], console: Any) -> None:
    """Print the report as rich tables, each at most 80 columns wide."""
    from rich.table import Table

    p, t = report["period"], report["totals"]
    span = f"{t['first_post'] or '-'} .. {t['last_post'] or '-'}"
    console.print(f"[bold]modbot report[/bold]  {t['submissions']} submissions, posted {span}"
                  + (f", r/{p['subreddit']}" if p["subreddit"] else "")
                  + (f"  (since {p['since']})" if p["since"] else "")
                  + (f"  (until {p['until']})" if p["until"] else ""))
    console.print("Verdicts: " + ", ".join(f"{k} {v}" for k, v in t["by_verdict"].items()))

    tab = Table(title="Flair accuracy: did the model agree with the stated medium?",
                title_justify="left")
    for c in ("stated", "posts", "classif.", "match", "mism.", "unc.", "n/j", "agree"):
        tab.add_column(c, justify="left" if c == "stated" else "right", no_wrap=True)
    for r in report["flair_accuracy"]:
        tab.add_row(r["stated"], str(r["posts"]), str(r["classified"]), str(r["match"]),
                    str(r["mismatch"]), str(r["uncertain"]), str(r["not_judged"]),
                    _pct(r["agreement"]))
    console.print(tab)
    console.print("classif. = classified; mism. = mismatch; unc. = uncertain; n/j = not judged "
                  "(no medium stated, or not a class of the model); agree = match / (match + "
                  "mismatch)", style="dim")
    u = report["unknown"]
    console.print(f"Stated medium unknown: {u['count']} ({_pct(u['share'])}) — "
                  f"{u['unparsed']} unparsed text, {u['unstated']} nothing stated. Sources: "
                  + ", ".join(f"{k} {v}" for k, v in u["by_source"].items()))

    conf = report["confusion"]
    labels, m = conf["labels"], conf["matrix"]
    rows_used = [i for i, row in enumerate(m) if any(row)]
    cols_used = [j for j in range(len(labels)) if any(m[i][j] for i in range(len(labels)))]
    tab = Table(title="Confusion: rows stated, columns predicted", title_justify="left")
    tab.add_column("stated \\ pred")
    for j in cols_used:
        tab.add_column(_SHORT.get(labels[j], labels[j][:5]), justify="right")
    for i in rows_used:
        cells = [f"[bold]{m[i][j]}[/bold]" if i == j and m[i][j] else str(m[i][j] or ".")
                 for j in cols_used]
        tab.add_row(labels[i], *cells)
    console.print(tab)

    fp = report["flag_precision"]
    tab = Table(title="Flag precision where moderators reviewed (mismatches)", title_justify="left")
    tab.add_column("predicted", no_wrap=True)
    for c in ("flags", "reviewed", "conf.", "dism.", "precision", "95% CI"):
        tab.add_column(c, justify="right", no_wrap=True)

    def prow(name: str, r: Mapping[str, Any], style: str | None = None) -> None:
        ci = "-" if r["ci95"] is None else f"{r['ci95'][0]:.0%}-{r['ci95'][1]:.0%}"
        tab.add_row(name, str(r["flagged"]), str(r["reviewed"]), str(r["confirmed"]),
                    str(r["dismissed"]), _pct(r["precision"]), ci, style=style)

    for r in fp["by_medium"]:
        prow(r["medium"], r)
    prow("all", fp["overall"], "bold")
    if fp["uncertain"]["flagged"]:
        prow("uncertain*", fp["uncertain"], "dim")
    console.print(tab)
    if fp["uncertain"]["flagged"]:
        console.print("* uncertain verdicts (no action is taken on them), all predicted media.")
    if not fp["overall"]["reviewed"]:
        console.print("No flag reviewed yet: [bold]modbot review[/bold] lists them.")

    tab = Table(title="By week (Monday, UTC): rate = mismatch / judged; rev./conf./dism. = "
                "flags reviewed / confirmed / dismissed", title_justify="left")
    for c in ("week", "posts", "judged", "mism.", "rate", "unc.", "rev.", "conf.", "dism."):
        tab.add_column(c, justify="left" if c == "week" else "right", no_wrap=True)
    for r in report["weekly"]:
        tab.add_row(r["week"], str(r["posts"]), str(r["judged"]), str(r["mismatch"]),
                    _pct(r["mismatch_rate"]), str(r["uncertain"]), str(r["reviewed"]),
                    str(r["confirmed"]), str(r["dismissed"]))
    console.print(tab)

    tab = Table(title="Top authors by mismatches", title_justify="left")
    for c in ("author", "mismatch", "posts", "confirmed", "dismissed"):
        tab.add_column(c, justify="left" if c == "author" else "right", no_wrap=c == "author",
                       max_width=30 if c == "author" else None, overflow="ellipsis")
    for r in report["top_authors"]:
        tab.add_row(r["author"], str(r["mismatch"]), str(r["posts"]), str(r["confirmed"]),
                    str(r["dismissed"]))
    console.print(tab)

    acts = report["actions"]
    console.print("Actions: " + ("; ".join(
        f"{k} " + ", ".join(f"{s} {n}" for s, n in by.items()) for k, by in acts.items()) or "none"))


# --- plots --------------------------------------------------------------------------------------
def write_plots(report: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write PNG charts of ``report`` into ``out_dir`` (created) and return their paths.

    ``confusion.png``: heat map of the stated-vs-predicted matrix with counts in the cells
    (rows/columns that are all zero are left out); ``weekly.png``: posts and mismatches per week
    (bars) with the mismatch rate (line, right axis); ``flag_precision.png``: reviewed flags per
    predicted medium, confirmed vs dismissed, with precision above each bar. Imports matplotlib
    (Agg backend, no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    period = report["period"]
    tot = report["totals"]
    subtitle = (f"{tot['submissions']} submissions, {tot['first_post'] or '-'} to "
                f"{tot['last_post'] or '-'}" + (f", r/{period['subreddit']}" if period["subreddit"] else ""))

    # confusion heat map
    conf = report["confusion"]
    labels, m = conf["labels"], conf["matrix"]
    rows = [i for i, row in enumerate(m) if any(row)] or list(range(len(labels)))
    cols = ([j for j in range(len(labels)) if any(m[i][j] for i in range(len(labels)))]
            or list(range(len(labels))))
    data = [[m[i][j] for j in cols] for i in rows]
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 3, 0.8 * len(rows) + 2.2), dpi=120)
    vmax = max(max(r) for r in data) or 1
    im = ax.imshow(data, cmap="Blues", vmin=0, vmax=vmax)
    ax.set_xticks(range(len(cols)), [labels[j] for j in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [labels[i] for i in rows])
    ax.set_xlabel("predicted medium (model)")
    ax.set_ylabel("stated medium (flair / title)")
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            v = m[i][j]
            ax.text(b, a, str(v), ha="center", va="center", fontsize=10,
                    color="white" if v > vmax / 2 else "black",
                    fontweight="bold" if labels[i] == labels[j] else "normal")
    fig.colorbar(im, ax=ax, label="submissions", ticks=MaxNLocator(integer=True))
    ax.set_title(f"Stated vs predicted medium\n{subtitle}", fontsize=10)
    fig.tight_layout()
    path = out / "confusion.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    # weekly trend
    weeks = report["weekly"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(weeks) + 3), 4.5), dpi=120)
    x = list(range(len(weeks)))
    ax.bar([i - 0.2 for i in x], [w["posts"] for w in weeks], width=0.4, label="posts",
           color="#9ecae1")
    ax.bar([i + 0.2 for i in x], [w["mismatch"] for w in weeks], width=0.4, label="mismatches",
           color="#e6550d")
    ax.set_xticks(x, [w["week"] for w in weeks], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("submissions")
    ax.set_xlabel("week starting (Monday, UTC)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.8, len(weeks) - 0.2)
    ax2 = ax.twinx()
    rates = [w["mismatch_rate"] * 100 if w["mismatch_rate"] is not None else float("nan")
             for w in weeks]
    ax2.plot(x, rates, color="black", marker="o", label="mismatch rate (right axis)")
    for i, r in enumerate(rates):
        if not math.isnan(r):
            ax2.annotate(f"{r:.0f}%", (i, r), textcoords="offset points", xytext=(0, 6),
                         ha="center", fontsize=8)
    ax2.set_ylabel("mismatch rate (% of judged)")
    ax2.set_ylim(0, 100)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3,
              fontsize=8, frameon=False)
    ax.set_title(f"Posts and mismatches by week\n{subtitle}", fontsize=10)
    fig.tight_layout()
    path = out / "weekly.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    # flag precision
    fp = report["flag_precision"]
    media = [r["medium"] for r in fp["by_medium"]]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(media) + 3), 4), dpi=120)
    conf_n = [r["confirmed"] for r in fp["by_medium"]]
    dism_n = [r["dismissed"] for r in fp["by_medium"]]
    unrev = [r["unreviewed"] for r in fp["by_medium"]]
    xs = list(range(len(media)))
    ax.bar(xs, conf_n, color="#31a354", label="confirmed")
    ax.bar(xs, dism_n, bottom=conf_n, color="#de2d26", label="dismissed")
    ax.bar(xs, unrev, bottom=[c + d for c, d in zip(conf_n, dism_n, strict=True)],
           color="#d9d9d9", label="not reviewed")
    for i, r in enumerate(fp["by_medium"]):
        if r["precision"] is not None:
            ax.text(i, r["flagged"], f"{r['precision']:.0%} ({r['confirmed']}/{r['reviewed']})",
                    ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, max([r["flagged"] for r in fp["by_medium"]] + [1]) * 1.18)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks(xs, media)
    ax.set_xlabel("predicted medium of the flag")
    ax.set_ylabel("mismatch flags")
    o = fp["overall"]
    ax.set_title(f"Flag precision (confirmed / reviewed): {_pct(o['precision'])} of "
                 f"{o['reviewed']} reviewed\n{subtitle}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "flag_precision.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


# --- the command --------------------------------------------------------------------------------
def resolve_db_path(ctx: click.Context, db_path: str | None) -> str:
    """``--db`` if given, else the configured ``[storage] database``."""
    if db_path:
        return db_path
    from modbot.config import load_config
    from modbot.errors import ModbotError

    root = ctx.find_root()
    try:
        config = load_config((root.obj or {}).get("config_path"))
    except ModbotError as exc:
        raise click.ClickException(str(exc)) from exc
    return config.storage.database


def open_existing(path: str) -> Database:
    """Open (and migrate) an existing modbot database; a click error if there is none."""
    from modbot.errors import ModbotError
    from modbot.record import open_database

    if path != ":memory:" and not Path(path).is_file():
        raise click.ClickException(
            f"no database at {path} (run `modbot demo` or `modbot run` first, or pass --db)")
    try:
        return open_database(path)
    except ModbotError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("report")
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="SQLite database (default: the config's [storage] database).")
@click.option("--since", metavar="YYYY-MM-DD", help="First day of posts to include (UTC).")
@click.option("--until", metavar="YYYY-MM-DD",
              help="Last day of posts to include (UTC, inclusive).")
@click.option("--subreddit", help="Only this subreddit (default: all in the database).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--table", "table_name", type=click.Choice(CSV_TABLES), default="flair_accuracy",
              show_default=True, help="With --format csv: which table to write.")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many authors in top_authors.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False),
              help="Also write PNG charts (confusion.png, weekly.png, flag_precision.png) here.")
@click.pass_context
def report(ctx: click.Context, db_path: str | None, since: str | None, until: str | None,
           subreddit: str | None, fmt: str, table_name: str, top: int, plot_dir: str | None) -> None:
    """Flair accuracy, confusion matrix, flag precision, weekly trends, top authors, actions.

    \b
    Examples:
      modbot report --db modbot-demo/modbot.db
      modbot report --since 2020-11-01 --until 2020-11-30 --format json
      modbot report --format csv --table weekly > weekly.csv
      modbot report --plot charts/
    """
    try:
        period = Period.from_options(since, until, subreddit)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    db = open_existing(resolve_db_path(ctx, db_path))
    try:
        rep = build_report(db, period, top=top)
    finally:
        db.conn.close()
    if fmt == "json":
        click.echo(json.dumps(rep, indent=2))
    elif fmt == "csv":
        click.echo(to_csv(rep, table_name), nl=False)
    else:
        from rich.console import Console

        render_tables(rep, Console())
    if plot_dir:
        for path in write_plots(rep, plot_dir):
            click.echo(f"wrote {path}", err=fmt != "table")
