"""``modbot.queries.review`` without the CLI, on a small hand-made database (the commands are
checked on a daemon-written one in ``tests/cli/test_review.py``)."""

from __future__ import annotations

import pytest

from modbot.errors import InputError
from modbot.queries.review import (
    flagged,
    record_review,
    resolve_fullname,
    submission_detail,
)
from modbot.record import open_database


@pytest.fixture
def db(tmp_path):
    db = open_database(tmp_path / "modbot.db")
    for i, (kind, stated, predicted) in enumerate([("mismatch", "painting", "digital"),
                                                   ("uncertain", "drawing", "painting"),
                                                   ("match", "digital", "digital")]):
        db["submissions"].insert({"fullname": f"t3_p{i}", "id": f"p{i}", "subreddit": "Art",
                                  "title": f"post {i}", "permalink": f"/r/Art/comments/p{i}/x/",
                                  "created_utc": 1_600_000_000 + i, "stated_medium": stated,
                                  "status": "done", "first_seen_at": 0, "updated_at": 0})
        db["verdicts"].insert({"submission": f"t3_p{i}", "kind": kind, "stated": stated,
                               "predicted": predicted, "confidence": 0.9, "created_at": 0})
    yield db
    db.conn.close()


def test_flagged_filters_by_kind_and_state(db):
    assert [r["fullname"] for r in flagged(db)] == ["t3_p0"]
    both = flagged(db, verdicts=("mismatch", "uncertain"))
    assert [r["fullname"] for r in both] == ["t3_p1", "t3_p0"]  # newest first
    assert both[1]["permalink"] == "https://www.reddit.com/r/Art/comments/p0/x/"
    with pytest.raises(InputError):
        flagged(db, state="later")


def test_resolve_fullname_accepts_ids_and_links(db):
    assert resolve_fullname(db, "p0") == "t3_p0"
    assert resolve_fullname(db, "https://www.reddit.com/r/Art/comments/p0/x/") == "t3_p0"
    with pytest.raises(InputError, match="no submission"):
        resolve_fullname(db, "zzz")


def test_record_review_is_idempotent_and_checked(db):
    rev, created = record_review(db, "t3_p0", "confirm", moderator="alice", now=5)
    assert created and rev.true_medium == "digital"
    again, created = record_review(db, "t3_p0", "confirm", moderator="alice", now=6)
    assert not created and again.id == rev.id
    assert flagged(db, state="pending") == []
    assert submission_detail(db, "t3_p0")["reviews"][0]["moderator"] == "alice"
    with pytest.raises(InputError, match="dismissal"):
        record_review(db, "t3_p0", "confirm", true_medium="painting", moderator="alice")
    with pytest.raises(InputError, match="decision"):
        record_review(db, "t3_p0", "maybe")
