"""CLI: help text everywhere, no TensorFlow for commands that do not classify, db migrate."""

from __future__ import annotations

import json
import subprocess
import sys

import click
from click.testing import CliRunner
from support import DATA

from modbot.cli import main


def all_commands(group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # lazy commands too (imports their modules)
        cmd = group.get_command(ctx, name)
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, prefix + (name,))


def test_every_command_has_help():
    paths = [path for path, _ in all_commands(main)]
    assert {("review", "walk"), ("report",), ("models", "rollback"), ("evaluate",), ("db", "migrate")} <= set(paths)
    for path, cmd in all_commands(main):
        assert cmd.help and len(cmd.help) > 20, f"modbot {' '.join(path)} lacks help text"
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden and param.name != "help":
                assert param.help, f"modbot {' '.join(path)} {param.opts[0]} lacks help text"


def test_lazy_commands_are_listed_with_their_own_short_help():
    from modbot.cli import LAZY_COMMANDS

    ctx = click.Context(main)
    for name, (_, _, short) in LAZY_COMMANDS.items():
        cmd = main.get_command(ctx, name)
        assert cmd.name == name and cmd.get_short_help_str(1000) == short, name
    out = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {name} " in out for name in LAZY_COMMANDS), out


def _modules_after(args, modules=("tensorflow", "keras", "matplotlib")):
    """Run ``modbot ARGS`` in a fresh interpreter; return (exit status, output, heavy modules loaded)."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['modbot', *%r]\n"
        "try:\n    runpy.run_module('modbot.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print('LOADED', sorted(m for m in %r if m in sys.modules), file=sys.stderr)\n"
        "sys.exit(code)" % (list(args), modules)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    loaded = [line for line in proc.stderr.splitlines() if line.startswith("LOADED")]
    return proc.returncode, proc.stdout, loaded[-1] if loaded else proc.stderr


def test_help_imports_no_tensorflow_matplotlib_or_query_modules():
    code, out, loaded = _modules_after(["--help"], ("tensorflow", "keras", "matplotlib", "modbot.cli.review",
                                                    "modbot.cli.report", "modbot.queries.report"))
    assert code == 0 and "review" in out and loaded == "LOADED []", (out, loaded)
    for args in (["review", "--help"], ["report", "--help"], ["evaluate", "--help"], ["models", "--help"]):
        code, out, loaded = _modules_after(args)
        assert code == 0 and "Usage:" in out and loaded == "LOADED []", (args, out, loaded)


def test_modbot_errors_become_error_messages(tmp_path):
    result = CliRunner().invoke(main, ["review", "--db", str(tmp_path / "nope.db"), "show", "t3_x"])
    assert result.exit_code == 1 and "Error: no database at" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


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
    bad = tmp_path / "bad.toml"  # train reads [judge] false_flag_budget: a bad one stops it first
    bad.write_text("[judge]\nfalse_flag_budget = 2\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "train", str(sample), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "false_flag_budget" in result.output, result.output
    assert not (tmp_path / "m").exists()
