"""``modbot similar IMAGE_OR_URL``: has the subreddit seen this picture before?

A moderator's own look-up in the repost finder's fingerprints (:mod:`modbot.repost`): the
image (a file, or an http(s) URL downloaded through :class:`modbot.images.ImageFetcher` with
its size cap, timeouts and private-address guard, into a temporary folder) is fingerprinted and
compared with every image the daemon fetched or ``modbot collect`` collected. The database is
opened read-only. No TensorFlow; faiss and numpy are imported only when the command runs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from modbot.cli.common import config_path, db_option
from modbot.cli.text import plain


def _read_image(source: str, config: Any, allow_hosts: tuple[str, ...]) -> Any:
    """The decoded RGB image of a file path or an http(s) URL (``ImageError`` if unusable)."""
    if source.lower().startswith(("http://", "https://")):
        from modbot.domain import ImageRef
        from modbot.images import ImageFetcher

        with tempfile.TemporaryDirectory(prefix="modbot-similar-") as tmp:
            hosts = (*config.images.allow_hosts, *allow_hosts)
            with ImageFetcher.from_config(config, allow_hosts=hosts) as fetcher:
                fetcher.cache_dir = Path(tmp)
                return fetcher.fetch(ImageRef(source, "direct")).rgb
    from modbot.decode import decode_image

    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise click.FileError(source, hint=exc.strerror or str(exc)) from exc
    rgb, _ = decode_image(data, max_side=config.images.max_side, max_pixels=config.images.max_pixels)
    return rgb


def _render(rows: list[dict[str, Any]]) -> None:
    """One unwrapped line per post (links stay copy-pastable), closest first."""
    from rich.console import Console

    from modbot.queries.report import iso_utc

    console = Console()
    if not rows:
        console.print("No stored post shows this picture.")
        return
    console.print(f"Same picture: {len(rows)} post(s), closest first (distance in bits of 256)")
    for r in rows:
        console.print(
            f"{r['distance']:>3}{' mirrored' if r['mirrored'] else ''}  {plain(r['link'])}  "
            f"by {plain(r['author'] or '[deleted]')} (artist {plain(r['artist'] or '-')}), "
            f"posted {iso_utc(r['created_utc'], seconds=True) or '-'}  "
            f"({plain(r['source'])}, image {r['position']})", soft_wrap=True)


@click.command("similar")
@click.argument("source", metavar="IMAGE_OR_URL")
@db_option
@click.option("--max-distance", type=click.IntRange(0, 256),
              help="Largest distance in bits of 256 (default: [reposts] max_distance).")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
              help="At most this many posts.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="table for people; json for scripts.")
@click.option("--allow-host", "allow_hosts", multiple=True,
              help="Host name exempt from the private-address guard (e.g. 127.0.0.1).")
@click.pass_context
def similar(ctx: click.Context, source: str, db_path: str | None, max_distance: int | None,
            limit: int, fmt: str, allow_hosts: tuple[str, ...]) -> None:
    """Find earlier posts that show the same picture as IMAGE_OR_URL (a file or http(s) URL).

    \b
    Examples:
      modbot similar --db modbot-demo/modbot.db painting.jpg
      modbot similar https://i.redd.it/abc123.jpg --format json
    """
    from modbot.queries.db import config_for_db, open_readonly
    from modbot.repost import similar_posts

    config = config_for_db(config_path(ctx), db_path)
    image = _read_image(source, config, allow_hosts)
    db = open_readonly(config.storage.database)
    try:
        rows = similar_posts(db, image, limit=limit, max_distance=config.reposts.max_distance
                             if max_distance is None else max_distance)
    finally:
        db.conn.close()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        _render(rows)
