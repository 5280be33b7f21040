"""CLI: help text everywhere, no TensorFlow for commands that do not classify, db migrate."""

from __future__ import annotations

import json
import subprocess
import sys

import click
from support import DATA
from click.testing import CliRunner

from modbot.cli import main


def all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, prefix + (name,))


def test_every_command_has_help():
    for path, cmd in all_commands(main):
        assert cmd.help and len(cmd.help) > 20, f"modbot {' '.join(path)} lacks help text"
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output


def _tf_loaded_after(args, stdin=""):
    code = (
        "import sys; from modbot.cli import main\n"
        "try:\n    main(%r, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_ABSENT', file=sys.stderr)" % (args,)
    )
    proc = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, text=True,
                          timeout=120)
    return proc


def test_medium_and_help_do_not_import_tensorflow():
    proc = _tf_loaded_after(["--help"])
    assert "TF_ABSENT" in proc.stderr, proc.stderr
    proc = _tf_loaded_after(["medium"], stdin=json.dumps({"title": "Dusk, me, oil on canvas, 2020"}) + "\n")
    assert "TF_ABSENT" in proc.stderr, proc.stderr
    out = json.loads(proc.stdout.splitlines()[0])
    assert out["stated_medium"] == "painting"


def test_db_migrate_creates_schema(tmp_path):
    db = tmp_path / "x.db"
    result = CliRunner().invoke(main, ["db", "migrate", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "m001_initial" in result.output and "m002_views" in result.output
    import sqlite_utils

    assert {"submissions", "images", "predictions", "verdicts", "actions"} <= set(
        sqlite_utils.Database(db).table_names())


def test_bad_config_is_reported_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[actions]\nreport = 'yes'\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "config"])
    assert result.exit_code != 0
    assert "true or false" in result.output and "Traceback" not in result.output


def test_train_refuses_bad_recipe_options_before_loading_anything(tmp_path):
    sample = DATA / "pacs_sample"
    for args, message in ((["--skip-blocks", "11"], "cannot be skipped"),
                          (["--skip-blocks", "x,y"], "not a list of block numbers")):
        result = CliRunner().invoke(main, ["train", str(sample), "--out", str(tmp_path / "m"), *args])
        assert result.exit_code != 0 and message in result.output, result.output
        assert not (tmp_path / "m").exists()
