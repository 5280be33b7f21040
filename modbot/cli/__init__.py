"""The ``modbot`` command line: click commands that parse options, call a library function
and render its result.

Commands defined here: ``demo``, ``run``, ``medium``, ``train``, ``db migrate``. The
others live in their own modules and are imported only when invoked (:class:`ModbotGroup`), so
``modbot --help`` imports neither TensorFlow nor matplotlib nor the query modules: ``review``
(:mod:`modbot.cli.review`), ``report`` (:mod:`modbot.cli.report`), ``collect``/``retrain``/
``models`` (:mod:`modbot.cli.learning`), ``evaluate``/``classify`` (:mod:`modbot.cli.evaluate`),
``config`` show/defaults/check (:mod:`modbot.cli.config`).
TensorFlow is imported only by commands that train (or classify with the Keras backend).

A :class:`~modbot.errors.ModbotError` escaping any command is printed as ``Error: ...`` with
exit status 1 (:meth:`ModbotGroup.invoke`); ``run`` maps errors to its own exit statuses.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from modbot import __version__
from modbot.cli.common import EXIT_CONFIG as _EXIT_CONFIG
from modbot.cli.common import config_path as _config_path
from modbot.errors import ConfigError, ModbotError


class ModbotGroup(click.Group):
    """The root group: subcommands registered lazily, and modbot errors turned into click errors.

    ``lazy_subcommands`` maps a command name to ``(module, attribute, short help)``; the module
    is imported by :meth:`get_command` when the command is looked up (run or ``NAME --help``).
    ``modbot --help`` lists them with the short help given here, without importing anything
    (a test checks it equals the command's own).
    """

    def __init__(self, *args, lazy_subcommands: dict[str, tuple[str, str, str]] | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy_subcommands:
            return super().get_command(ctx, cmd_name)
        module, attr, _ = self.lazy_subcommands[cmd_name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but lazy commands not yet imported show their registered short help."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                stand_in = click.Command(name, help=self.lazy_subcommands[name][2])
                rows.append((name, stand_in.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        """Run the command; a ``ModbotError`` becomes ``click.ClickException`` (exit status 1)."""
        try:
            return super().invoke(ctx)
        except ModbotError as exc:
            raise click.ClickException(str(exc)) from exc


#: Commands in their own modules: name -> (module, attribute, short help for ``modbot --help``).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "cache": ("modbot.cli.cache", "cache_cmd",
              "The image cache against its limit ([storage] image_cache_max_bytes)."),
    "classify": ("modbot.cli.evaluate", "classify_cmd",
                 "Print per-medium probabilities for each image file or http(s) URL in SOURCES."),
    "config": ("modbot.cli.config", "config_cmd",
               "Show the effective configuration, its defaults, or check it (exit 78 if invalid)."),
    "collect": ("modbot.cli.learning", "collect",
                "Build a labelled dataset balanced by stated medium from a subreddit's history."),
    "evaluate": ("modbot.cli.evaluate", "evaluate_cmd",
                 "Score a model on DATA_DIR, a folder-per-medium image tree (images at any depth)."),
    "modlog": ("modbot.cli.learning", "modlog",
               "Read moderators' actions from the subreddit's moderation log as labels, once."),
    "models": ("modbot.cli.learning", "models",
               "List model versions and retraining runs; mark the champion."),
    "report": ("modbot.cli.report", "report",
               "Flair accuracy, confusion matrix, flag precision, weekly trends, top authors, actions."),
    "similar": ("modbot.cli.similar", "similar",
                "Find earlier posts that show the same picture as IMAGE_OR_URL (a file or http(s) URL)."),
    "retrain": ("modbot.cli.learning", "retrain",
                "Train a challenger on the labels, compare it with the champion, promote it if better."),
    "review": ("modbot.cli.review", "review",
               "List flagged submissions (newest first), or review them."),
}


def _load(config_path: str | None):
    """The configuration, a ``ClickException`` if it is unusable (``run`` gives it exit 78)."""
    from modbot.config import load_config

    try:
        return load_config(config_path)
    except ModbotError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=ModbotGroup, lazy_subcommands=LAZY_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modbot")
@click.option("--config", "config_path", envvar="MODBOT_CONFIG", type=click.Path(dir_okay=False),
              help="TOML config file (default: $MODBOT_CONFIG, else built-in defaults).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """modbot: checks that artworks posted to an image subreddit are the medium they claim."""
    ctx.obj = {"config_path": config_path}


@main.command()
@click.option("--db", "db_path", default="modbot-demo/modbot.db", show_default=True,
              type=click.Path(dir_okay=False), help="Where the demo writes its SQLite database: "
              "in a new or empty directory, or one an earlier demo made (only then is it reset).")
@click.option("--dry-run", is_flag=True, help="Record intended actions only (default: report and "
              "comment on mismatches — to the sandbox, never to Reddit).")
@click.option("--json-logs/--pretty-logs", default=None, help="Log format (default: by terminal).")
@click.option("--quiet", is_flag=True, help="Only warnings in the log; the summary still prints.")
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Minimum level logged (default: INFO, WARNING with --quiet; scheduler "
              "details only at DEBUG).")
def demo(db_path: str, dry_run: bool, json_logs: bool | None, quiet: bool,
         log_level: str | None) -> None:
    """Run the real daemon against the bundled Reddit sandbox and print a summary.

    Starts a Reddit-compatible server on 127.0.0.1 with the sample shipped in modbot (real r/Art
    titles and images, PACS images, Battle for Wesnoth digital paintings), streams it through
    praw, classifies with the shipped model, records everything in SQLite and exits when every
    sample post is recorded. The summary says which flags were right (the post's true medium
    differs from the stated one) and which were false, by the sample's known truth.
    The log goes to stderr, the summary to stdout. Nothing the demo did not create is deleted:
    a non-empty directory it did not make is refused.
    """
    from modbot.log import configure_logging
    from modbot.sandbox.demo import run_demo

    configure_logging(json=json_logs, level=log_level or ("WARNING" if quiet else "INFO"),
                      stream=sys.stderr)
    db = Path(db_path)
    try:
        result = run_demo(db.parent, db_name=db.name, act=not dry_run)
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_demo_summary(result)


def _print_demo_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table
    from sqlite_utils import Database

    from modbot.cli.text import plain
    from modbot.queries import summary

    console = Console()
    db = Database(result.database)
    console.print(f"\n[bold]modbot demo[/bold]: {result.released} submissions streamed from the "
                  f"sandbox in {result.seconds:.1f} s; database: {plain(result.database)}")
    t = Table(title="Decisions", title_justify="left")
    t.add_column("outcome"), t.add_column("submissions", justify="right")
    for k, v in summary.verdict_counts(db).items():
        t.add_row(plain(k), str(v))
    console.print(t)
    reasons = summary.skip_reasons(db)
    if reasons:
        t = Table(title="Not judged: why", title_justify="left")
        t.add_column("status: reason"), t.add_column("n", justify="right")
        for k, v in reasons.items():
            t.add_row(plain(k), str(v))
        console.print(t)
    tc = result.truth
    flags = tc.get("flags", {})
    t = Table(title="Mismatches (flags), checked against the sample's truth", title_justify="left")
    for col in ("title", "stated", "predicted", "conf.", "flag"):
        t.add_column(col)
    for m in summary.mismatches(db):
        t.add_row(plain((m["title"] or "")[:48]), plain(m["stated"]), plain(m["predicted"]),
                  f"{m['confidence']:.0%}", _FLAG_WORDS.get(flags.get(m["fullname"]), "unknown"))
    console.print(t)
    t = Table(title="Agreement by stated medium", title_justify="left")
    for col in ("stated", "judged", "agree", "share"):
        t.add_column(col, justify="right" if col != "stated" else "left")
    for a in summary.agreement_by_medium(db):
        share = "-" if a.agreement is None else f"{a.agreement:.0%}"
        t.add_row(plain(a.stated), str(a.judged), str(a.matches), share)
    console.print(t)
    console.print(demo_flag_line(tc))
    acts = summary.action_counts(db)
    console.print("Actions: " + (", ".join(f"{k} {v}" for k, v in acts.items()) or "none")
                  + "; sandbox received: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(result.writes.items())) or "nothing"))
    console.print("Next: [bold]sqlite3 " + plain(result.database) + "[/bold] or see README for more commands.")


#: How the Mismatches table of ``modbot demo`` names a flag's :func:`modbot.sandbox.demo.flag_truth`.
_FLAG_WORDS = {"right": "right (mis-stated)", "false": "FALSE (stated right)",
               "unknown": "unknown"}


def demo_flag_line(tc: dict) -> str:
    """The demo's one-line check of its flags against the sample's truth (``DemoResult.truth``),
    e.g. ``flags: 5 right (mis-stated posts caught), 1 false (correctly stated posts flagged);
    5 of 8 mis-stated posts caught; 41 correctly stated posts judged``."""
    line = (f"Sample check, flags: {tc['right_flags']} right (mis-stated posts caught), "
            f"{tc['false_flags']} false (correctly stated posts flagged)")
    if tc.get("unknown_flags"):
        line += f", {tc['unknown_flags']} on posts the sample has no truth for"
    return (line + f"; {tc['wrong_stated_flagged']} of {tc['wrong_stated']} mis-stated posts "
            f"caught; {tc['right_stated_judged']} correctly stated posts judged.")


#: Exit status for an unusable configuration or rejected credentials (sysexits.h EX_CONFIG;
#: defined in :mod:`modbot.cli.common`). The systemd unit lists it in RestartPreventExitStatus=.
EXIT_CONFIG = _EXIT_CONFIG


@main.command()
@click.option("--json-logs/--pretty-logs", default=None, help="Log format (default: by terminal).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Minimum level logged (praw/prawcore stay at WARNING).")
@click.pass_context
def run(ctx: click.Context, json_logs: bool | None, log_level: str) -> None:
    """Run the daemon: stream the configured subreddits until stopped.

    SIGTERM/Ctrl-C: finish or abandon (recorded) the current submission and exit 0.
    SIGHUP: reload the config file. Under systemd (Type=notify) it reports READY, pings
    the watchdog and reads credentials as described in README (deployment).
    Exit status: 0 after SIGTERM, 78 for a bad configuration or rejected credentials
    (not worth restarting), 1 for anything else.
    """
    import signal
    import threading

    import structlog

    from modbot import redact
    from modbot.daemon import Daemon
    from modbot.digest import digest_job
    from modbot.fsutil import check_folder_writable
    from modbot.learning import learning_loop
    from modbot.learning.cache import cache_prune_job
    from modbot.learning.modlog import modlog_job
    from modbot.log import configure_logging
    from modbot.notify import Notifier
    from modbot.stream import check_credentials, is_fatal, make_reddit

    configure_logging(json=json_logs, level=log_level)
    redact.install()
    logger = structlog.get_logger("modbot")
    stop = threading.Event()
    reload_requested = threading.Event()

    def _stop(signum, frame):
        stop.set()

    # before anything slow (model loading), so an early SIGTERM is honoured too
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_requested.set())
    try:
        config = _load(ctx.obj["config_path"])
    except click.ClickException as exc:
        exc.exit_code = EXIT_CONFIG
        raise
    # a wrong or unwritable storage path: exit 78 now, not a failure of every post
    for key, folder in (("image_cache", Path(config.storage.image_cache)),
                        ("database", Path(config.storage.database).parent)):
        try:
            check_folder_writable(folder)
        except OSError as exc:
            logger.error("startup_failed", error_type="ConfigError",
                         error=f"[storage] {key}: cannot write {folder}: {exc.strerror or exc}"[:300])
            raise click.exceptions.Exit(EXIT_CONFIG) from exc
    try:
        reddit = make_reddit(config)
        check_credentials(reddit)  # rejected credentials: exit 78 before loading the model
        # [learning] checked (ConfigError: exit 78), then the champion loaded (ModelError)
        learning = learning_loop(config)
        digest = digest_job(config, reddit)  # None when [digest] digest = "off"
        modlog = modlog_job(config, reddit)  # None when [learning] modlog_interval_s = 0
        prune = cache_prune_job(config)  # None without [storage] image_cache_max_bytes
        daemon = Daemon(config, reddit=reddit, classifier=learning.classifier, notifier=Notifier(),
                        jobs=tuple(j for j in (learning, digest, modlog, prune) if j is not None))
    except ModbotError as exc:
        logger.error("startup_failed", error_type=type(exc).__name__, error=str(exc)[:300])
        raise click.exceptions.Exit(EXIT_CONFIG if isinstance(exc, ConfigError) else 1) from exc
    except Exception as exc:  # check_credentials raises only fatal (credential) errors
        logger.error("startup_failed", error_type=type(exc).__name__, error=str(exc)[:300])
        raise click.exceptions.Exit(EXIT_CONFIG if is_fatal(exc) else 1) from exc

    def on_idle() -> None:
        if reload_requested.is_set():
            reload_requested.clear()
            try:
                daemon.reload(_load(ctx.obj["config_path"]))
            except click.ClickException as exc:  # keep running on the old config
                logger.error("reload_failed", error=exc.message)

    code = 0
    try:
        daemon.run(stop=stop, on_idle=on_idle)
    except Exception as exc:  # logged (redacted) here rather than as a raw traceback
        code = EXIT_CONFIG if is_fatal(exc) else 1
        logger.error("daemon_failed", error_type=type(exc).__name__, error=str(exc)[:300],
                     exit_status=code, exc_info=not is_fatal(exc))
    finally:
        daemon.close()
    if code:
        raise click.exceptions.Exit(code)


@main.command()
@click.pass_context
def medium(ctx: click.Context) -> None:
    """Read JSON lines ({"title": ..., "link_flair_text": ...}) on stdin; write each back with
    an added "stated_medium" field.

    Example: echo '{"title": "Dusk, me, oil on canvas, 2020"}' | modbot medium
    """
    from modbot.config import load_config
    from modbot.medium import Vocabulary, annotate_jsonl

    config = load_config(ctx.obj["config_path"])
    vocab = Vocabulary.default().with_terms(config.medium.vocabulary)
    annotate_jsonl(sys.stdin, sys.stdout, vocabulary=vocab)


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory to write (model.keras, labels.json, metrics.json).")
@click.option("--val", "val_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder-per-medium validation tree (for early stopping).")
@click.option("--test", "test_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder-per-medium held-out tree, evaluated once at the end.")
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the trainer's).")
@click.option("--val-fraction", type=float, default=None,
              help="Without --val: share of DATA_DIR held out (stratified, seeded) for validation.")
@click.option("--fine-tune-from", type=int, default=None, help="First Lite0 block to fine-tune (default: the recipe's).")
@click.option("--skip-blocks", default=None, metavar="N,N,...",
              help="Lite0 residual blocks to leave out, e.g. 10,13,14 (default: the recipe's; 'none' for none).")
@click.option("--quantize", type=click.Choice(["float16", "float32", "int8"]), default=None,
              help="LiteRT export format (default: the recipe's).")
@click.option("--version", "version", default=None, help="Model version string (default: arch, size, time).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the training run.")
@click.pass_context
def train(ctx: click.Context, data_dir: str, out_dir: str, val_dir: str | None, test_dir: str | None,
          epochs: int | None, val_fraction: float | None, fine_tune_from: int | None, skip_blocks: str | None,
          quantize: str | None, version: str | None, seed: int) -> None:
    """Train a medium classifier on DATA_DIR, a folder-per-medium image tree.

    The judge's thresholds are fitted on the validation images to the configured
    ``[judge] false_flag_budget``. Prints the metrics (as in the model directory's
    metrics.json) as JSON on stdout; progress (data loaded, features computed, one line per
    epoch) goes to stderr.
    """
    import json

    from modbot.ml.training import train_model

    budget = _load(_config_path(ctx)).judge.false_flag_budget  # a config error stops it before training
    _progress_to_stderr()
    kwargs: dict[str, object] = {"seed": seed, "val_dir": val_dir, "test_dir": test_dir,
                                 "version": version, "verbose": 0, "false_flag_budget": budget}
    if epochs is not None:
        kwargs["epochs"] = epochs
    if val_fraction is not None:
        kwargs["val_fraction"] = val_fraction
    if fine_tune_from is not None:
        kwargs["fine_tune_from"] = fine_tune_from
    if quantize is not None:
        kwargs["quantize"] = quantize
    if skip_blocks is not None:
        try:
            kwargs["skip_blocks"] = () if skip_blocks.strip().lower() == "none" else tuple(
                int(b) for b in skip_blocks.split(",") if b.strip())
        except ValueError as exc:
            raise click.BadParameter(f"not a list of block numbers: {skip_blocks!r}", param_hint="--skip-blocks") from exc
    try:
        metrics = train_model(data_dir, out_dir, **kwargs)
    except ValueError as exc:  # a recipe argument the trainer refuses
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(metrics, indent=2, default=str))


def _progress_to_stderr() -> None:
    """Show the trainer's INFO log lines (``modbot.ml`` loggers: one per stage and per epoch)
    on stderr, timestamped; Keras's own per-epoch output is off (``verbose=0``), so stdout
    carries only the metrics JSON."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s train: %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("modbot.ml")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("migrate")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Database (default: config).")
@click.pass_context
def db_migrate(ctx: click.Context, db_path: str | None) -> None:
    """Create the database or apply pending migrations, then list them."""
    from modbot.migrations import migrations
    from modbot.queries.db import database_path
    from modbot.record import open_database

    path = database_path(_config_path(ctx), db_path)
    database = open_database(path)
    for m in migrations.applied(database):
        click.echo(f"applied  {m.name}  {m.applied_at}")
    click.echo(f"{path}: up to date")


@db.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Database (default: config).")
@click.pass_context
def db_backup(ctx: click.Context, dest: str, db_path: str | None) -> None:
    """Copy the database to DEST, a new file, while the daemon runs (a consistent snapshot).

    The database is only read; DEST is never overwritten. The copy is checked
    (PRAGMA quick_check) and the command exits 1 when it is not sound.
    """
    from modbot.queries.db import backup_database, database_path

    done = backup_database(database_path(_config_path(ctx), db_path), dest)
    click.echo(f"{done['dest']}: {done['bytes']} bytes, {done['submissions']} submissions, "
               f"check {done['integrity']}")
    if done["integrity"] != "ok":
        raise click.exceptions.Exit(1)
