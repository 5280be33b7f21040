"""Moderators stay on Reddit: mod notes, removal with a reason and a removal message, quiet
(distinguished, stickied, locked) comments and the modmail digest — the real daemon, through
unmodified praw, against the sandbox; each at most once per event across restarts, and only
recorded (``dry_run``) when switched to dry-run."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import praw
import pytest
from support import FLAG_EVERY_DISAGREEMENT, StubClassifier, all_final, fast_daemon, image_post, run_until, sandbox_reddit

from modbot.config import Config
from modbot.digest import DigestJob, compose, report_day, send_digest
from modbot.errors import ConfigError
from modbot.queries.report import Period, build_report
from modbot.sandbox.server import SandboxServer

GOOD = (Path(__file__).resolve().parent / "data" / "images" / "rgb.jpg").read_bytes()
#: The stub classifier says photography (0.97): an "oil on canvas" title is a mismatch.
MISMATCH = image_post("mis001", "good.jpg", author="oil_painter")
REASON_ID = "18rbsx2xyccdn"  # "Wrong medium" among the sandbox's DEFAULT_REMOVAL_REASONS
TOOLS = {"notes": "on", "note_label": "SPAM_WATCH", "remove": "on", "remove_threshold": 0.95,
         "removal_reason": "Wrong medium", "removal_message": "Removed: looks like {predicted}.",
         "distinguish": True, "sticky": True, "lock": True}


def kinds(server, ok=True):
    return Counter(w.kind for w in server.writes if w.ok is ok)


def actions(daemon):
    return dict(daemon.store.db.execute("SELECT kind, status FROM actions").fetchall())


def report_cli(tmp_path):
    """``modbot report`` (table output) on the test's database."""
    from click.testing import CliRunner

    from modbot.cli import main

    res = CliRunner().invoke(main, ["report", "--db", str(tmp_path / "modbot.db")],
                             env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def run_all(server, tmp_path, **kwargs):
    daemon = fast_daemon(server, tmp_path, classifier=StubClassifier(), **kwargs)
    run_until(daemon, lambda: all_final(daemon, server), timeout_s=30)
    return daemon


# --------------------------------------------------------------------------- sandbox, via praw
def test_sandbox_serves_moderator_tools_through_praw():
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        reddit = sandbox_reddit(server)
        sub = reddit.subreddit("Art")
        note = sub.mod.notes.create(label="SPAM_WATCH", note="n1", redditor="oil_painter",
                                    thing=reddit.submission(id="mis001"))
        assert note.note == "n1" and note.label == "SPAM_WATCH" and note.id.startswith("ModNote_")
        reasons = {r.title: r.id for r in sub.mod.removal_reasons}
        assert reasons["Wrong medium"] == REASON_ID
        submission = reddit.submission(id="mis001")
        comment = submission.reply(body="hello")
        comment.mod.distinguish(how="yes", sticky=True)
        comment.mod.lock()
        submission.mod.remove(reason_id=REASON_ID)
        assert submission.mod.send_removal_message(message="why", title="t", type="private") is None
        conv = sub.modmail.create(subject="S", body="B", recipient=server.username)
        assert conv.subject == "S" and conv.is_internal
        fresh = reddit.submission(id="mis001")
        shown = next(c for c in fresh.comments if c.fullname == comment.fullname)
        assert shown.distinguished == "moderator" and shown.stickied and shown.locked
        assert fresh.removed_by_category == "moderator"
        assert kinds(server) == Counter(note=1, comment=1, distinguish=1, lock=1, remove=1,
                                        removal_reason=1, removal_message=1, modmail=1)
        # Reddit's refusals: an over-long note, a removal message for a post not removed
        with pytest.raises(praw.exceptions.RedditAPIException, match="INVALID_NOTE"):
            sub.mod.notes.create(note="x" * 251, redditor="oil_painter",
                                 thing=reddit.submission(id="mis001"))
        assert kinds(server, ok=False) == Counter(note=1)


# --------------------------------------------------------------------------- the daemon acts
def test_every_tool_once_per_mismatch(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = run_all(server, tmp_path, act=True, actions=TOOLS)
        assert actions(daemon) == {k: "sent" for k in (
            "report", "comment", "remove", "removal_message", "note:report", "note:comment",
            "note:remove")}
        assert kinds(server) == Counter(note=3, report=1, comment=1, distinguish=1, lock=1,
                                        remove=1, removal_reason=1, removal_message=1)
        notes = [w for w in server.writes if w.kind == "note"]
        assert {w.fullname for w in notes} == {"t3_mis001"}
        assert {w.extra["user"] for w in notes} == {"oil_painter"}
        assert {w.extra["label"] for w in notes} == {"SPAM_WATCH"}
        assert sorted(w.text.split(":")[0] for w in notes) == [
            "modbot comment", "modbot remove", "modbot report"]
        reason = next(w for w in server.writes if w.kind == "removal_reason")
        assert reason.text == REASON_ID
        comment = next(w for w in server.writes if w.kind == "comment")
        assert comment.text.endswith("modbot reads no replies.)")  # the distinguished footer
        sticky = next(w for w in server.writes if w.kind == "distinguish")
        assert sticky.extra == {"how": "yes", "sticky": "True"}
        daemon.close()
        assert "On Reddit: notes 3 sent, removals 1 sent, digests 0 sent" in report_cli(tmp_path)
        # a restart finds everything settled: nothing is sent again
        again = run_all(server, tmp_path, act=True, actions=TOOLS)
        assert kinds(server)["note"] == 3 and kinds(server)["remove"] == 1
        again.close()


def test_below_the_removal_threshold_nothing_is_removed(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = run_all(server, tmp_path, act=True,
                         actions={**TOOLS, "remove_threshold": 0.99})
        assert "remove" not in actions(daemon) and kinds(server)["remove"] == 0
        assert kinds(server)["note"] == 2
        daemon.close()


def test_dry_run_records_what_would_be_sent_and_sends_nothing(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        tools = {**TOOLS, "notes": "on", "remove": "dry_run"}
        daemon = run_all(server, tmp_path, act=False, actions=tools)
        assert actions(daemon) == {k: "dry_run" for k in (
            "report", "comment", "remove", "removal_message", "note:report", "note:comment",
            "note:remove")}
        texts = dict(daemon.store.db.execute("SELECT kind, text FROM actions").fetchall())
        assert texts["removal_message"] == "Removed: looks like photography."
        assert texts["note:report"].startswith("modbot report: looks like photography (97%)")
        assert server.writes == []
        daemon.close()


def test_all_off_by_default_adds_no_rows(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = run_all(server, tmp_path, act=True)
        assert actions(daemon) == {"report": "sent", "comment": "sent"}
        assert kinds(server) == Counter(report=1, comment=1)
        comment = next(w for w in server.writes if w.kind == "comment")
        assert "reads no replies" not in comment.text  # no footer on an undistinguished comment
        daemon.close()


def test_claimed_but_unsent_note_is_never_sent_after_a_restart(tmp_path):
    """A crash after claiming ``note:report`` (before Reddit was called) and before the other
    notes: on restart the claim becomes ``unknown`` (never sent) and the missing notes are sent
    exactly once."""
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        first = run_all(server, tmp_path, act=True, actions={**TOOLS, "notes": "off"})
        assert kinds(server)["note"] == 0
        db = first.store.db
        db.execute("UPDATE submissions SET status = 'processing' WHERE fullname = 't3_mis001'")
        first.store.claim_action("t3_mis001", "note:report", status="intent", text="claimed")
        first.close()
        second = run_all(server, tmp_path, act=True, actions=TOOLS)
        assert actions(second)["note:report"] == "unknown"
        assert actions(second)["note:comment"] == actions(second)["note:remove"] == "sent"
        assert kinds(server) == Counter(note=2, report=1, comment=1, distinguish=1, lock=1,
                                        remove=1, removal_reason=1, removal_message=1)
        second.close()
        third = run_all(server, tmp_path, act=True, actions=TOOLS)
        assert kinds(server)["note"] == 2
        third.close()


@pytest.mark.slow
def test_interrupted_removal_is_settled_from_reddit_and_never_resent(tmp_path):
    """A removal claimed (``intent``) when the process died: found removed by modbot on
    Reddit → ``sent`` (its follow-ups then go out once); not removed → ``unknown``, not sent."""
    posts = [MISMATCH, image_post("mis002", "good.jpg", author="oil_painter")]
    with SandboxServer(posts, {"good.jpg": GOOD}, released=2) as server:
        first = run_all(server, tmp_path, act=True, actions={**TOOLS, "notes": "off"})
        assert kinds(server)["remove"] == 2
        db = first.store.db
        db.execute("UPDATE actions SET status = 'intent' WHERE kind = 'remove' "
                   "AND submission = 't3_mis001'")
        db.execute("DELETE FROM actions WHERE submission = 't3_mis002' AND kind != 'report'")
        server._by_id["mis002"].removed = False  # as if the removal never reached Reddit
        first.store.claim_action("t3_mis002", "remove", status="intent", text="claimed")
        db.execute("UPDATE submissions SET status = 'processing'")
        first.close()
        second = run_all(server, tmp_path, act=True, actions=TOOLS)
        rows = {(r[0], r[1]): r[2] for r in second.store.db.execute(
            "SELECT submission, kind, status FROM actions")}
        assert rows[("t3_mis001", "remove")] == "sent"
        assert rows[("t3_mis001", "note:remove")] == "sent"
        assert rows[("t3_mis002", "remove")] == "unknown"
        assert ("t3_mis002", "note:remove") not in rows
        writes = Counter((w.kind, w.fullname) for w in server.writes if w.ok)
        assert writes[("remove", "t3_mis001")] == writes[("remove", "t3_mis002")] == 1
        assert writes[("removal_message", "t3_mis001")] == 1
        second.close()


def test_own_report_on_reddit_does_not_stand_for_a_removal(tmp_path):
    """Resumed after the report was sent: modbot's report on Reddit means "report already
    sent", not "removed" — the removal is still made, once."""
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        first = run_all(server, tmp_path, act=True, actions={**TOOLS, "remove": "off"})
        first.store.db.execute("UPDATE submissions SET status = 'processing'")
        first.close()
        second = run_all(server, tmp_path, act=True, actions=TOOLS)
        assert actions(second)["remove"] == "sent"
        assert kinds(server)["remove"] == kinds(server)["report"] == 1
        second.close()


def test_unknown_removal_reason_fails_the_removal_without_removing(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = run_all(server, tmp_path, act=True,
                         actions={**TOOLS, "removal_reason": "No such reason"})
        assert actions(daemon)["remove"] == "failed"
        assert "removal_message" not in actions(daemon) and "note:remove" not in actions(daemon)
        assert kinds(server)["remove"] == 0
        daemon.close()


# --------------------------------------------------------------------------- the digest
def flagged_yesterday(server, tmp_path):
    """Process the mismatch (dry-run), then date its verdict a day back."""
    daemon = run_all(server, tmp_path, act=False)
    daemon.store.db.execute("UPDATE verdicts SET created_at = created_at - 86400")
    return daemon


def digest_config(daemon, mode="on"):
    return daemon.config.replace(digest={"digest": mode})


def test_digest_sent_once_per_day_across_restarts(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = flagged_yesterday(server, tmp_path)
        config = digest_config(daemon)
        first = DigestJob(config, daemon.reddit).run_once()
        assert first.status == "sent" and first.day == report_day(time.time())[0]
        assert DigestJob(config, daemon.reddit).run_once().status == "already_recorded"
        mail = [w for w in server.writes if w.kind == "modmail"]
        assert len(mail) == 1 and mail[0].ok
        assert mail[0].extra["subject"] == f"modbot digest for {first.day}"
        assert mail[0].fullname == server.username  # modbot's own account: a mod discussion
        assert "Dusk, me, oil on canvas, 2020" in mail[0].text and "(97%)" in mail[0].text
        assert "/r/Art/comments/mis001/" in mail[0].text
        report = build_report(daemon.store.db, Period())
        assert report["actions"]["digest"] == {"sent": 1}
        daemon.close()
        assert "On Reddit: notes 0 sent, removals 0 sent, digests 1 sent" in report_cli(tmp_path)


def test_digest_started_by_the_daemon_and_not_resent_after_restart(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = flagged_yesterday(server, tmp_path)
        daemon.close()
        for _ in range(2):  # two daemon runs (a restart): the job runs at each start
            d = fast_daemon(server, tmp_path, classifier=StubClassifier(), digest={"digest": "on"})
            job = DigestJob(d.config, d.reddit)
            d.jobs = (job,)
            run_until(d, lambda j=job: bool(j.outcomes), timeout_s=30)
            d.close()
        assert kinds(server)["modmail"] == 1
        assert job.outcomes[0].status == "already_recorded"


def test_digest_claimed_but_unsent_is_never_sent(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = flagged_yesterday(server, tmp_path)
        day = report_day(time.time())[0]
        assert daemon.store.claim_digest(day, status="intent", subreddit="Art", recipient="",
                                         subject="s", body="b", n_flags=1)
        outcome = DigestJob(digest_config(daemon), daemon.reddit).run_once()
        assert outcome.status == "already_recorded"
        assert daemon.store.digest_status(day) == "unknown"
        assert kinds(server)["modmail"] == 0
        daemon.close()


def test_digest_dry_run_and_nothing_to_say(tmp_path):
    with SandboxServer([MISMATCH], {"good.jpg": GOOD}, released=1) as server:
        daemon = flagged_yesterday(server, tmp_path)
        quiet = send_digest(daemon.store, daemon.reddit, digest_config(daemon),
                            now=time.time() + 5 * 86400)
        assert quiet.status == "nothing" and daemon.store.digest_status(quiet.day) is None
        dry = send_digest(daemon.store, daemon.reddit, digest_config(daemon, "dry_run"),
                          now=time.time())
        assert dry.status == "dry_run" and daemon.store.digest_status(dry.day) == "dry_run"
        assert server.writes == []
        daemon.close()


def test_compose_lists_flags_reviews_and_precision():
    precision = {"overall": {"precision": 0.75, "confirmed": 3, "reviewed": 4, "unreviewed": 2}}
    flags = [{"title": f"T{i} [x]", "permalink": f"/r/Art/comments/p{i}/t/", "author": "a",
              "predicted": "digital", "confidence": 0.9, "stated": "painting",
              "actions": "report:sent", "decision": None} for i in range(3)]
    body = compose("2026-01-01", flags, {"confirm": 1, "dismiss": 0}, precision, max_items=2)
    assert body is not None and "T0 (x)" in body and "T2" not in body and "1 more" in body
    assert "75%" in body and "1 confirmed" in body
    assert compose("2026-01-01", [], {"confirm": 0, "dismiss": 0}, precision, 5) is None


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize(("section", "values"), [
    ("actions", {"notes": "yes"}), ("actions", {"remove": "sometimes"}),
    ("actions", {"note_label": "FRIEND"}), ("actions", {"remove_threshold": 1.5}),
    ("actions", {"removal_message_type": "pm"}), ("actions", {"note_template": "{nope}"}),
    ("actions", {"comment_footer": "{oops"}), ("digest", {"digest": "daily"}),
    ("digest", {"cron": "every day"}), ("digest", {"subject": "{month}"}),
    ("digest", {"max_items": 0}),
])
def test_bad_values_are_refused(section, values):
    with pytest.raises(ConfigError):
        Config().replace(**{section: values})


def test_new_features_are_off_by_default():
    c = Config()
    assert (c.actions.notes, c.actions.remove, c.digest.digest) == ("off", "off", "off")
    assert not (c.actions.distinguish or c.actions.sticky or c.actions.lock)


# --------------------------------------------------------------------------- kill -9, real process
def _run(config, server, tmp_path):
    """A ``modbot run`` subprocess (shipped or test model) with its JSON log lines collected."""
    import json
    import subprocess
    import threading

    from support import REPO, modbot_run_cmd, run_env

    proc = subprocess.Popen(modbot_run_cmd(config), cwd=str(REPO), env=run_env(server),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    events: list[dict] = []

    def read() -> None:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
    threading.Thread(target=read, daemon=True).start()
    return proc, events


def _wait(proc, events, predicate, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(predicate(e) for e in list(events)):
            return
        assert proc.poll() is None, events[-10:]
        time.sleep(0.05)
    raise AssertionError(f"not reached; last events: {events[-10:]}")


@pytest.mark.slow
def test_kill_9_and_restart_never_doubles_notes_removals_or_digests(tmp_path):
    """The real ``modbot run``, every tool on, SIGKILLed after acting and again after sending
    the digest: after each restart Reddit has exactly one note per action taken, one removal
    per removed mismatch and one digest for the day."""
    import signal
    import sqlite3

    from support import write_run_config

    posts = [image_post("kil001", "good.jpg"),
             image_post("kil002", "good.jpg", title="Rain, me, digital, 2021"),
             image_post("kil003", "good.jpg", title="Field, me, graphite drawing, 2022")]
    with SandboxServer(posts, {"good.jpg": GOOD}, released=3) as server:
        config = write_run_config(tmp_path / "modbot.toml", server, tmp_path, act=True,
                                  judge=FLAG_EVERY_DISAGREEMENT,
                                  actions={**TOOLS, "remove_threshold": 0.0},
                                  digest={"digest": "on"})
        db = tmp_path / "modbot.db"
        proc, events = _run(config, server, tmp_path)
        _wait(proc, events, lambda e: e.get("event") == "digest_run")  # nothing to say yet
        _wait(proc, events, lambda e: sum(x.get("event") == "submission" for x in events) >= 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with sqlite3.connect(db) as conn:  # the flags become yesterday's
            conn.execute("UPDATE verdicts SET created_at = created_at - 86400")
        for expected in ("sent", "already_recorded"):
            proc, events = _run(config, server, tmp_path)
            _wait(proc, events, lambda e, s=expected: e.get("event") == "digest_run"
                  and e.get("status") == s)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        with sqlite3.connect(db) as conn:
            mismatches = {r[0] for r in conn.execute(
                "SELECT submission FROM verdicts WHERE kind = 'mismatch'")}
            taken = conn.execute("SELECT COUNT(*) FROM actions WHERE kind IN "
                                 "('report', 'comment', 'remove') AND status = 'sent'").fetchone()[0]
        assert mismatches, "the scenario needs at least one mismatch"
        writes = Counter((w.kind, w.fullname) for w in server.writes if w.ok)
        for fullname in mismatches:
            for kind in ("report", "comment", "remove", "removal_message", "removal_reason"):
                assert writes[(kind, fullname)] == 1, (kind, fullname, writes)
            assert writes[("note", fullname)] == 3, (fullname, writes)
        assert kinds(server)["note"] == taken == 3 * len(mismatches)
        assert kinds(server)["modmail"] == 1


def test_modes_read_true_and_false_as_on_and_off():
    c = Config().replace(actions={"notes": True, "remove": False}, digest={"digest": True})
    assert (c.actions.notes, c.actions.remove, c.digest.digest) == ("on", "off", "on")
