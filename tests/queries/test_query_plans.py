"""Query plans of ``modbot report`` and ``modbot review`` on a small real database: the latest
review of a submission is found by an index probe (never a scan of ``reviews`` per row), and
the passes over submissions read indexes, not the rows (with their raw JSON).

Every statement the queries run is captured (``sqlite3`` trace callback, parameters inlined)
and explained with ``EXPLAIN QUERY PLAN``; the figures themselves are checked against
independent counts."""

from __future__ import annotations

import re

import pytest

from modbot.queries.report import Period, build_report
from modbot.queries.review import flagged, latest_review
from modbot.record import open_database


@pytest.fixture
def db(tmp_path):
    db = open_database(tmp_path / "modbot.db")
    kinds = ["match", "mismatch", "uncertain", "not_judged"]
    for i in range(40):
        fn = f"t3_p{i:03d}"
        db.execute(
            "INSERT INTO submissions (fullname, id, subreddit, title, author, created_utc, "
            "stated_medium, stated_source, status, attempts, first_seen_at, updated_at, "
            "data_json) VALUES (?, ?, 'Art', 't', ?, ?, 'painting', 'title', 'done', 1, 0, 0, '{}')",
            [fn, fn[3:], f"a{i % 3}", 1_700_000_000 + 86400 * i])
        db.execute("INSERT INTO verdicts (submission, kind, stated, predicted, confidence, "
                   "created_at) VALUES (?, ?, 'painting', 'digital', 0.9, 0)", [fn, kinds[i % 4]])
        if i % 4 == 1 and i < 30:  # mismatches reviewed: confirm, then (some) dismiss later
            db.execute("INSERT INTO reviews (submission, decision, true_medium, moderator, "
                       "created_at) VALUES (?, 'confirm', 'digital', 'mod_one', 1)", [fn])
            if i % 8 == 1:
                db.execute("INSERT INTO reviews (submission, decision, true_medium, moderator, "
                           "created_at) VALUES (?, 'dismiss', 'painting', 'mod_one', 2)", [fn])
    db.conn.commit()
    yield db
    db.conn.close()


def captured(db, call) -> list[str]:
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        db.conn.set_trace_callback(None)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")
            and "sqlite_master" not in s and "pragma" not in s.lower()]


def plans(db, statements: list[str]) -> list[tuple[str, list[str]]]:
    return [(s, [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + s)]) for s in statements]


def scans_reviews(plan: list[str]) -> bool:
    """A full scan of ``reviews`` (``SCAN r``/``SCAN reviews``) or a materialised
    ``GROUP BY`` over it (the old ``latest_reviews`` view) inside a query."""
    return any(re.match(r"(SCAN|MATERIALIZE|CO-ROUTINE) (r|r2|reviews|last|latest_reviews)\b", p)
               for p in plan)


def test_report_queries_probe_the_latest_review_and_read_indexes(db):
    report_statements = captured(db, lambda: build_report(db, Period(), now=0))
    explained = plans(db, report_statements)
    assert len(explained) >= 5
    for sql, plan in explained:
        assert not scans_reviews(plan), (sql, plan)
        if "reviews" in sql:
            assert any("idx_reviews_submission_id" in p for p in plan), (sql, plan)
        # any pass over every submission reads an index, never the table rows
        for p in plan:
            if p.startswith("SCAN s"):
                assert "COVERING INDEX" in p, (sql, plan)
    facts = [plan for sql, plan in explained if "s.stated_raw IS NOT NULL" in sql]
    assert facts and any("idx_submissions_report" in p for p in facts[0])
    assert not any("TEMP B-TREE" in p for p in facts[0])  # counted in Python, no sort of 1M rows


def test_report_figures_use_the_decision_in_force(db):
    report = build_report(db, Period(), now=0)
    overall = report["flag_precision"]["overall"]
    # mismatches i = 1, 5, 9, ..., 37 (10); reviewed: i < 30 (8), of which i % 8 == 1
    # (1, 9, 17, 25: 4) were dismissed last
    assert (overall["flagged"], overall["reviewed"], overall["confirmed"], overall["dismissed"]) \
        == (10, 8, 4, 4)
    assert report["totals"]["submissions"] == 40
    assert report["totals"]["by_verdict"] == {"match": 10, "mismatch": 10, "not_judged": 10,
                                              "uncertain": 10}
    assert sum(w["reviewed"] for w in report["weekly"]) == 8
    top = {a["author"]: a for a in report["top_authors"]}
    assert sum(a["mismatch"] for a in top.values()) == 10
    assert sum(a["posts"] for a in top.values()) == 40


def test_review_list_and_show_probe_the_latest_review(db):
    for state in ("all", "pending", "reviewed"):
        statements = captured(db, lambda: flagged(db, state=state, limit=5))
        for sql, plan in plans(db, statements):
            assert not scans_reviews(plan), (sql, plan)
    rows = flagged(db, state="reviewed", limit=None)
    assert len(rows) == 8
    assert {r["decision"] for r in rows if r["fullname"] == "t3_p009"} == {"dismiss"}
    assert latest_review(db, "t3_p009").decision == "dismiss"
    assert latest_review(db, "t3_p005").decision == "confirm"
    for sql, plan in plans(db, captured(db, lambda: latest_review(db, "t3_p009"))):
        assert not scans_reviews(plan), (sql, plan)


def test_latest_reviews_view_keeps_its_rows_without_a_group_by(db):
    rows = db.execute("SELECT submission, decision FROM latest_reviews ORDER BY submission").fetchall()
    assert len(rows) == 8 and dict(rows)["t3_p017"] == "dismiss"
    plan = [r[3] for r in db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM latest_reviews WHERE submission = 't3_p001'")]
    assert not scans_reviews(plan), plan
