"""The data of ``modbot review``: flagged submissions, one submission in full, and recording
moderators' decisions.

A flagged submission has a ``mismatch`` verdict (the model confidently sees another medium than
the stated one; the only kind actions are taken on) or an ``uncertain`` one. A moderator either
**confirms** the flag (the stated medium is wrong; the true medium is the model's prediction
unless given) or **dismisses** it (the stated medium is right).

Each decision is a new row of the ``reviews`` table (see ``migrations/`` ``m003_reviews``), so
the history is kept; the last decision recorded for a submission is the one in force (view
``latest_reviews``), which is what ``modbot report`` counts and what retraining reads as the
label (view ``review_labels``). Recording exactly the decision already in force again (same
decision, true medium, moderator and note) adds no row: :func:`record_review` is idempotent.
Errors are ``InputError`` (unknown submission, decision that makes no sense, a moderator name
that is not a Reddit username).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from modbot.domain import MEDIA, UNKNOWN
from modbot.errors import InputError
from modbot.record import write_transaction

DECISIONS = ("confirm", "dismiss")
REDDIT = "https://www.reddit.com"


# --- data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Review:
    """One recorded decision (a row of ``reviews``). ``created_at`` is Unix seconds (UTC).
    ``source``: ``cli`` (``modbot review``) or ``modlog`` (a moderator's action on Reddit, read
    from the mod log; ``modlog_id`` its entry id)."""

    id: int
    submission: str
    decision: str
    true_medium: str
    stated: str | None
    predicted: str | None
    confidence: float | None
    verdict: str | None
    model_version: str | None
    moderator: str
    note: str | None
    created_at: float
    source: str = "cli"
    modlog_id: str | None = None


def default_moderator(env: dict[str, str] | None = None) -> str:
    """``$MODBOT_MODERATOR``, else the OS user name (``getpass.getuser``), else ``unknown``."""
    env = dict(os.environ) if env is None else env
    name = (env.get("MODBOT_MODERATOR") or "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no user name on this platform / container without passwd entry
        return "unknown"


#: A moderator name as Reddit allows usernames: 3 to 20 letters, digits, ``_`` or ``-``.
MODERATOR_NAME = re.compile(r"[A-Za-z0-9_-]{3,20}")


def check_moderator(name: str) -> str:
    """``name`` if it is a valid moderator name (:data:`MODERATOR_NAME`, a Reddit username);
    else ``InputError`` (names stored in ``reviews`` are printed in every listing)."""
    if not MODERATOR_NAME.fullmatch(name):
        raise InputError(f"moderator name {name!r} is not a Reddit username (3-20 characters: "
                         "letters, digits, _ or -); pass --moderator or set $MODBOT_MODERATOR")
    return name


def permalink_url(permalink: str | None) -> str | None:
    """A full URL for ``submissions.permalink`` (Reddit stores it relative: ``/r/Art/...``)."""
    if not permalink:
        return None
    return REDDIT + permalink if permalink.startswith("/") else permalink


def short_link(submission_id: str | None) -> str | None:
    """Reddit's official short link for a submission id: ``https://redd.it/<id>``."""
    return f"https://redd.it/{submission_id}" if submission_id else None


def resolve_fullname(db: Database, ident: str) -> str:
    """The fullname of a recorded submission given ``t3_abc``, ``abc`` or a permalink/URL.

    Raises ``InputError`` if no such submission is in the database.
    """
    text = ident.strip()
    if "/comments/" in text:
        text = text.split("/comments/", 1)[1].split("/", 1)[0]
    candidates = [text] if text.startswith("t3_") else [f"t3_{text}", text]
    for c in candidates:
        row = db.execute("SELECT fullname FROM submissions WHERE fullname = ?", [c]).fetchone()
        if row:
            return row[0]
    raise InputError(f"no submission {ident!r} in the database")


def _images(db: Database, fullname: str) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM images WHERE submission = ? ORDER BY position", [fullname]))


def flagged(db: Database, *, verdicts: Sequence[str] = ("mismatch",), medium: str | None = None,
            since: float | None = None, until: float | None = None, state: str = "all",
            limit: int | None = 50) -> list[dict[str, Any]]:
    """Flagged submissions, newest post first.

    ``verdicts``: verdict kinds to include (``mismatch``, ``uncertain``); ``medium``: only posts
    whose stated *or* predicted medium is this; ``since``/``until``: Unix seconds on
    ``created_utc`` (inclusive/exclusive); ``state``: ``pending`` (no decision yet),
    ``reviewed`` or ``all`` (else ``InputError``); ``limit``: at most this many (None = all).

    Each dict: fullname, id, subreddit, title, author, permalink (full URL), created_utc,
    verdict, stated, predicted, confidence (0-1), model_version, n_images, decision,
    true_medium, moderator, reviewed_at (the decision in force, None when pending) and
    ``images``: cached file paths of the post's fetched images, in gallery order.
    """
    clauses = [f"v.kind IN ({', '.join('?' for _ in verdicts)})"]
    params: list[Any] = list(verdicts)
    if medium:
        clauses.append("(v.stated = ? OR v.predicted = ?)")
        params += [medium, medium]
    if since is not None:
        clauses.append("s.created_utc >= ?")
        params.append(since)
    if until is not None:
        clauses.append("s.created_utc < ?")
        params.append(until)
    if state == "pending":
        clauses.append("r.id IS NULL")
    elif state == "reviewed":
        clauses.append("r.id IS NOT NULL")
    elif state != "all":
        raise InputError(f"state must be pending, reviewed or all, not {state!r}")
    sql = f"""
        SELECT s.fullname, s.id, s.subreddit, s.title, s.author, s.permalink, s.created_utc,
               v.kind AS verdict, v.stated, v.predicted, v.confidence, v.model_version, v.n_images,
               r.decision, r.true_medium, r.moderator, r.created_at AS reviewed_at
        FROM verdicts v
        JOIN submissions s ON s.fullname = v.submission
        LEFT JOIN reviews r ON r.id =
            (SELECT MAX(r2.id) FROM reviews r2 WHERE r2.submission = v.submission)
        WHERE {' AND '.join(clauses)}
        ORDER BY s.created_utc DESC, s.fullname"""
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    rows = list(db.query(sql, params))
    for r in rows:
        r["permalink"] = permalink_url(r["permalink"])
        r["images"] = [i["path"] for i in _images(db, r["fullname"]) if i["status"] == "ok" and i["path"]]
    return rows


def submission_detail(db: Database, fullname: str) -> dict[str, Any]:
    """Everything recorded about one submission.

    Keys: ``submission`` (the row, without ``data_json``), ``verdict`` (row or None),
    ``images`` (rows, each with ``prediction``: None or a dict with predicted, confidence,
    model_version and ``probabilities`` {medium: probability}), ``actions`` (rows) and
    ``reviews`` (every decision, oldest first; the last one is in force) and ``reposts``
    (:func:`repost_findings`).
    Raises ``InputError`` for an unknown fullname.
    """
    subs = list(db.query("SELECT * FROM submissions WHERE fullname = ?", [fullname]))
    if not subs:
        raise InputError(f"no submission {fullname!r} in the database")
    sub = subs[0]
    sub.pop("data_json", None)
    sub["permalink_url"] = permalink_url(sub["permalink"])
    verdicts = list(db.query("SELECT * FROM verdicts WHERE submission = ?", [fullname]))
    preds = {p["image_id"]: p for p in db.query(
        "SELECT * FROM predictions WHERE submission = ? ORDER BY id", [fullname])}
    images = _images(db, fullname)
    for im in images:
        p = preds.get(im["id"])
        if p is not None:
            p = {"predicted": p["predicted"], "confidence": p["confidence"],
                 "model_version": p["model_version"],
                 "probabilities": json.loads(p["probabilities"]) if p["probabilities"] else {}}
        im["prediction"] = p
    actions = list(db.query("SELECT * FROM actions WHERE submission = ? ORDER BY kind", [fullname]))
    reviews = list(db.query("SELECT * FROM reviews WHERE submission = ? ORDER BY id", [fullname]))
    return {"submission": sub, "verdict": verdicts[0] if verdicts else None, "images": images,
            "actions": actions, "reviews": reviews, "reposts": repost_findings(db, fullname)}


def repost_findings(db: Database, fullname: str) -> list[dict[str, Any]]:
    """The submission's repost findings (``repost_findings``, :mod:`modbot.repost`), most
    severe kind first: kind, this post's image ``position``, the earlier post
    (``match_submission``, ``match_author``, ``match_artist``, ``match_created_utc`` Unix
    seconds, ``match_link`` https://redd.it/<id>), ``distance`` (bits of 256), ``mirrored``.
    Plus later posts that matched this one, with ``later = True`` (kind and distance theirs;
    ``later_created_utc`` when that post was made)."""
    order = "CASE kind WHEN 'known_original' THEN 0 WHEN 'other_author' THEN 1 ELSE 2 END"
    rows = [dict(r, later=False) for r in db.query(
        f"SELECT * FROM repost_findings WHERE submission = ? ORDER BY {order}, distance", [fullname])]
    rows += [dict(r, later=True) for r in db.query(
        "SELECT f.*, s.created_utc AS later_created_utc FROM repost_findings f "
        "LEFT JOIN submissions s ON s.fullname = f.submission "
        f"WHERE f.match_submission = ? ORDER BY {order}, f.distance", [fullname])]
    for r in rows:
        r["mirrored"] = bool(r["mirrored"])
        r["match_link"] = short_link(r["match_post_id"] or r["match_submission"].removeprefix("t3_"))
    return rows


def latest_review(db: Database, fullname: str) -> Review | None:
    """The decision in force for the submission, or None if it was never reviewed."""
    rows = list(db.query("SELECT * FROM reviews WHERE submission = ? ORDER BY id DESC LIMIT 1",
                         [fullname]))
    return Review(**rows[0]) if rows else None


def record_review(db: Database, fullname: str, decision: str, *, true_medium: str | None = None,
                  moderator: str | None = None, note: str | None = None,
                  now: float | None = None) -> tuple[Review, bool]:
    """Record a moderator's decision on a judged submission; returns (decision in force, created).

    ``decision``: ``confirm`` or ``dismiss``. ``true_medium`` (confirm only): a canonical medium
    (``MEDIA``); default the verdict's predicted medium. It must differ from the stated medium
    (that would be a dismissal). A dismissal's true medium is the stated medium, which must
    then be known. ``moderator`` defaults to :func:`default_moderator`; ``now`` to the current
    time (Unix seconds). ``created`` is False when the same decision (decision, true medium,
    moderator, note) was already in force: nothing is written.

    Raises ``InputError`` for an unknown submission, one without a verdict, an unknown decision
    or medium, a decision that contradicts itself (see above), or a moderator name that is not
    a Reddit username (:func:`check_moderator`).
    """
    if decision not in DECISIONS:
        raise InputError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    verdicts = list(db.query("SELECT * FROM verdicts WHERE submission = ?", [fullname]))
    if not verdicts:
        if db.execute("SELECT 1 FROM submissions WHERE fullname = ?", [fullname]).fetchone():
            raise InputError(f"{fullname} has no verdict (it was not classified): nothing to review")
        raise InputError(f"no submission {fullname!r} in the database")
    v = verdicts[0]
    stated = v["stated"]
    if decision == "confirm":
        medium = true_medium or v["predicted"]
        if medium is None:
            raise InputError(f"{fullname}: the model predicted nothing; give the true medium (--medium)")
        if medium not in MEDIA:
            raise InputError(f"unknown medium {medium!r} (one of {', '.join(MEDIA)})")
        if medium == stated:
            raise InputError(
                f"{fullname}: the true medium {medium} is the stated medium — that is a dismissal"
                + ("" if true_medium else " (the model predicted the stated medium; give --medium)"))
    else:
        if true_medium is not None and true_medium != stated:
            raise InputError("a dismissal's true medium is the stated medium; use confirm --medium")
        if stated is None or stated == UNKNOWN or stated not in MEDIA:
            raise InputError(f"{fullname}: no medium was stated, so there is nothing to dismiss "
                             "in favour of; use confirm --medium")
        medium = stated
    who = check_moderator((moderator or "").strip() or default_moderator())
    note = note.strip() if note and note.strip() else None
    current = latest_review(db, fullname)
    if current is not None and (current.decision, current.true_medium, current.moderator,
                                current.note) == (decision, medium, who, note):
        return current, False
    row = {
        "submission": fullname, "decision": decision, "true_medium": medium, "stated": stated,
        "predicted": v["predicted"], "confidence": v["confidence"], "verdict": v["kind"],
        "model_version": v["model_version"], "moderator": who, "note": note,
        "created_at": time.time() if now is None else now,
    }
    with write_transaction(db):
        new_id = db["reviews"].insert(row).last_pk
    return Review(id=int(new_id), **row), True


