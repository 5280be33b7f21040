"""Integration: the real daemon, through unmodified praw, against the sandbox over loopback HTTP,
with the shipped model on real images and a real SQLite file."""

from __future__ import annotations

import pytest

import json

from support import make_daemon, run_until_recorded


def by_status(daemon):
    return {r[0]: (r[1], r[2]) for r in daemon.store.db.execute(
        "SELECT fullname, status, reason FROM submissions")}


def fullname(post):
    return post.get("name") or f"t3_{post['id']}"


def test_stream_records_every_submission_once(tmp_path, sandbox, sample, shipped_classifier):
    posts, _ = sample
    daemon = make_daemon(sandbox, tmp_path, shipped_classifier)
    run_until_recorded(daemon, sandbox)
    rows = by_status(daemon)
    assert set(rows) == {fullname(p) for p in posts}
    # one row per submission, each tried once
    assert daemon.store.db.execute("SELECT MAX(attempts) FROM submissions").fetchone()[0] == 1

    for p in posts:
        status, reason = rows[fullname(p)]
        if p.get("is_video"):
            assert (status, reason) == ("skipped", "video")
        elif p.get("is_self"):
            assert status == "skipped"
    statuses = {s for s, _ in rows.values()}
    assert "done" in statuses and "skipped" in statuses
    # the broken image and the HTML page are recorded with specific reasons, not lost
    image_reasons = {r[0] for r in daemon.store.db.execute("SELECT status FROM images WHERE status != 'ok'")}
    assert {"decode_failed", "not_an_image"} <= image_reasons

    # every judged submission has predictions with the model version and a distribution
    for probs, version in daemon.store.db.execute("SELECT probabilities, model_version FROM predictions"):
        p = json.loads(probs)
        assert abs(sum(p.values()) - 1.0) < 1e-3
        assert version == shipped_classifier.version
    # a gallery contributes several images to one verdict
    assert daemon.store.db.execute("SELECT MAX(n_images) FROM verdicts").fetchone()[0] >= 2
    # dry-run (the default): intents recorded, nothing sent to Reddit
    mismatches = daemon.store.db.execute("SELECT COUNT(*) FROM verdicts WHERE kind='mismatch'").fetchone()[0]
    assert mismatches >= 1
    assert daemon.store.db.execute("SELECT COUNT(*) FROM actions WHERE status='dry_run'").fetchone()[0] == 2 * mismatches
    assert sandbox.writes == []
    daemon.close()


def test_restart_does_not_reprocess_and_catches_up(tmp_path, sample, shipped_classifier):
    from modbot.sandbox.server import SandboxServer

    posts, images = sample
    with SandboxServer(posts, images, released=20) as server:
        first = make_daemon(server, tmp_path, shipped_classifier)
        run_until_recorded(first, server)
        first.close()
        # posts made while the daemon was down
        server.release(10)
        second = make_daemon(server, tmp_path, shipped_classifier)
        stats = run_until_recorded(second, server)
        assert stats.processed == 10
        assert second.store.db.execute("SELECT MAX(attempts) FROM submissions").fetchone()[0] == 1
        assert second.store.db["submissions"].count == 30
        second.close()


def test_enabled_actions_send_exactly_one_report_and_comment_per_mismatch(tmp_path, sandbox, shipped_classifier):
    daemon = make_daemon(sandbox, tmp_path, shipped_classifier, act=True)
    run_until_recorded(daemon, sandbox)
    mismatched = {r[0] for r in daemon.store.db.execute("SELECT submission FROM verdicts WHERE kind='mismatch'")}
    assert mismatched
    reports = [w.fullname for w in sandbox.writes if w.kind == "report"]
    comments = [w.fullname for w in sandbox.writes if w.kind == "comment"]
    assert sorted(reports) == sorted(mismatched)
    assert sorted(comments) == sorted(mismatched)
    sent = daemon.store.db.execute("SELECT COUNT(*) FROM actions WHERE status='sent'").fetchone()[0]
    assert sent == 2 * len(mismatched)
    for w in sandbox.writes:
        if w.kind == "report":
            assert len(w.text) <= 100
    daemon.close()

    # a restart over the same database acts on nothing again
    again = make_daemon(sandbox, tmp_path, shipped_classifier, act=True)
    run_until_recorded(again, sandbox)
    assert len(sandbox.writes) == 2 * len(mismatched)
    again.close()


@pytest.mark.slow
def test_crash_between_intent_and_call_never_resends(tmp_path, sandbox, shipped_classifier):
    """An action left in 'intent' (the process died mid-call) is settled, never sent again."""
    daemon = make_daemon(sandbox, tmp_path, shipped_classifier, act=True)
    run_until_recorded(daemon, sandbox)
    victim = daemon.store.db.execute(
        "SELECT submission FROM actions WHERE kind='report' AND status='sent' LIMIT 1").fetchone()[0]
    # simulate a crash right after the intent was committed: status back to intent, post unfinished
    daemon.store.db.execute("UPDATE actions SET status='intent' WHERE submission=?", [victim])
    daemon.store.db.execute("UPDATE submissions SET status='processing' WHERE fullname=?", [victim])
    n_writes = len(sandbox.writes)
    daemon.close()

    again = make_daemon(sandbox, tmp_path, shipped_classifier, act=True)
    run_until_recorded(again, sandbox)
    assert len(sandbox.writes) == n_writes
    statuses = dict(again.store.db.execute(
        "SELECT kind, status FROM actions WHERE submission=?", [victim]).fetchall())
    assert statuses == {"report": "unknown", "comment": "sent"}  # the comment was found on Reddit
    assert again.store.status_of(victim) == "done"
    again.close()
