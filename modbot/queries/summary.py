"""Summaries of a modbot database for ``modbot demo``, from SQL over the real schema."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database


@dataclass(frozen=True)
class MediumAgreement:
    """For one stated medium: submissions judged (match+mismatch), matches, and their share."""

    stated: str
    judged: int
    matches: int

    @property
    def agreement(self) -> float | None:
        """matches / judged (0–1), or None when nothing was judged."""
        return self.matches / self.judged if self.judged else None


def verdict_counts(db: Database) -> dict[str, int]:
    """Submissions by outcome: verdict kind, or the submission status when there is no verdict."""
    rows = db.execute(
        "SELECT COALESCE(v.kind, s.status) AS outcome, COUNT(*) FROM submissions s "
        "LEFT JOIN verdicts v ON v.submission = s.fullname GROUP BY outcome ORDER BY 2 DESC"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def skip_reasons(db: Database) -> dict[str, int]:
    """Skipped/failed/retry submissions by reason."""
    rows = db.execute(
        "SELECT status || ': ' || COALESCE(reason, '?'), COUNT(*) FROM submissions "
        "WHERE status IN ('skipped', 'failed', 'retry') GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def mismatches(db: Database, limit: int = 50) -> list[dict]:
    """Mismatched submissions, newest first: fullname, title, stated, predicted, confidence."""
    return list(db.query(
        "SELECT s.fullname, s.title, v.stated, v.predicted, v.confidence, s.permalink "
        "FROM verdicts v JOIN submissions s ON s.fullname = v.submission "
        "WHERE v.kind = 'mismatch' ORDER BY s.created_utc DESC LIMIT ?", [limit]))


def agreement_by_medium(db: Database) -> list[MediumAgreement]:
    """Per stated medium, how often the model agreed (verdicts match / (match + mismatch))."""
    rows = db.execute(
        "SELECT stated, SUM(kind IN ('match','mismatch')), SUM(kind = 'match') FROM verdicts "
        "GROUP BY stated ORDER BY stated"
    ).fetchall()
    return [MediumAgreement(r[0], int(r[1] or 0), int(r[2] or 0)) for r in rows]


def action_counts(db: Database) -> dict[str, int]:
    """Actions by ``kind:status`` (e.g. ``report:sent``, ``comment:dry_run``)."""
    rows = db.execute("SELECT kind || ':' || status, COUNT(*) FROM actions GROUP BY 1 ORDER BY 1")
    return {r[0]: r[1] for r in rows}
