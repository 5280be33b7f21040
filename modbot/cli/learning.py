"""Commands of the learning loop: ``modbot collect``, ``modbot retrain``, ``modbot models``.

Registered lazily by ``modbot.cli`` (``LAZY_COMMANDS``); :data:`COMMANDS` lists them for
callers that build their own group. Importing this module imports neither TensorFlow nor
praw; ``retrain`` imports TensorFlow when it runs, ``collect`` praw.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any

import click

from modbot.cli.common import config_path
from modbot.queries.db import config_for_db


def _config(ctx: click.Context, db_path: str | None = None) -> Any:
    """The configuration, with ``[storage] database`` replaced by ``--db`` when given."""
    return config_for_db(config_path(ctx), db_path)


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _parse_time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: give Unix seconds or an ISO date/time") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


# --- collect ---------------------------------------------------------------------------------


@click.command("collect")
@click.option("--subreddit", required=True, help="Subreddit to read, e.g. Art.")
@click.option("--per-medium", type=click.IntRange(min=1), required=True,
              help="Images to collect per stated medium (all runs of this subreddit count).")
@click.option("--media", default=None,
              help="Comma-separated target media (default: every canonical medium but "
                   "mixed_media and other).")
@click.option("--listing", type=click.Choice(["new", "top", "search"]), default="new", show_default=True,
              help="Which listing to read (Reddit serves ~1000 submissions per listing).")
@click.option("--query", default=None, help="Search query for --listing search, e.g. 'flair:Painting'.")
@click.option("--time-filter", type=click.Choice(["hour", "day", "week", "month", "year", "all"]),
              default="all", show_default=True, help="For --listing top/search.")
@click.option("--max-posts", type=click.IntRange(min=1), default=None,
              help="Read at most this many submissions now (run again to resume).")
@click.option("--fresh", is_flag=True, help="Start a new run instead of resuming an unfinished one.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Database (default: config).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def collect(ctx: click.Context, subreddit: str, per_medium: int, media: str | None, listing: str,
            query: str | None, time_filter: str, max_posts: int | None, fresh: bool,
            db_path: str | None, progress: bool, as_json: bool) -> None:
    """Build a labelled dataset balanced by stated medium from a subreddit's history.

    Reads the listing through praw (credentials as for `modbot run`), keeps a submission while
    its stated medium has fewer than --per-medium images, caches its first image, and records
    everything (tables collect_runs, collected_posts). Resumable: run the same command again.

    Example: modbot collect --subreddit Art --per-medium 200
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from modbot.fingerprint import single_blas_thread
    from modbot.learning.collect import DEFAULT_MEDIA
    from modbot.learning.collect import collect as run_collect
    from modbot.medium import Vocabulary
    from modbot.record import open_database
    from modbot.stream import make_reddit

    config = _config(ctx, db_path)
    single_blas_thread()  # every collected image is fingerprinted: see its docstring
    targets = tuple(m.strip() for m in media.split(",") if m.strip()) if media else DEFAULT_MEDIA
    reddit = make_reddit(config)
    db = open_database(config.storage.database)
    from modbot.images import ImageFetcher  # requests and Pillow: not needed for --help

    fetcher = ImageFetcher.from_config(config)
    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[note]}"), console=console, disable=not progress)
    tasks: dict[str, Any] = {}

    def on_progress(counts: dict[str, int], scanned: int) -> None:
        for m, n in counts.items():
            if m not in tasks:
                tasks[m] = bar.add_task(m, total=per_medium, note="")
            bar.update(tasks[m], completed=min(n, per_medium))
        bar.update(tasks["_scanned"], completed=scanned, note=f"{scanned} submissions read")

    try:
        with bar:
            tasks["_scanned"] = bar.add_task("read", total=None, note="")
            for m in targets:
                tasks[m] = bar.add_task(m, total=per_medium, note="")
            result = run_collect(reddit, db, fetcher, subreddit=subreddit, per_medium=per_medium,
                                 media=targets, listing=listing, query=query,
                                 time_filter=time_filter, max_posts=max_posts, fresh=fresh,
                                 vocabulary=Vocabulary.default().with_terms(config.medium.vocabulary),
                                 on_progress=on_progress)
    finally:
        fetcher.close()
        db.conn.close()
    if as_json:
        out = dataclasses.asdict(result)
        out["skipped"] = dict(result.skipped)
        click.echo(json.dumps(out))
    else:
        click.echo(f"run {result.run_id} ({'resumed' if result.resumed else 'new'}): {result.status}; "
                   f"read {result.scanned} submissions, kept {result.kept}")
        click.echo("collected per medium: " + ", ".join(f"{m} {n}" for m, n in result.counts.items()))
        if result.skipped:
            click.echo("not kept: " + ", ".join(f"{k} {v}" for k, v in result.skipped.most_common()))
        if result.error:
            click.echo(f"error: {result.error} (run the same command again to resume)", err=True)
    if result.status == "failed":
        raise click.exceptions.Exit(1)


# --- modlog ----------------------------------------------------------------------------------


@click.command("modlog")
@click.option("--subreddit", "subreddits", multiple=True,
              help="Subreddit whose mod log to read (repeatable; default: [reddit] subreddits).")
@click.option("--max-pages", type=click.IntRange(min=1), default=10, show_default=True,
              help="Most pages (100 entries) read per action.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Database (default: config).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def modlog(ctx: click.Context, subreddits: tuple[str, ...], max_pages: int, db_path: str | None,
           as_json: bool) -> None:
    """Read moderators' actions from the subreddit's moderation log as labels, once.

    An approval of a judged post = the stated medium stands (dismissed flag); a removal with a
    wrong-medium reason ([actions] removal_reason, [learning] modlog_removal_reasons) = the
    model's prediction is the true medium (confirmed flag); a flair change = the new flair's
    medium. Each becomes a review (source modlog) shown by `modbot review show` and counted by
    `modbot report`; every entry is read once, ever. `modbot run` does this every [learning]
    modlog_interval_s seconds. Needs a moderator account (credentials as for `modbot run`).
    """
    from modbot.learning.modlog import (
        account_name,
        read_modlog,
        subreddits_of,
        wrong_medium_reasons,
    )
    from modbot.medium import Vocabulary
    from modbot.record import open_database
    from modbot.stream import make_reddit

    config = _config(ctx, db_path)
    reddit = make_reddit(config)
    db = open_database(config.storage.database)
    try:
        result = read_modlog(reddit, db, subreddits=list(subreddits) or subreddits_of(config),
                             reasons=wrong_medium_reasons(config), me=account_name(reddit),
                             vocabulary=Vocabulary.default().with_terms(config.medium.vocabulary),
                             max_pages=max_pages)
    except Exception as exc:  # praw/prawcore: network, 403 (not a moderator), ...
        click.echo(f"error: {type(exc).__name__}: {str(exc)[:300]} (run it again: nothing is "
                   "read twice)", err=True)
        raise click.exceptions.Exit(1) from exc
    finally:
        db.conn.close()
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(f"read {result.read} mod log entries: {result.labels} labels "
               f"({', '.join(f'{k} {v}' for k, v in sorted(result.decisions.items())) or 'none'})")
    if result.ignored:
        click.echo("not labels: " + ", ".join(f"{k} {v}" for k, v in result.ignored.most_common()))
    if result.gaps:
        click.echo("entries missed (more than --max-pages new): " + ", ".join(result.gaps), err=True)


# --- retrain ---------------------------------------------------------------------------------


@click.command("retrain")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Database (default: config).")
@click.option("--cutoff", default=None, help="Use labels recorded up to this time (Unix seconds or "
              "ISO, UTC; default: now).")
@click.option("--no-promote", is_flag=True, help="Evaluate and record, but never promote.")
@click.option("--shuffle-labels", is_flag=True,
              help="Train on shuffled labels: a deliberately worse challenger, to check the gates.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON.")
@click.pass_context
def retrain(ctx: click.Context, db_path: str | None, cutoff: str | None, no_promote: bool,
            shuffle_labels: bool, as_json: bool) -> None:
    """Train a challenger on the labels, compare it with the champion, promote it if better.

    Promotion needs a macro-F1 gain of at least [learning] margin on the fixed evaluation set
    and every medium's recall at or above its floor. Every run is recorded (`modbot models`).
    A running daemon serves a promoted model within [learning] watch_interval_s seconds.
    Exit status 1 when the run failed.
    """
    from modbot.learning.retrain import retrain_once
    from modbot.log import configure_logging

    config = _config(ctx, db_path)
    configure_logging(level="WARNING")
    result = retrain_once(config, trigger="cli", cutoff=_parse_time(cutoff),
                          shuffle_labels=shuffle_labels, promote=not no_promote)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result)))
    else:
        f1 = (lambda v: "-" if v is None else f"{v:.4f}")
        click.echo(f"run {result.run_id}: {result.status} — {result.reason}")
        click.echo(f"champion {result.champion_version}: macro-F1 {f1(result.champion_macro_f1)}; "
                   f"challenger {result.version or '-'}: macro-F1 {f1(result.challenger_macro_f1)}; "
                   f"{result.duration_s} s")
    if result.status == "failed":
        raise click.exceptions.Exit(1)


# --- models ----------------------------------------------------------------------------------


@click.group("models", invoke_without_command=True)
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="Database (default: config).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (versions and runs).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Runs shown.")
@click.pass_context
def models(ctx: click.Context, db_path: str | None, as_json: bool, limit: int) -> None:
    """List model versions and retraining runs; mark the champion.

    Runs newest first: status (promoted, refused, skipped, failed, baseline), macro-F1 of the
    champion and the challenger on the evaluation set, data counts and the reason.
    """
    ctx.ensure_object(dict)
    ctx.obj["db_path"] = db_path
    if ctx.invoked_subcommand is not None:
        return
    from modbot.learning.registry import ModelRegistry
    from modbot.queries.db import open_readonly
    from modbot.queries.models import champion_history, model_rows

    config = _config(ctx, db_path)
    registry = ModelRegistry(config.learning.models_dir)
    champion = registry.champion()
    db = open_readonly(config.storage.database)
    try:
        rows = model_rows(db, limit=limit)
        history = champion_history(db, limit=limit)
    finally:
        db.conn.close()
    versions = registry.versions()
    if as_json:
        click.echo(json.dumps({"champion": champion, "models_dir": str(registry.root),
                               "versions": versions, "runs": rows, "champion_history": history},
                              default=str))
        return
    from rich.console import Console

    render_runs(Console(), champion, str(registry.root), versions, rows, history)


def render_runs(console: Any, champion: str | None, root: str, versions: list[str],
                rows: list[dict[str, Any]], history: list[dict[str, Any]]) -> None:
    """The champion, then each run as a short block of lines (status, version, trigger, start,
    duration; both macro-F1 scores and data counts; the reason) that rich wraps at the
    console's width, so it reads at 80 columns. Texts from the database printed plain."""
    from modbot.cli.text import plain

    def f1(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    serving = plain(champion) if champion else "(none: serving \\[storage] model_dir or the shipped model)"
    console.print(f"champion: [bold]{serving}[/bold]; versions in {plain(root)}: "
                  f"{plain(', '.join(versions)) or 'none'}", overflow="fold")
    console.print("[bold]Runs (newest first; * = champion)[/bold]" if rows else "No retraining runs yet.")
    for r in rows:
        version = plain(r["version"] or "-") + (" *" if r["version"] and r["version"] == champion else "")
        took = "-" if r["duration_s"] is None else f"{r['duration_s']:.0f} s"
        console.print(f"run {r['id']}  [bold]{plain(r['status'])}[/bold]  {version}  "
                      f"({plain(r['trigger'])}, {_iso(r['started_at'])}, {took})", overflow="fold")
        console.print(f"    macro-F1 champion {f1(r['champion_macro_f1'])} → challenger "
                      f"{f1(r['challenger_macro_f1'])}; images train {r['n_train'] or '-'}, "
                      f"eval {r['n_eval'] or '-'}", overflow="fold")
        if r["reason"]:
            console.print(f"    {plain(r['reason'])}", overflow="fold")
    if history:
        console.print("champion changes: " + "; ".join(
            f"{_iso(h['at'])} {plain(h['event'])} {plain(h['version'])}" for h in history),
            overflow="fold")


@models.command("rollback")
@click.argument("version")
@click.option("--note", default=None, help="Why (recorded in champion_history).")
@click.option("--by", "by", default=None, help="Who (default: $MODBOT_MODERATOR or the OS user).")
@click.pass_context
def models_rollback(ctx: click.Context, version: str, note: str | None, by: str | None) -> None:
    """Make VERSION (see `modbot models`) the champion again.

    Atomic: the champion pointer file is replaced in one step. A running daemon swaps the model
    in within [learning] watch_interval_s seconds, without a restart.
    """
    from modbot.learning.registry import ModelRegistry, rollback
    from modbot.queries.review import default_moderator
    from modbot.record import open_database

    config = _config(ctx, (ctx.obj or {}).get("db_path"))
    registry = ModelRegistry(config.learning.models_dir)
    db = open_database(config.storage.database)
    try:
        previous = registry.champion()
        meta = rollback(registry, version, db=db, by=by or default_moderator(), note=note)
    finally:
        db.conn.close()
    click.echo(f"champion: {previous or '(none)'} -> {meta['version']} "
               f"(labels {', '.join(meta['labels'])}) at {_iso(time.time())}")


@models.command("prune")
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="Versions to keep besides the champion, the previous champion and the baseline "
                   "(default: [learning] keep_versions).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def models_prune(ctx: click.Context, keep: int | None, dry_run: bool, as_json: bool) -> None:
    """Delete old model versions from [learning] models_dir.

    Keeps the KEEP most recently added versions, and always the champion, the version it
    replaced (for `modbot models rollback`) and the adopted baseline. The daemon does this
    after each promotion. Refused while a retraining run holds the registry.
    """
    from modbot.fsutil import file_lock
    from modbot.learning.registry import ModelRegistry, baseline_versions
    from modbot.learning.retrain import RETRAIN_LOCK
    from modbot.queries.db import open_readonly

    config = _config(ctx, (ctx.obj or {}).get("db_path"))
    keep = config.learning.keep_versions if keep is None else keep
    if keep < 1:
        raise click.UsageError("[learning] keep_versions is 0 (keep every version): pass --keep N")
    registry = ModelRegistry(config.learning.models_dir)
    if not registry.root.is_dir():
        raise click.ClickException(f"no model registry at {registry.root} ([learning] models_dir)")
    db = open_readonly(config.storage.database)
    try:
        protect = baseline_versions(db)
    finally:
        db.conn.close()
    with file_lock(registry.root / RETRAIN_LOCK, wait=False) as alone:
        if not alone:
            raise click.ClickException("a retraining run is using the registry; try again when it ends")
        report = registry.prune(keep, protect=protect, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(report.removed)} version(s), {report.bytes_freed / 1e6:.1f} MB"
               + (f": {', '.join(report.removed)}" if report.removed else ""))
    click.echo(f"kept {len(report.kept)}: {', '.join(report.kept) or 'none'} "
               f"(always kept: {', '.join(report.protected) or 'none'})")


#: The commands of this module (``modbot.cli`` registers them lazily, by name).
COMMANDS = [collect, modlog, retrain, models]
