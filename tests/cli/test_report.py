"""``modbot report`` on a database the real daemon wrote (sandbox + shipped model), with every
figure recomputed here independently: from the sample's ``_sandbox_truth``, from the sandbox's
record of what it received, and by plain Python over raw rows (not the report's SQL)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import REPO, make_daemon, run_until_recorded

_BUILT: dict[str, object] = {}


def built_database(tmp_path_factory, sample, classifier) -> dict[str, object]:
    """Run the daemon once per test session (actions on, to the sandbox) and keep its database.

    Returns {"db": Path, "writes": Counter of sandbox writes by kind}. Shared with test_review.py
    so the whole session pays for one daemon run.
    """
    if not _BUILT:
        from modbot.sandbox.server import SandboxServer

        posts, images = sample
        work = tmp_path_factory.mktemp("daemon-db")
        with SandboxServer(posts, images, released=len(posts)) as server:
            daemon = make_daemon(server, work, classifier, act=True)
            run_until_recorded(daemon, server)
            daemon.close()
            writes = Counter(w.kind for w in server.writes)
        _BUILT.update(db=work / "modbot.db", writes=writes)
    return _BUILT


def copy_db(src: Path, dst: Path) -> Path:
    """A private copy of a SQLite database (online backup API, WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()
    return dst


@pytest.fixture
def db_path(tmp_path, tmp_path_factory, sample, shipped_classifier) -> Path:
    """A fresh copy of the daemon-written database for one test."""
    built = built_database(tmp_path_factory, sample, shipped_classifier)
    return copy_db(built["db"], tmp_path / "modbot.db")


@pytest.fixture
def writes(tmp_path_factory, sample, shipped_classifier) -> Counter:
    return built_database(tmp_path_factory, sample, shipped_classifier)["writes"]


def cli(*args: str, input: str | None = None, env: dict | None = None):
    from modbot.cli import main

    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def report_json(db: Path, *extra: str) -> dict:
    res = cli("report", "--db", str(db), "--format", "json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def raw(db: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql, params).fetchall()


def stated_truth(sample) -> dict[str, str]:
    """fullname -> the medium the sample's title/flair states (truth), 'unknown' for none."""
    from modbot.sandbox.sample import truth_by_fullname

    return {f: t["stated"] or "unknown" for f, t in truth_by_fullname(sample[0]).items()}


def monday(ts: float) -> str:
    d = datetime.fromtimestamp(ts, UTC).date()
    return (d - timedelta(days=d.weekday())).isoformat()


# --- figures ----------------------------------------------------------------------------------
def test_report_figures_match_independent_counts(db_path, sample, writes):
    from modbot.queries.report import REPORT_KEYS

    rep = report_json(db_path)
    assert tuple(rep) == REPORT_KEYS
    truth = stated_truth(sample)
    verdicts = {f: (k, p) for f, k, p in raw(db_path, "SELECT submission, kind, predicted FROM verdicts")}
    n_mismatch = sum(k == "mismatch" for k, _ in verdicts.values())
    assert n_mismatch >= 1

    # totals: every sample post is in the database once
    assert rep["totals"]["submissions"] == len(sample[0]) == 50
    assert sum(rep["totals"]["by_verdict"].values()) == 50
    assert rep["totals"]["by_verdict"].get("none", 0) == 50 - len(verdicts)

    # flair accuracy, per stated medium (truth), counted in Python
    rows = {r["stated"]: r for r in rep["flair_accuracy"]}
    assert set(rows) == set(truth.values())
    for medium in rows:
        mine = [f for f, s in truth.items() if s == medium]
        kinds = Counter(verdicts[f][0] for f in mine if f in verdicts)
        r = rows[medium]
        assert r["posts"] == len(mine)
        assert r["classified"] == sum(1 for f in mine if f in verdicts and verdicts[f][1])
        assert (r["match"], r["mismatch"], r["uncertain"]) == (
            kinds["match"], kinds["mismatch"], kinds["uncertain"])
        judged = kinds["match"] + kinds["mismatch"]
        assert r["agreement"] == (pytest.approx(kinds["match"] / judged) if judged else None)

    # confusion matrix: stated (truth) x predicted
    labels = rep["confusion"]["labels"]
    expected = Counter((truth[f], p) for f, (_, p) in verdicts.items() if p)
    for i, s in enumerate(labels):
        for j, p in enumerate(labels):
            assert rep["confusion"]["matrix"][i][j] == expected.get((s, p), 0), (s, p)
    assert rep["confusion"]["total"] == sum(expected.values())

    # unknown share: the sample's posts that state nothing
    n_unknown = sum(s == "unknown" for s in truth.values())
    assert rep["unknown"]["count"] == n_unknown
    assert rep["unknown_share"] == pytest.approx(n_unknown / 50)

    # weekly, with Python's calendar rather than SQLite's
    created = dict(raw(db_path, "SELECT fullname, created_utc FROM submissions"))
    weeks = Counter(monday(ts) for ts in created.values())
    assert {w["week"]: w["posts"] for w in rep["weekly"]} == dict(weeks)
    for w in rep["weekly"]:
        in_week = [f for f in created if monday(created[f]) == w["week"]]
        assert w["mismatch"] == sum(verdicts.get(f, ("", ""))[0] == "mismatch" for f in in_week)

    # top authors by mismatches
    authors = dict(raw(db_path, "SELECT fullname, author FROM submissions"))
    by_author = Counter(authors[f] for f, (k, _) in verdicts.items()
                        if k == "mismatch" and authors[f] is not None)
    assert [(a["author"], a["mismatch"]) for a in rep["top_authors"]] == sorted(
        by_author.items(), key=lambda kv: (-kv[1], kv[0]))[:10]

    # actions: what the sandbox received, one report and one comment per mismatch
    assert rep["actions"] == {"comment": {"sent": writes["comment"]},
                              "report": {"sent": writes["report"]}}
    assert writes["report"] == writes["comment"] == n_mismatch

    # nothing reviewed yet
    fp = rep["flag_precision"]
    assert fp["overall"] == {"flagged": n_mismatch, "reviewed": 0, "confirmed": 0, "dismissed": 0,
                             "unreviewed": n_mismatch, "precision": None, "ci95": None}
    assert sum(r["flagged"] for r in fp["by_medium"]) == n_mismatch
    assert fp["uncertain"]["flagged"] == sum(k == "uncertain" for k, _ in verdicts.values())


def test_reviews_change_the_precision(db_path):
    mism = [r[0] for r in raw(db_path, "SELECT submission FROM verdicts WHERE kind = 'mismatch' "
                                       "ORDER BY submission")]
    assert mism
    first = mism[0]
    assert cli("review", "--db", str(db_path), "confirm", first,
               "--moderator", "alice").exit_code == 0
    rep = report_json(db_path)
    o = rep["flag_precision"]["overall"]
    assert (o["reviewed"], o["confirmed"], o["precision"]) == (1, 1, 1.0)
    lo, hi = o["ci95"]
    assert 0.0 < lo < 1.0 and hi == pytest.approx(1.0)
    predicted = raw(db_path, "SELECT predicted FROM verdicts WHERE submission = ?", [first])[0][0]
    row = next(r for r in rep["flag_precision"]["by_medium"] if r["medium"] == predicted)
    assert (row["reviewed"], row["confirmed"]) == (1, 1)

    # last decision wins: dismissing the same post turns precision to 0
    assert cli("review", "--db", str(db_path), "dismiss", first, "--moderator", "bob").exit_code == 0
    o = report_json(db_path)["flag_precision"]["overall"]
    assert (o["reviewed"], o["confirmed"], o["dismissed"], o["precision"]) == (1, 0, 1, 0.0)
    # repeating the decision in force changes nothing, and adds no history row
    before = raw(db_path, "SELECT COUNT(*) FROM reviews")[0][0]
    assert cli("review", "--db", str(db_path), "dismiss", first, "--moderator", "bob").exit_code == 0
    assert raw(db_path, "SELECT COUNT(*) FROM reviews")[0][0] == before == 2
    assert report_json(db_path)["flag_precision"]["overall"] == o

    if len(mism) > 1:  # a second reviewed flag: precision is confirmed / reviewed over both
        assert cli("review", "--db", str(db_path), "confirm", mism[1]).exit_code == 0
        o = report_json(db_path)["flag_precision"]["overall"]
        assert (o["reviewed"], o["confirmed"], o["precision"]) == (2, 1, 0.5)
    # review outcomes also reach the weekly table and the authors table
    rep = report_json(db_path, "--top", "1000")
    assert sum(w["reviewed"] for w in rep["weekly"]) == o["reviewed"]
    assert sum(w["dismissed"] for w in rep["weekly"]) == 1
    author = raw(db_path, "SELECT author FROM submissions WHERE fullname = ?", [first])[0][0]
    dismissed = {a["author"]: a["dismissed"] for a in rep["top_authors"] if a["dismissed"]}
    assert dismissed == ({author: 1} if author else {})
    # and the terminal table shows the new figure
    out = cli("report", "--db", str(db_path)).stdout
    assert f"{o['precision']:.0%}" in out


def test_period_and_subreddit_filters(db_path):
    created = [r[0] for r in raw(db_path, "SELECT created_utc FROM submissions")]
    first = datetime.fromtimestamp(min(created), UTC).date()
    last = datetime.fromtimestamp(max(created), UTC).date()
    everything = report_json(db_path, "--since", first.isoformat(), "--until", last.isoformat(),
                             "--subreddit", "r/art")
    assert everything["totals"]["submissions"] == 50
    assert everything["period"] == {"since": first.isoformat(), "until": last.isoformat(),
                                    "subreddit": "art"}
    after = report_json(db_path, "--since", (last + timedelta(days=1)).isoformat())
    assert after["totals"]["submissions"] == 0
    assert after["flair_accuracy"] == [] and after["weekly"] == [] and after["unknown_share"] is None
    before = report_json(db_path, "--until", (first - timedelta(days=1)).isoformat())
    assert before["totals"]["submissions"] == 0
    assert report_json(db_path, "--subreddit", "painting")["totals"]["submissions"] == 0

    bad = cli("report", "--db", str(db_path), "--since", "22/11/2020")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    backwards = cli("report", "--db", str(db_path), "--since", "2020-12-01", "--until", "2020-11-01")
    assert backwards.exit_code == 2


def test_csv_and_json_round_trip(db_path):
    from modbot.cli.report import table_rows
    from modbot.queries.report import CSV_TABLES

    assert cli("review", "--db", str(db_path), "confirm",
               raw(db_path, "SELECT submission FROM verdicts WHERE kind='mismatch'")[0][0]).exit_code == 0
    text = cli("report", "--db", str(db_path), "--format", "json").stdout
    rep = json.loads(text)
    # stable: parse → dump → parse is the same document, and keys keep their order
    assert json.loads(json.dumps(rep)) == rep
    for name in CSV_TABLES:
        res = cli("report", "--db", str(db_path), "--format", "csv", "--table", name)
        assert res.exit_code == 0, res.output
        parsed = list(csv.DictReader(io.StringIO(res.stdout)))
        cols, rows = table_rows(rep, name)
        assert list(parsed[0].keys()) == cols if parsed else True
        assert len(parsed) == len(rows), name
        for got, want in zip(parsed, rows, strict=True):
            for c in cols:
                w = want[c]
                if w is None:
                    assert got[c] == ""
                elif isinstance(w, float):
                    assert float(got[c]) == pytest.approx(w, abs=1e-6)
                else:
                    assert got[c] == str(w)
    # the default CSV table is flair accuracy, and its posts add up to all submissions
    rows = list(csv.DictReader(io.StringIO(
        cli("report", "--db", str(db_path), "--format", "csv").stdout)))
    assert sum(int(r["posts"]) for r in rows) == 50


def test_tables_fit_80_columns(db_path):
    from rich.cells import cell_len

    res = cli("report", "--db", str(db_path), env={"COLUMNS": "80"})
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert any("Flair accuracy" in line for line in lines)
    assert any("Confusion" in line for line in lines)
    assert max(cell_len(line) for line in lines) <= 80
    # headers are not cut: the week column shows whole dates
    rep = report_json(db_path)
    for w in rep["weekly"]:
        assert w["week"] in res.stdout


def test_plot_writes_readable_pngs(db_path, tmp_path):
    from PIL import Image

    mism = raw(db_path, "SELECT submission FROM verdicts WHERE kind='mismatch'")[0][0]
    cli("review", "--db", str(db_path), "confirm", mism)
    out = tmp_path / "charts"
    res = cli("report", "--db", str(db_path), "--plot", str(out))
    assert res.exit_code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["confusion.png", "flag_precision.png", "weekly.png"]
    for p in out.iterdir():
        with Image.open(p) as im:
            assert im.format == "PNG"
            w, h = im.size
            assert w >= 500 and h >= 350, (p.name, im.size)
            colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 20, f"{p.name} looks blank"
        assert str(p) in res.output


def test_missing_database_is_a_clear_error(tmp_path):
    res = cli("report", "--db", str(tmp_path / "nope.db"))
    assert res.exit_code == 1
    assert "no database" in res.output
    assert not (tmp_path / "nope.db").exists()


def test_tools_do_not_import_tensorflow_or_matplotlib():
    code = ("import sys, modbot.cli, modbot.cli.review, modbot.cli.report, modbot.queries.report; "
            "bad = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr
