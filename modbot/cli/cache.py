"""``modbot cache``: where the image cache stands against ``[storage] image_cache_max_bytes``
(``status``, the default: reads only), and pruning it by hand (``prune``; ``--dry-run`` lists
what it would remove). The daemon prunes on its own (:mod:`modbot.learning.cache`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from modbot.cli.common import config_path, db_option
from modbot.queries.db import config_for_db

if TYPE_CHECKING:
    from modbot.imagecache import PruneReport


def _size(n: float) -> str:
    """Bytes as a short human size (decimal units, as disks are sold)."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def _print(report: PruneReport, what: str) -> None:
    limit = _size(report.limit_bytes) if report.limit_bytes else "none"
    click.echo(f"image cache {report.cache_dir}: {report.files} files, {_size(report.bytes)} "
               f"(limit {limit})")
    click.echo("  pinned (labelled by moderators, or flagged within 30 days): "
               f"{report.pinned_files} files, {_size(report.pinned_bytes)}")
    click.echo(f"  used within a day: {_size(report.young_bytes)}")
    click.echo(f"  {what}: {report.removed_files} files, {_size(report.removed_bytes)}"
               f" -> {_size(report.bytes_after)}; stray temporary files: {report.temp_files}")
    if report.over_limit:
        click.echo("  still over the limit: the pinned and recently used images alone exceed it")


@click.group("cache", invoke_without_command=True)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def cache_cmd(ctx: click.Context, db_path: str | None, as_json: bool) -> None:
    """The image cache against its limit ([storage] image_cache_max_bytes).

    Without a subcommand: status (reads only; what pruning would remove now). Images
    moderators labelled, and those of posts flagged within 30 days, are never removed;
    retraining downloads other evicted images again.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(db_path=db_path, as_json=as_json)
    if ctx.invoked_subcommand is None:
        ctx.invoke(cache_status)


def _run(ctx: click.Context, *, dry_run: bool, db_path: str | None, as_json: bool) -> None:
    from modbot.learning.cache import cache_known_share, prune_image_cache

    config = config_for_db(config_path(ctx), db_path or ctx.obj.get("db_path"))
    st = config.storage
    known, sampled = cache_known_share(st.database, st.image_cache)
    if sampled and not known:
        raise click.ClickException(
            f"the image cache {st.image_cache} does not belong to the database {st.database}: none "
            f"of {sampled} cached images sampled is recorded there, so its labelled images could "
            "not be kept. Pass the --config (or --db) of the installation that filled this cache.")
    report = prune_image_cache(config, dry_run=dry_run)
    if report is None:
        raise click.ClickException("a retraining run is reading the image cache; try again when it ends")
    if as_json or ctx.obj.get("as_json"):
        click.echo(json.dumps(report.as_dict()))
    else:
        _print(report, "would remove" if dry_run else "removed")


@cache_cmd.command("status")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def cache_status(ctx: click.Context, db_path: str | None = None, as_json: bool = False) -> None:
    """Size, limit, pinned images and what pruning would remove now (changes nothing)."""
    _run(ctx, dry_run=True, db_path=db_path, as_json=as_json)


@cache_cmd.command("prune")
@db_option
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def cache_prune(ctx: click.Context, db_path: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove the least recently used originals down to 90 % of the limit (as the daemon does
    every [storage] image_cache_prune_interval_s seconds)."""
    _run(ctx, dry_run=dry_run, db_path=db_path, as_json=as_json)
