"""Moderators' actions on Reddit become labels (``modbot.learning.modlog``): the real daemon
judges posts in the sandbox, a second moderator account approves, removes and re-flairs them
through unmodified praw, and the mod log read turns each action into exactly one label — shown
by ``modbot review show``, counted by ``modbot report``, read by retraining — never twice,
across restarts too, on the request budget."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner
from support import (
    StubClassifier,
    all_final,
    fast_budget,
    fast_daemon,
    image_post,
    run_until,
    sandbox_reddit,
)

from modbot.sandbox.server import SandboxServer

HUMAN, HUMAN_PW = "human_mod", "pw-human-mod"
WRONG_MEDIUM = "18rbsx2xyccdn"      # the sandbox's "Wrong medium" removal reason
NOT_OC = "18rbt3ktwecgd"            # "Not original content"
IMAGE = "pacs_art_painting_giraffe_pic_018.jpg"
# p1..p6 state painting; the stub classifier says photography (97 %): all mismatches
POSTS = [image_post(f"p{i}", IMAGE, title=f"Work {i}, me, oil on canvas, 2020") for i in range(1, 7)]


@pytest.fixture
def judged(tmp_path, sample):
    """(server, daemon's database path, config): six posts judged by the daemon; a second
    moderator account ``human_mod`` exists."""
    _, images = sample
    with SandboxServer(POSTS, images, released=len(POSTS)) as server:
        server.moderator_accounts = {HUMAN: HUMAN_PW}
        daemon = fast_daemon(server, tmp_path, classifier=StubClassifier("photography", 0.97))
        try:
            run_until(daemon, lambda: all_final(daemon, server), timeout_s=60)
        finally:
            daemon.close()
        yield server, daemon.config


def _reader(server, config):
    from support import CREDENTIAL_KEYS

    from modbot.stream import make_reddit

    budget = fast_budget()
    creds = {k: v for k, v in server.praw_kwargs().items() if k in CREDENTIAL_KEYS}
    return make_reddit(config, budget=budget, **creds), budget


def _read(server, config, **kw):
    from modbot.learning.modlog import account_name, read_modlog, wrong_medium_reasons
    from modbot.record import open_database

    reddit, budget = _reader(server, config)
    db = open_database(config.storage.database)
    try:
        n0 = len(server.requests)
        result = read_modlog(reddit, db, subreddits=["Art"], reasons=wrong_medium_reasons(config),
                             me=account_name(reddit), **kw)
        return result, server.requests[n0:], budget
    finally:
        db.conn.close()


def _rows(config, sql, params=()):
    from modbot.record import open_database

    db = open_database(config.storage.database)
    try:
        return [dict(r) for r in db.query(sql, list(params))]
    finally:
        db.conn.close()


def _act(server):
    """The human moderator's actions (and one of modbot's own account), through praw."""
    human = sandbox_reddit(server, username=HUMAN, password=HUMAN_PW)
    bot = sandbox_reddit(server)
    human.submission(id="p1").mod.approve()                      # dismiss: painting stands
    human.submission(id="p2").mod.remove(reason_id=WRONG_MEDIUM)  # confirm: photography
    human.submission(id="p3").mod.flair(text="Digital Art")      # confirm: digital
    human.submission(id="p4").mod.flair(text="Painting")         # dismiss: painting
    human.submission(id="p5").mod.remove(reason_id=NOT_OC)       # not about the medium
    bot.submission(id="p6").mod.remove(reason_id=WRONG_MEDIUM)   # modbot's own removal


def test_each_moderator_action_becomes_exactly_one_label_never_read_twice(judged):
    server, config = judged
    config = config.replace(learning={"modlog_removal_reasons": ["wrong MEDIUM"]})
    _act(server)
    result, requests, budget = _read(server, config)

    # 1 approval, 2 flairs, 3 removals (removelink + addremovalreason each): all stored once
    assert result.read == len(server.modlog) == 9
    assert result.labels == 4 and result.decisions == {"dismiss": 2, "confirm": 2}
    assert result.ignored == {"not_a_medium_reason": 3, "own_action": 2}
    got = {r["submission"]: r for r in _rows(config, "SELECT * FROM reviews WHERE source = 'modlog'")}
    assert {k: (r["decision"], r["true_medium"]) for k, r in got.items()} == {
        "t3_p1": ("dismiss", "painting"), "t3_p2": ("confirm", "photography"),
        "t3_p3": ("confirm", "digital"), "t3_p4": ("dismiss", "painting")}
    entries = {e["id"]: e for e in server.modlog}
    for r in got.values():
        assert r["moderator"] == HUMAN and r["created_at"] == entries[r["modlog_id"]]["created_utc"]
    assert "Digital Art" in got["t3_p3"]["note"]

    # on the budget: the read's requests are few, and every one of them passed the budget
    assert budget.in_last_window() == len(requests) <= 8
    assert {r.path.rstrip("/") for r in requests if r.method == "GET"} >= {"/r/Art/about/log", "/api/info"}

    # a restart: nothing new is read twice; one new action is one new label
    again, _, _ = _read(server, config)
    assert (again.read, again.labels) == (0, 0)
    sandbox_reddit(server, username=HUMAN, password=HUMAN_PW).submission(id="p5").mod.approve()
    third, requests, _ = _read(server, config)
    assert (third.read, third.labels, dict(third.decisions)) == (1, 1, {"dismiss": 1})
    log_reads = [r for r in requests if r.path.rstrip("/").endswith("/about/log")]
    assert len(log_reads) == 4                       # one page per action: stopped at the cursor
    assert len(_rows(config, "SELECT * FROM reviews WHERE source = 'modlog'")) == 5
    assert len(_rows(config, "SELECT * FROM modlog_entries")) == 10
    cursors = _rows(config, "SELECT * FROM modlog_cursors WHERE action = 'approvelink'")
    assert cursors[0]["newest_id"] == server.modlog[-1]["id"]


@pytest.mark.slow
def test_read_stops_at_the_newest_entry_read_and_reports_a_gap(judged):
    server, config = judged
    human = sandbox_reddit(server, username=HUMAN, password=HUMAN_PW)
    post = human.submission(id="p1")
    for _ in range(150):
        post.mod.approve()

    def approve_pages(requests):
        return [r for r in requests if r.path.rstrip("/").endswith("/about/log")
                and r.query.get("type") == "approvelink"]

    first, requests, _ = _read(server, config)
    # one label; the same moderator approving again changes nothing
    assert (first.read, first.labels, dict(first.ignored)) == (150, 1, {"already_in_force": 149})
    assert len(approve_pages(requests)) == 2 and not first.gaps
    post.mod.approve()
    second, requests, _ = _read(server, config)
    assert second.read == 1 and len(approve_pages(requests)) == 1    # stopped at the cursor
    for _ in range(120):
        post.mod.approve()
    third, requests, _ = _read(server, config, max_pages=1)
    assert third.read == 100 and third.gaps == ["Art/approvelink"]     # 20 missed, and said so


def test_modlog_labels_are_shown_counted_and_trained_on(judged):
    from modbot.cli import main
    from modbot.learning.labels import LabelPolicy, gather_labels
    from modbot.queries.report import Period, flag_precision
    from modbot.record import open_database

    server, config = judged
    _act(server)
    _read(server, config.replace(learning={"modlog_removal_reasons": ["Wrong medium"]}))

    db = open_database(config.storage.database)
    try:
        fp = flag_precision(db, Period())
        labels = gather_labels(db, LabelPolicy(stated="none"))
    finally:
        db.conn.close()
    # approve = dismissed, wrong-medium removal (and a flair changed away) = confirmed
    assert (fp["overall"]["reviewed"], fp["overall"]["confirmed"], fp["overall"]["dismissed"]) == (4, 2, 2)
    assert fp["by_source"] == {"modlog": {"confirmed": 2, "dismissed": 2}}
    assert labels.by_source() == {"modlog": 1}     # the six posts share one image: latest wins
    assert labels.labels[0].medium == "painting"    # p4's dismissal was the last action

    out = CliRunner().invoke(main, ["review", "--db", config.storage.database, "show", "p2",
                                    "--format", "json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.stdout)["reviews"]
    assert [(r["source"], r["moderator"], r["decision"]) for r in shown] == [
        ("modlog", HUMAN, "confirm")]
    table = CliRunner().invoke(main, ["review", "--db", config.storage.database, "show", "p2"],
                               env={"COLUMNS": "200"})
    assert "modlog" in table.stdout and HUMAN in table.stdout


def test_modlog_command_and_job(judged, tmp_path):
    from modbot.cli import main
    from modbot.learning.modlog import ModlogJob, modlog_job

    server, config = judged
    kw = server.praw_kwargs()
    env = {"praw_client_id": kw["client_id"], "praw_client_secret": kw["client_secret"],
           "praw_username": kw["username"], "praw_password": kw["password"]}
    cfg = tmp_path / "modbot.toml"
    cfg.write_text(
        f'[reddit]\noauth_url = "{server.url}"\nreddit_url = "{server.url}"\n'
        f'short_url = "{server.url}"\nrequest_timeout = 10.0\n'
        f'[storage]\ndatabase = "{config.storage.database}"\n'
        '[learning]\nmodlog_removal_reasons = ["Wrong medium"]\n')
    human = sandbox_reddit(server, username=HUMAN, password=HUMAN_PW)
    human.submission(id="p2").mod.remove(reason_id=WRONG_MEDIUM)
    out = CliRunner().invoke(main, ["--config", str(cfg), "modlog", "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout.strip().splitlines()[-1])["decisions"] == {"confirm": 1}

    # the daemon's job: first run at start, then every modlog_interval_s
    assert modlog_job(config.replace(learning={"modlog_interval_s": 0}), None) is None
    from support import CREDENTIAL_KEYS

    from modbot.stream import make_reddit

    reddit = make_reddit(config, budget=fast_budget(),
                         **{k: v for k, v in kw.items() if k in CREDENTIAL_KEYS})
    job = modlog_job(config.replace(learning={"modlog_interval_s": 0.5}), reddit)
    assert isinstance(job, ModlogJob)
    human.submission(id="p1").mod.approve()
    job.start()
    try:
        deadline = time.monotonic() + 20
        while len(job.results) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        job.shutdown()
    assert len(job.results) >= 2
    assert job.results[0].decisions == {"dismiss": 1} and job.results[1].read == 0
    rows = _rows(config, "SELECT submission, decision FROM reviews WHERE source = 'modlog' ORDER BY id")
    assert [(r["submission"], r["decision"]) for r in rows] == [("t3_p2", "confirm"), ("t3_p1", "dismiss")]


@pytest.mark.slow
def test_modlog_job_runs_inside_the_daemon(tmp_path, sample):
    """``jobs=`` of the daemon (as ``modbot run`` wires it): labels arrive while streaming."""
    from modbot.daemon import Daemon
    from modbot.learning.modlog import modlog_job

    _, images = sample
    with SandboxServer(POSTS[:2], images, released=2) as server:
        server.moderator_accounts = {HUMAN: HUMAN_PW}
        base = fast_daemon(server, tmp_path, learning={"modlog_interval_s": 0.3})
        job = modlog_job(base.config, base.reddit)
        base.close()
        daemon = Daemon(base.config, reddit=job.reddit, classifier=StubClassifier(), jobs=(job,))
        stop = threading.Event()
        acted = threading.Event()

        def labelled() -> bool:
            if all_final(daemon, server) and not acted.is_set():
                sandbox_reddit(server, username=HUMAN, password=HUMAN_PW).submission(id="p1").mod.approve()
                acted.set()
            return daemon.store.db.execute(
                "SELECT COUNT(*) FROM reviews WHERE source = 'modlog'").fetchone()[0] == 1

        try:
            run_until(daemon, labelled, timeout_s=60, stop=stop)
        finally:
            daemon.close()


def test_config_and_malformed_entries():
    from modbot.config import Config
    from modbot.configcheck import validate
    from modbot.errors import ConfigError
    from modbot.learning.modlog import ModlogEntry, wrong_medium_reasons

    assert Config().learning.modlog_interval_s == 600 and Config().learning.modlog_removal_reasons == ()
    with pytest.raises(ConfigError, match="modlog_interval_s"):
        validate(Config().replace(learning={"modlog_interval_s": -1}))
    with pytest.raises(ConfigError, match="modlog_removal_reasons"):
        validate(Config().replace(learning={"modlog_removal_reasons": [" "]}))
    cfg = Config().replace(actions={"removal_reason": "Wrong Medium"},
                           learning={"modlog_removal_reasons": ["18rbsx2xyccdn"]})
    assert wrong_medium_reasons(cfg) == {"wrong medium", "18rbsx2xyccdn"}
    ok = {"id": "ModAction_1", "action": "approvelink", "mod": "m_one", "created_utc": 1.0,
          "target_fullname": "t3_x", "details": "", "description": None}
    assert ModlogEntry.from_praw(ok, "Art").details is None
    for broken in ({**ok, "id": None}, {**ok, "created_utc": "x"}, {**ok, "mod": None}):
        assert ModlogEntry.from_praw(broken, "Art") is None
