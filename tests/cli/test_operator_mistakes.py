"""What an operator can get wrong at the command line, and what modbot must then not do (issue
12): wipe files the demo did not create, change a database a read-only command was pointed at,
show a traceback for an ordinary error, let text from Reddit drive the terminal, accept a bad
configuration without saying so.

Every test runs the real command (CliRunner or a subprocess) on real files; each docstring says
what the code at commit 69cb16d did instead.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import REPO


def cli(*args: str, input: str | None = None, env: dict | None = None):
    from modbot.cli import main

    return CliRunner().invoke(main, list(args), input=input, env=env)


def modbot(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 120,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m modbot.cli ARGS`` in a subprocess, no terminal (stdin a pipe)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "modbot.cli", *args], input=input or "",
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=cwd or REPO)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_db(path: Path) -> Path:
    """Someone else's SQLite database (rollback journal, one table)."""
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        c.execute("INSERT INTO notes (body) VALUES ('keep me')")
    c.close()
    return path


def schema_and_journal(path: Path) -> tuple[list[tuple], str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as c:
        schema = c.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        journal = c.execute("PRAGMA journal_mode").fetchone()[0]
    c.close()
    return schema, journal


# --- item 4: read-only commands never change what --db points at ------------------------------
READ_ONLY_COMMANDS = [("report",), ("report", "--format", "json"), ("review",),
                      ("review", "--format", "json"), ("review", "show", "t3_abc"), ("models",)]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_read_only_commands_leave_a_foreign_database_alone(tmp_path, command):
    """At 69cb16d ``report``/``review`` opened ``--db`` with ``open_database``: 17 tables were
    added to someone else's database and it was switched to WAL; an empty file became a modbot
    database, and a missing path was created. Now: refused with a message, nothing changed."""
    foreign = foreign_db(tmp_path / "foreign.db")
    before = digest(foreign), schema_and_journal(foreign)
    res = cli(*command[:1], "--db", str(foreign), *command[1:])
    assert res.exit_code == 1, res.output
    assert "not a modbot database" in res.output and "Traceback" not in res.output
    assert (digest(foreign), schema_and_journal(foreign)) == before
    assert before[1][1] == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]

    empty = tmp_path / "empty.db"
    empty.touch()
    res = cli(*command[:1], "--db", str(empty), *command[1:])
    assert res.exit_code == 1 and "not a modbot database" in res.output, res.output
    assert empty.stat().st_size == 0

    missing = tmp_path / "nowhere" / "modbot.db"
    res = cli(*command[:1], "--db", str(missing), *command[1:])
    assert res.exit_code == 1 and "no database at" in res.output, res.output
    assert not missing.parent.exists()


def test_read_only_commands_refuse_an_unmigrated_modbot_database(tmp_path):
    """A modbot database of an older version is not migrated behind the operator's back by a
    command that only reads (at 69cb16d ``report`` applied the migrations); the write commands
    (``db migrate``, ``review confirm``) still migrate it."""
    from sqlite_utils import Database

    from modbot.migrations import migrations

    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="m003_reviews")
    db.conn.close()
    before = digest(path), schema_and_journal(path)
    for command in (("report",), ("review",)):
        res = cli(*command, "--db", str(path))
        assert res.exit_code == 1, res.output
        assert "not migrated" in res.output and "m003_reviews" in res.output
        assert "modbot db migrate" in res.output
    assert (digest(path), schema_and_journal(path)) == before
    assert cli("db", "migrate", "--db", str(path)).exit_code == 0
    assert cli("report", "--db", str(path), "--format", "json").exit_code == 0


def test_write_commands_refuse_a_foreign_database_too(tmp_path):
    """``review confirm`` writes, so it opens read-write and migrates, but only a modbot
    database: at 69cb16d it turned a foreign database into a modbot one first."""
    foreign = foreign_db(tmp_path / "foreign.db")
    before = digest(foreign)
    res = cli("review", "confirm", "t3_abc", "--db", str(foreign), "--moderator", "alice")
    assert res.exit_code == 1 and "not a modbot database" in res.output, res.output
    assert digest(foreign) == before


# --- item 12: text from Reddit or the database is shown as plain text --------------------------
HOSTILE_TITLE = "Dusk \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m [bold]oil[/bold] \u202etxt.exe"


@pytest.fixture
def hostile_db(tmp_path, tmp_path_factory, sample, shipped_classifier) -> tuple[Path, str]:
    """A copy of the daemon-written database where one flagged post has a title full of
    terminal escape sequences and markup, an author ``[/bold]``, and a review by a moderator
    named ``[/bold]`` (as the code at 69cb16d stored it)."""
    from test_report import built_database, copy_db

    db = copy_db(built_database(tmp_path_factory, sample, shipped_classifier)["db"],
                 tmp_path / "modbot.db")
    with sqlite3.connect(db) as c:
        fullname = c.execute("SELECT submission FROM verdicts WHERE kind = 'mismatch' "
                             "ORDER BY submission").fetchone()[0]
        c.execute("UPDATE submissions SET title = ?, author = '[/bold]' WHERE fullname = ?",
                  [HOSTILE_TITLE, fullname])
        v = c.execute("SELECT stated, predicted, confidence, kind, model_version FROM verdicts "
                      "WHERE submission = ?", [fullname]).fetchone()
        c.execute("INSERT INTO reviews (submission, decision, true_medium, stated, predicted, "
                  "confidence, verdict, model_version, moderator, note, created_at) "
                  "VALUES (?, 'confirm', ?, ?, ?, ?, ?, ?, '[/bold]', ?, 1.0)",
                  [fullname, v[1], v[0], v[1], v[2], v[3], v[4], "note \x1b[5m[red]x"])
    c.close()
    return db, fullname


@pytest.mark.slow
def test_titles_and_names_from_the_database_are_printed_as_plain_text(hostile_db):
    """At 69cb16d ``review show`` printed the title's escape sequences raw (they retitle, clear
    and recolour the moderator's terminal) and every ``review`` listing crashed with a rich
    MarkupError on the stored moderator name ``[/bold]``."""
    db, fullname = hostile_db
    for args in (("review", "--db", str(db), "--state", "all"),
                 ("review", "--db", str(db), "show", fullname)):
        res = cli(*args, env={"COLUMNS": "200"})
        assert res.exit_code == 0, (res.output, res.exception)
        out = res.stdout
        assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out and "\x07" not in out
        assert "[/bold]" in out  # shown as written, not interpreted
        assert "\\x1b" in out
    show = cli("review", "--db", str(db), "show", fullname, env={"COLUMNS": "200"}).stdout
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred\\x9b1m [bold]oil[/bold] \\u202etxt.exe" in show
    assert "note \\x1b[5m[red]x" in show


def test_moderator_names_are_reddit_usernames(hostile_db):
    """A moderator name that is not a Reddit username is refused (69cb16d stored ``[/bold]``,
    which then broke every listing)."""
    db, fullname = hostile_db
    for bad in ("[/bold]", "ab", "a" * 21, "eve\x1b[2J", "mod.alice"):
        res = cli("review", "--db", str(db), "dismiss", fullname, "--moderator", bad)
        assert res.exit_code == 1 and "not a Reddit username" in res.output, res.output
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 1
    c.close()
    res = cli("review", "--db", str(db), "confirm", fullname, "--moderator", "mod_Alice-2")
    assert res.exit_code == 0, res.output


# --- item 6: no tracebacks for ordinary mistakes ------------------------------------------------
def test_review_walk_without_a_terminal_reads_keys_from_stdin(hostile_db):
    """At 69cb16d ``review walk`` with stdin not a terminal died in ``click.getchar`` with a
    ``termios.error`` traceback; now keys are read from stdin (s = skip, then EOF = quit)."""
    db, _ = hostile_db
    res = modbot("review", "--db", str(db), "walk", "--moderator", "erin", input="s\n")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "Done: confirmed 0, dismissed 0, skipped 1." in res.stdout
    res = modbot("review", "--db", str(db), "walk", "--moderator", "erin", input="d\nq\n")
    assert res.returncode == 0 and "dismissed 1" in res.stdout, res.stderr


def models_db(tmp_path: Path) -> Path:
    """A modbot database with three retraining runs of realistic field lengths."""
    from support import fresh_db

    db = fresh_db(tmp_path)
    runs = [
        ("lite0-224-20261130T061500Z", "promoted", "challenger macro-F1 0.8123 beats champion "
         "0.7902 by 0.0221 >= margin 0.0100; every recall at or above its floor", 0.7902, 0.8123),
        ("lite0-224-20261129T021500Z", "refused", "recall of drawing 0.41 below its floor 0.50 "
         "(champion 0.55); macro-F1 gain 0.0040 < margin 0.0100", 0.7902, 0.7942),
        (None, "skipped", "only 12 new labels since the last run (need 200)", None, None),
    ]
    for i, (version, status, reason, f1c, f1n) in enumerate(runs):
        db["models"].insert({"version": version, "status": status, "reason": reason,
                             "trigger": "schedule", "started_at": 1_800_000_000.0 - i * 86400,
                             "duration_s": 1234.5, "n_train": 4321, "n_eval": 987,
                             "champion_macro_f1": f1c, "challenger_macro_f1": f1n})
    db.conn.close()
    return tmp_path / "modbot.db"


@pytest.mark.parametrize("columns", [80, 120])
def test_models_listing_fits_the_terminal(tmp_path, columns):
    """At 69cb16d ``modbot models`` squeezed eleven columns into 80 (and 120) columns: versions,
    statuses and scores were cut to ``…`` or one letter a line. Now every line fits and every
    run's version, status, both scores and reason can be read whole."""
    db = models_db(tmp_path)
    res = cli("models", "--db", str(db), env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, res.stdout
    flat = " ".join(line.strip(" │|┃") for line in lines)
    joined = "".join(line.strip(" │|┃") for line in lines)  # folded cells rejoined
    for word in ("lite0-224-20261130T061500Z", "lite0-224-20261129T021500Z", "promoted",
                 "refused", "skipped", "0.7902", "0.8123", "0.7942", "schedule"):
        assert word in flat, (word, res.stdout)
    for reason in ("every recall at or above its floor", "need 200"):
        assert reason.replace(" ", "") in joined.replace(" ", ""), (reason, res.stdout)
    assert "…" not in res.stdout


# --- item 1: the demo never deletes what it did not create --------------------------------------
def test_demo_refuses_a_production_directory_and_deletes_nothing(tmp_path):
    """README's production layout is ``DIR/modbot.db`` + ``DIR/cache``: at 69cb16d ``modbot
    demo --db DIR/modbot.db`` deleted both without asking and ran the demo there. Now it is
    refused (exit 1, a message, no traceback) and every file is left as it was."""
    from support import fresh_db

    prod = tmp_path / "prod"
    prod.mkdir()
    db = fresh_db(prod)
    db["submissions"].insert({"fullname": "t3_keep", "id": "keep", "subreddit": "Art",
                              "status": "done", "attempts": 1, "first_seen_at": 1.0,
                              "updated_at": 1.0})
    db.conn.close()
    (prod / "cache" / "ab").mkdir(parents=True)
    (prod / "cache" / "ab" / "image.jpg").write_bytes(b"\xff\xd8 not really")
    before = {p.relative_to(prod): p.read_bytes() for p in prod.rglob("*") if p.is_file()}

    for name in ("modbot.db", "other.db"):
        res = modbot("demo", "--db", str(prod / name), timeout=60)
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert "not empty" in res.stderr and ".modbot-demo" in res.stderr
        assert "Traceback" not in res.stderr
        after = {p.relative_to(prod): p.read_bytes() for p in prod.rglob("*") if p.is_file()}
        assert after == before

    # a directory the demo made, but a database in it the demo did not make: refused too
    from modbot.errors import InputError
    from modbot.sandbox.demo import MARKER, prepare_workdir

    own = tmp_path / "own"
    assert prepare_workdir(own / "demo.db") == own
    assert (own / MARKER).read_text() == "demo.db\n"
    (own / "theirs.db").write_bytes(b"precious")
    with pytest.raises(InputError, match="did not create it"):
        prepare_workdir(own / "theirs.db")
    assert (own / "theirs.db").read_bytes() == b"precious"


@pytest.mark.slow
def test_demo_any_db_name_logs_on_stderr_summary_on_stdout_and_resets_only_its_own(tmp_path):
    """At 69cb16d ``--db`` had to be named ``modbot.db``, and the JSON log lines shared stdout
    with the summary. Now any name is accepted, stdout holds only the summary, stderr the log
    (no APScheduler chatter), and a second run resets only what the demo made."""
    work = tmp_path / "demo"
    db = work / "trial.sqlite"
    res = modbot("demo", "--db", str(db), "--json-logs", timeout=300)
    assert res.returncode == 0, res.stderr
    assert "modbot demo" in res.stdout and "Mismatches" in res.stdout
    assert '"event"' not in res.stdout
    log = [line for line in res.stderr.splitlines() if line.strip()]
    assert log and all(line.startswith("{") and '"event"' in line for line in log), log[:5]
    assert not [line for line in log if "apscheduler" in line]
    assert db.is_file() and (work / "cache").is_dir()

    (work / "notes.txt").write_text("mine")
    res = modbot("demo", "--db", str(db), "--quiet", timeout=300)
    assert res.returncode == 0, res.stderr
    assert (work / "notes.txt").read_text() == "mine"
    assert '"event"' not in res.stdout


# --- item 3 (CLI half): modbot config check -------------------------------------------------------
def test_config_check_names_the_bad_key_and_exits_78(tmp_path):
    """``modbot config check`` did not exist at 69cb16d (exit 2, "unexpected extra argument"),
    so a template with an unknown placeholder was found only when the first mismatch was acted
    on. Now: exit 78 (EX_CONFIG) naming the key, no traceback; a good config: the sample report
    and comment, OK, exit 0. ``modbot config`` and ``--defaults`` still work."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[actions]\nreport_template = "{nosuch}"\n')
    res = modbot("--config", str(bad), "config", "check")
    assert res.returncode == 78, (res.stdout, res.stderr)
    assert "report_template" in res.stderr and "nosuch" in res.stderr
    assert "Traceback" not in res.stderr and "OK" not in res.stdout

    good = tmp_path / "good.toml"
    good.write_text('[actions]\nreport_template = "modbot: {predicted} ({confidence:.0%}), '
                    'stated {stated}"\n')
    res = modbot("--config", str(good), "config", "check")
    assert res.returncode == 0, res.stderr
    assert "modbot: painting (93%), stated digital" in res.stdout
    assert res.stdout.rstrip().endswith("OK")

    assert cli("--config", str(good), "config").exit_code == 0
    assert "[actions]" in cli("config", "--defaults").output
    assert cli("--config", str(bad), "config").exit_code == 78


def _bomb(path: Path) -> Path:
    """A 12000x12000 PNG (17 KB on disk, 144 Mpx: 432 MB as RGB, over Pillow's warning limit)."""
    from PIL import Image

    Image.new("1", (12000, 12000)).save(path)
    return path


def _peak_rss_mb(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``python -m modbot.cli ARGS`` from a fresh wrapper; its only child's peak RSS (MB)."""
    wrapper = ("import resource, subprocess, sys\n"
               "p = subprocess.run([sys.executable, '-m', 'modbot.cli', *sys.argv[1:]], "
               "capture_output=True, text=True)\n"
               "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(p.returncode)\n")
    res = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    *rest, peak = res.stderr.rstrip().splitlines()
    res.stderr = "\n".join(rest)
    return res, int(peak) / 1024


def test_classify_reports_a_decompression_bomb_as_that_image_error(tmp_path):
    """At 69cb16d ``classify`` on a 12000² PNG printed a raw ``DecompressionBombWarning`` and
    decoded it (about 1.2 GB). Now that image gets a one-line error (reason
    ``decompression_bomb``), the others are classified, exit 1, and memory stays small."""
    from support import PACS_SAMPLE

    good = sorted((PACS_SAMPLE / "painting").iterdir())[0]
    bomb = _bomb(tmp_path / "huge.png")
    res, peak_mb = _peak_rss_mb("classify", str(bomb), str(good))
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"{bomb}: ERROR decompression_bomb" in res.stderr
    assert "Warning" not in res.stderr and "Traceback" not in res.stderr
    assert res.stdout.startswith(f"{good}: ")
    assert peak_mb < 600, peak_mb


def test_evaluate_fails_when_nothing_could_be_scored(tmp_path):
    """At 69cb16d ``evaluate`` exited 0 after scoring nothing (here: the only image is a
    decompression bomb, another folder is no medium). Now exit 1 with a message; the bomb is
    listed as unreadable, not a traceback or warning."""
    (tmp_path / "tree" / "painting").mkdir(parents=True)
    (tmp_path / "tree" / "holiday snaps").mkdir()
    _bomb(tmp_path / "tree" / "painting" / "huge.png")
    res = modbot("evaluate", str(tmp_path / "tree"))
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "nothing could be scored" in res.stderr
    assert "huge.png" in res.stdout and "DecompressionBombError" in res.stdout
    assert "Traceback" not in res.stderr and "Warning:" not in res.stderr
    res = modbot("evaluate", str(tmp_path / "tree"), "--json")
    assert res.returncode == 1 and '"n_images": 0' in res.stdout


def test_report_plot_to_an_unusable_directory_is_a_usage_error(tmp_path, tmp_path_factory,
                                                               sample, shipped_classifier):
    """At 69cb16d ``report --plot`` to a directory that cannot be created or written ended in
    a ``FileExistsError``/``PermissionError`` traceback after the tables were printed. Now:
    a usage error naming ``--plot`` before anything is printed."""
    from test_report import built_database, copy_db

    db = copy_db(built_database(tmp_path_factory, sample, shipped_classifier)["db"],
                 tmp_path / "modbot.db")
    blocker = tmp_path / "charts"
    blocker.write_text("a file, not a directory")
    for target in (blocker, blocker / "sub"):
        res = modbot("report", "--db", str(db), "--plot", str(target))
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert "--plot" in res.stderr and "Traceback" not in res.stderr
        assert res.stdout == ""
