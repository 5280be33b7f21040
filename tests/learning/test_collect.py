"""``modbot collect`` through praw against the sandbox (real HTTP on 127.0.0.1): a set balanced
by stated medium, recorded, resumable from its listing cursor, topped up later, failures kept
with their reason, and the collected stated media feeding the learning loop's labels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

MEDIA4 = "digital,painting,drawing,photography"


@pytest.fixture
def setup(tmp_path, sandbox):
    """(invoke, database path, server): ``invoke(*args)`` runs ``modbot --config ... <args>``
    with praw credentials in the environment, as an operator would."""
    from modbot.cli import main
    from modbot.cli.learning import COMMANDS

    for command in COMMANDS:
        if command.name not in main.commands:
            main.add_command(command)
    db = tmp_path / "modbot.db"
    cfg = tmp_path / "modbot.toml"
    cfg.write_text(
        f'[reddit]\noauth_url = "{sandbox.url}"\nreddit_url = "{sandbox.url}"\n'
        f'short_url = "{sandbox.url}"\nrequest_timeout = 10.0\n'
        f'[storage]\ndatabase = "{db}"\nimage_cache = "{tmp_path / "cache"}"\n'
        '[images]\nallow_hosts = ["127.0.0.1"]\n')
    kw = sandbox.praw_kwargs()
    env = {"praw_client_id": kw["client_id"], "praw_client_secret": kw["client_secret"],
           "praw_username": kw["username"], "praw_password": kw["password"], "COLUMNS": "200"}
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, ["--config", str(cfg), "collect", "--subreddit", "Art", *args],
                             env=env)

    return invoke, db, sandbox


def rows(db: Path, sql: str, params=()):
    from modbot.record import open_database

    database = open_database(db)
    try:
        return database.execute(sql, list(params)).fetchall()
    finally:
        database.conn.close()


def test_collect_is_balanced_recorded_and_resumable(setup, sample):
    invoke, db, server = setup
    from modbot.medium import stated_medium

    first = invoke("--per-medium", "3", "--media", MEDIA4, "--max-posts", "8", "--json")
    assert first.exit_code == 0, first.output
    r1 = json.loads(first.stdout.strip().splitlines()[-1])
    assert r1["status"] == "stopped" and r1["scanned"] == 8 and not r1["resumed"]
    cursor = rows(db, "SELECT cursor FROM collect_runs WHERE id = ?", [r1["run_id"]])[0][0]
    newest_first = list(reversed(server.released))
    assert cursor == newest_first[7]                          # the 8th submission read

    n_before = len(server.requests)
    second = invoke("--per-medium", "3", "--media", MEDIA4)   # the same command resumes
    assert second.exit_code == 0, second.output
    assert "resumed" in second.stdout and ": done;" in second.stdout
    listing = [r for r in server.requests[n_before:] if r.path.rstrip("/").endswith("/r/Art/new")]
    assert listing[0].query.get("after") == cursor           # continued after the cursor

    got = rows(db, "SELECT stated_medium, COUNT(*) FROM collected_posts WHERE status = 'ok' "
                   "GROUP BY stated_medium")
    assert dict(got) == {"digital": 3, "painting": 3, "drawing": 3, "photography": 3}
    # every kept post states its medium the way the daemon reads it, and its image is cached
    by_id = {p["id"]: p for p in sample[0]}
    for fullname, medium, sha, path in rows(db, "SELECT fullname, stated_medium, sha256, path "
                                                "FROM collected_posts WHERE status = 'ok'"):
        post = by_id[fullname[3:]]
        assert stated_medium(post["title"], post.get("link_flair_text")).medium == medium
        assert Path(path).is_file() and Path(path).name.startswith(sha)
    runs = rows(db, "SELECT status, scanned, kept, cursor FROM collect_runs")
    assert len(runs) == 1 and runs[0][0] == "done" and runs[0][2] == 12
    # no submission was read twice: both calls together read the newest ones down to the cursor
    assert runs[0][1] == newest_first.index(runs[0][3]) + 1

    # progress bar on stderr, one line per medium
    shown = invoke("--per-medium", "3", "--media", MEDIA4, "--fresh")
    assert shown.exit_code == 0
    assert "photography" in shown.stderr and "3/3" in shown.stderr


def test_collect_tops_up_and_records_failures_with_their_reason(setup):
    invoke, db, _ = setup
    done = invoke("--per-medium", "2", "--media", "digital", "--json")
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "done"
    more = invoke("--per-medium", "30", "--media", "digital", "--json")
    result = json.loads(more.stdout.strip().splitlines()[-1])
    # a finished run is not resumed: a new run reads from the top, skips what it already has
    assert not result["resumed"] and result["status"] == "exhausted"
    assert result["skipped"]["already_collected"] == 2
    statuses = Counter(s for (s,) in rows(db, "SELECT status FROM collected_posts"))
    # the sample's broken JPEG, HTML page and video are kept as failures with their reason
    assert {"decode_failed", "not_an_image", "video"} <= set(statuses)
    assert result["counts"]["digital"] == statuses["ok"] >= 8
    assert result["skipped"]["other_medium"] > 0 and result["skipped"]["no_stated_medium"] >= 1

    bad = invoke("--per-medium", "2", "--listing", "search")
    assert bad.exit_code != 0 and "query" in bad.output
    unknown = invoke("--per-medium", "2", "--media", "oil")
    assert unknown.exit_code != 0 and "unknown media" in unknown.output


def test_collected_stated_media_are_labels_when_configured(setup):
    from modbot.learning.labels import LabelPolicy, gather_labels
    from modbot.record import open_database

    invoke, db, _ = setup
    assert invoke("--per-medium", "2", "--media", MEDIA4).exit_code == 0
    database = open_database(db)
    try:
        got = gather_labels(database, LabelPolicy(collected=True))
        assert got.by_source() == {"collected": 8}
        assert got.by_medium() == {"digital": 2, "painting": 2, "drawing": 2, "photography": 2}
        assert all(lb.detail == "collected" and lb.submission.startswith("t3_") for lb in got.labels)
        assert gather_labels(database, LabelPolicy(collected=False)).labels == []
    finally:
        database.conn.close()


def test_collect_reads_top_and_search_listings_through_praw(setup, sample):
    """``--listing top`` (by score, ``t`` window) and ``--listing search`` (``q``, restricted to
    the subreddit) are served by the sandbox and read through praw like ``new``."""
    invoke, db, server = setup
    top = invoke("--per-medium", "2", "--media", "digital", "--listing", "top",
                 "--time-filter", "week", "--json")
    assert top.exit_code == 0, top.output
    r_top = json.loads(top.stdout.strip().splitlines()[-1])
    assert r_top["status"] == "done" and r_top["counts"] == {"digital": 2}
    top_reqs = [r for r in server.requests if r.path.rstrip("/") == "/r/Art/top"]
    assert top_reqs and top_reqs[0].query["t"] == "week"

    found = invoke("--per-medium", "3", "--media", "painting", "--listing", "search",
                   "--query", "oil", "--json")
    assert found.exit_code == 0, found.output
    r_search = json.loads(found.stdout.strip().splitlines()[-1])
    assert r_search["status"] in ("done", "exhausted") and r_search["counts"]["painting"] >= 3
    search_reqs = [r for r in server.requests if r.path.rstrip("/") == "/r/Art/search"]
    assert search_reqs[0].query["q"] == "oil" and search_reqs[0].query["restrict_sr"] in ("on", "True", "1")
    # only posts whose title names oil were read from the search listing
    by_id = {p["id"]: p for p in sample[0]}
    titles = [by_id[f[3:]]["title"].lower() for (f,) in rows(
        db, "SELECT fullname FROM collected_posts WHERE run_id = ?", [r_search["run_id"]])]
    assert titles and all("oil" in t for t in titles)
    listings = dict(rows(db, "SELECT listing, time_filter FROM collect_runs"))
    assert listings == {"top": "week", "search": "all"}
