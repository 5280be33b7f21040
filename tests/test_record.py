"""The store on a real SQLite file: migrations, at-most-once action claims, retries."""

import sqlite3

from modbot.act import Actor, report_reason
from modbot.config import ActionsConfig
from modbot.domain import ImageRef, Post, Prediction, StatedMedium, Verdict, VerdictKind
from modbot.record import Store


def make_post(i=1, title="Dusk, me, oil on canvas, 2020"):
    data = {"id": f"abc{i}", "name": f"t3_abc{i}", "title": title, "subreddit": "Art"}
    return Post(id=f"abc{i}", fullname=f"t3_abc{i}", subreddit="Art", title=title, author="someone",
                permalink=f"/r/Art/comments/abc{i}/", url="https://i.redd.it/x.jpg", created_utc=1.0,
                link_flair_text=None, data=data)


def test_schema_and_wal(tmp_path):
    store = Store(tmp_path / "m.db")
    tables = set(store.db.table_names())
    assert {"submissions", "images", "predictions", "verdicts", "actions", "_sqlite_migrations"} <= tables
    assert {"decisions", "flagged"} <= set(store.db.view_names())
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    # reopening applies nothing twice
    again = Store(tmp_path / "m.db")
    names = [r[0] for r in again.db.execute("SELECT name FROM _sqlite_migrations")]
    assert len(names) == len(set(names))
    assert {"m001_initial", "m002_views"} <= set(names)


def test_begin_clears_an_unfinished_attempt_but_keeps_actions(tmp_path):
    store = Store(tmp_path / "m.db")
    post = make_post()
    stated = StatedMedium("painting", "title", "oil on canvas", "oil on canvas")
    assert store.begin(post, stated) == 1
    img = store.record_image(post.fullname, 0, ImageRef("http://x/1.jpg", "direct"), status="ok")
    store.record_predictions(post.fullname, [img], [Prediction({"painting": 0.9, "digital": 0.1}, "v1")])
    assert store.claim_action(post.fullname, "report", status="intent", text="r")
    assert store.unfinished() == [post.fullname]
    # crash → restart: second attempt starts clean, the action claim survives
    assert store.begin(post, stated) == 2
    assert store.db["images"].count == 0 and store.db["predictions"].count == 0
    assert store.action_status(post.fullname, "report") == "intent"
    assert store.dangling_actions() == [(post.fullname, "report")]


def test_action_claim_is_unique(tmp_path):
    store = Store(tmp_path / "m.db")
    post = make_post()
    store.begin(post, StatedMedium("digital", "title"))
    assert store.claim_action(post.fullname, "comment", status="intent", text="a") is True
    assert store.claim_action(post.fullname, "comment", status="intent", text="b") is False
    # even raw SQL cannot add a second one
    try:
        store.db.execute("INSERT INTO actions (submission, kind, status, created_at) VALUES (?, 'comment', 'x', 0)",
                         [post.fullname])
        raise AssertionError("duplicate action accepted")
    except sqlite3.IntegrityError:
        pass


def test_dry_run_actor_records_intent_and_never_acts_twice(tmp_path):
    store = Store(tmp_path / "m.db")
    post = make_post()
    store.begin(post, StatedMedium("digital", "title"))
    verdict = Verdict(VerdictKind.MISMATCH, "digital", "painting", 0.93, "x")
    actor = Actor(reddit=None, store=store, config=ActionsConfig())  # dry-run never touches reddit
    first = actor.act(post, verdict, "v1")
    assert [(o.kind, o.status) for o in first] == [("report", "dry_run"), ("comment", "dry_run")]
    second = actor.act(post, verdict, "v1")
    assert {o.status for o in second} == {"already_recorded"}
    assert store.db["actions"].count == 2
    match = Verdict(VerdictKind.MATCH, "painting", "painting", 0.9, "x")
    assert actor.act(make_post(2), match, "v1") == []


def test_report_reason_fits_reddit_limit():
    long_title = "x" * 300
    reason = report_reason("{title}", make_post(title=long_title),
                           Verdict(VerdictKind.MISMATCH, "digital", "painting", 0.9, ""), "v1")
    assert len(reason) == 100 and reason.endswith("…")


def test_retry_due(tmp_path):
    store = Store(tmp_path / "m.db")
    post = make_post()
    store.begin(post, StatedMedium("digital", "title"))
    store.finish(post.fullname, "retry", reason="http_status", next_attempt_at=100.0)
    assert store.due_retries(now=50.0) == []
    assert store.due_retries(now=150.0) == [post.fullname]
    assert store.stored_data(post.fullname)["title"] == post.title


def test_transaction_groups_calls_in_one_commit_and_rolls_back_together(tmp_path):
    """Rows written inside ``Store.transaction`` appear to other connections all at once, when
    it ends; an exception leaving it leaves none of them (each call alone is a savepoint)."""
    path = tmp_path / "m.db"
    store = Store(path)
    post = make_post()
    store.begin(post, StatedMedium("painting", "title"))
    other = sqlite3.connect(str(path))

    def visible() -> tuple[int, int, int]:
        return tuple(other.execute(f"SELECT COUNT(*) FROM {t} WHERE submission = ?",
                                   [post.fullname]).fetchone()[0]
                     for t in ("images", "predictions", "verdicts"))

    verdict = Verdict(VerdictKind.MISMATCH, "painting", "digital", 0.9, "improbable")
    with store.transaction():
        img = store.record_image(post.fullname, 0, ImageRef("http://x/1.jpg", "direct"))
        store.record_predictions(post.fullname, [img], [Prediction({"painting": 0.1, "digital": 0.9}, "v1")])
        store.record_verdict(post.fullname, verdict, model_version="v1", n_images=1)
        assert visible() == (0, 0, 0)  # nothing committed yet
    assert visible() == (1, 1, 1)

    try:
        with store.transaction():
            store.record_image(post.fullname, 1, ImageRef("http://x/2.jpg", "direct"))
            store.record_verdict(post.fullname, Verdict(VerdictKind.MATCH, "painting", "painting",
                                                        0.8, "ok"), model_version="v2", n_images=2)
            raise RuntimeError("the process fails mid-post")
    except RuntimeError:
        pass
    assert visible() == (1, 1, 1)
    assert other.execute("SELECT kind, model_version, n_images FROM verdicts").fetchall() == [
        ("mismatch", "v1", 1)]
    other.close()
    store.close()


def test_begin_and_verdict_update_in_place_keeping_other_columns(tmp_path):
    """``begin`` again (a retry) updates the submission's row: attempts counted, first_seen_at
    kept; a second verdict replaces the first."""
    store = Store(tmp_path / "m.db")
    post = make_post()
    assert store.begin(post, StatedMedium("painting", "title"), now=100.0) == 1
    store.finish(post.fullname, "retry", reason="timeout", next_attempt_at=150.0)
    assert store.begin(post, StatedMedium("digital", "flair"), now=200.0) == 2
    row = store.db.execute("SELECT attempts, first_seen_at, updated_at, status, reason, "
                           "next_attempt_at, stated_medium, title FROM submissions").fetchall()
    assert row == [(2, 100.0, 200.0, "processing", None, None, "digital", post.title)]
    store.record_verdict(post.fullname, Verdict(VerdictKind.MATCH, "digital", "digital", 0.9, "ok"),
                         model_version="v1", n_images=1)
    store.record_verdict(post.fullname, Verdict(VerdictKind.UNCERTAIN, "digital", "painting", 0.5,
                                                "ranks"), model_version="v2", n_images=2)
    assert store.db.execute("SELECT kind, predicted, model_version, n_images FROM verdicts"
                            ).fetchall() == [("uncertain", "painting", "v2", 2)]
    store.close()
