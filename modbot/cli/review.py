"""``modbot review``: moderators go through flagged submissions and record what is true.

A moderator **confirms** a flag (the stated medium is wrong; the true medium is the model's
prediction unless ``--medium`` says otherwise) or **dismisses** it (the stated medium is right).
The data and the rules are in :mod:`modbot.queries.review`; this module parses options, renders
(rich tables, JSON) and runs the interactive ``walk``. Decisions are kept with their history;
the last one is in force. Commands are idempotent.

No TensorFlow here; rich is imported only when something is printed as a table.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Sequence
from typing import Any

import click
from sqlite_utils import Database

from modbot.cli.common import config_path, db_option
from modbot.cli.text import plain, printable
from modbot.domain import MEDIA
from modbot.errors import InputError
from modbot.queries.db import database_path, open_existing, open_readonly
from modbot.queries.report import iso_utc, parse_day
from modbot.queries.review import (
    check_moderator,
    default_moderator,
    flagged,
    record_review,
    resolve_fullname,
    short_link,
    submission_detail,
)


# --- rendering ---------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _decision_text(r: dict[str, Any]) -> str:
    if not r.get("decision"):
        return "pending"
    word = "confirmed" if r["decision"] == "confirm" else "dismissed"
    return f"{word}\n= {plain(r['true_medium'])}\n{plain(r['moderator'])}"


def render_list(rows: list[dict[str, Any]], console: Any, *, title: bool = True) -> None:
    """The queue as a rich table that fits 80 columns (multi-line cells; paths folded)."""
    from rich.table import Table

    if not rows:
        console.print("No flagged submissions match.")
        return
    tab = Table(show_lines=True, title_justify="left",
                title=f"Flagged submissions ({len(rows)}), newest first" if title else None)
    tab.add_column("submission", no_wrap=True, max_width=20, overflow="ellipsis")
    tab.add_column("stated → predicted", no_wrap=True)
    tab.add_column("review", no_wrap=True, max_width=11, overflow="ellipsis")
    tab.add_column("title, link, images, model", overflow="fold", min_width=24)
    for r in rows:
        sub = f"{plain(r['fullname'])}\n{iso_utc(r['created_utc'])}\n{plain(r['author'] or '[deleted]')}"
        claim = (f"{plain(r['stated'])}\n→ {plain(r['predicted'] or '?')} {_pct(r['confidence'])}\n"
                 f"[dim]{plain(r['verdict'])}[/dim]")
        title = r["title"] or ""
        if len(title) > 60:
            title = title[:59] + "…"
        info = [f"[bold]{plain(title)}[/bold]", plain(short_link(r["id"]) or "-")]
        info += [f"img: {plain(p)}" for p in r["images"]] or ["img: (none cached)"]
        info.append(f"[dim]model {plain(r['model_version'] or '?')}[/dim]")
        tab.add_row(sub, claim, _decision_text(r), "\n".join(info))
    console.print(tab)


def render_detail(d: dict[str, Any], console: Any) -> None:
    """One submission in full: post, stated medium, verdict, every image's probabilities,
    actions taken and the review history. Every text from the database is printed as plain
    text, control characters escaped (:mod:`modbot.cli.text`)."""
    def line(text: str) -> None:
        # one logical line each, never re-wrapped: URLs and paths stay copy-pastable
        console.print(text, soft_wrap=True)

    _detail_post(d, line)
    _detail_images(d, line, console)
    _detail_actions(d["actions"], console)
    _detail_reposts(d.get("reposts") or [], console)
    _detail_reviews(d["reviews"], console)


def _detail_post(d: dict[str, Any], line: Any) -> None:
    s, v = d["submission"], d["verdict"]
    line(f"[bold]{plain(s['fullname'])}[/bold]  r/{plain(s['subreddit'])}  posted "
         f"{iso_utc(s['created_utc'], seconds=True)} by {plain(s['author'] or '[deleted]')}")
    line(f"title:   {plain(s['title'] or '')}")
    line(f"link:    {plain(s['permalink_url'] or '-')}")
    line(f"url:     {plain(s['url'] or '-')}")
    line(f"stated:  {plain(s['stated_medium'])} (from {plain(s['stated_source'])}: "
         f"{plain(repr(s['stated_raw']))}; link flair {plain(repr(s['link_flair_text']))})")
    line(f"status:  {plain(s['status'])}" + (f" ({plain(s['reason'])})" if s["reason"] else "")
         + f", attempts {s['attempts']}")
    if v:
        line(f"verdict: [bold]{plain(v['kind'])}[/bold] — predicted {plain(v['predicted'] or '?')} "
             f"{_pct(v['confidence'])} over {v['n_images']} image(s), model "
             f"{plain(v['model_version'] or '?')}; {plain(v['reason'] or '')}")
    else:
        line("verdict: none")


def _detail_images(d: dict[str, Any], line: Any, console: Any) -> None:
    from rich.table import Table

    v, images = d["verdict"], d["images"]
    for im in images:
        size = f"{im['width']}x{im['height']} {plain(im['format'])}" if im["width"] else ""
        line(f"image {im['position']}: {plain(im['status'])} {size} ({plain(im['source'])})")
        line(f"  file: {plain(im['path'] or '-')}")
        line(f"  url:  {plain(im['url'])}")
        if im["error"]:
            line(f"  error: {plain(im['error'])}")
    predicted = [im for im in images if im["prediction"]]
    if not predicted:
        return
    labels: list[str] = []
    for im in predicted:
        for k in im["prediction"]["probabilities"]:
            if k not in labels:
                labels.append(k)
    tab = Table(title="Probabilities by image", title_justify="left")
    tab.add_column("medium")
    for im in predicted:
        tab.add_column(f"img {im['position']}", justify="right")
    if len(predicted) > 1:
        tab.add_column("mean", justify="right")
    for lab in labels:
        vals = [float(im["prediction"]["probabilities"].get(lab, 0.0)) for im in predicted]
        cells = [f"{x:.1%}" for x in vals]
        if len(predicted) > 1:
            cells.append(f"{sum(vals) / len(vals):.1%}")
        is_top = v is not None and lab == v["predicted"]
        tab.add_row(plain(lab), *cells, style="bold" if is_top else None)
    console.print(tab)


def _detail_actions(actions: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    if not actions:
        console.print("actions: none")
        return
    tab = Table(title="Actions", title_justify="left")
    for c in ("kind", "status", "when", "reddit id / error"):
        tab.add_column(c, overflow="fold")
    for a in actions:
        tab.add_row(plain(a["kind"]), plain(a["status"]), iso_utc(a["created_at"], seconds=True),
                    plain(a["reddit_id"] or a["error"] or ""))
    console.print(tab)


def _detail_reposts(rows: list[dict[str, Any]], console: Any) -> None:
    """Repost findings, one unwrapped line each (links stay copy-pastable): earlier posts this
    one matched, and later posts that matched it."""
    if not rows:
        console.print("reposts: none")
        return
    for r in rows:
        dist = f"distance {r['distance']} of 256 bits" + (", mirrored" if r["mirrored"] else "")
        if r["later"]:
            text = (f"reposted later ({plain(r['kind'])}): {plain(r['submission'])} by "
                    f"{plain(r['author'] or '[deleted]')} (artist {plain(r['artist'] or '-')}), "
                    f"posted {iso_utc(r.get('later_created_utc'), seconds=True) or '-'}; {dist}")
        else:
            text = (f"repost ({plain(r['kind'])}) of {plain(r['match_link'])} by "
                    f"{plain(r['match_author'] or '[deleted]')} (artist "
                    f"{plain(r['match_artist'] or '-')}), posted "
                    f"{iso_utc(r['match_created_utc'], seconds=True) or '-'}; image "
                    f"{r['position']}, {dist}")
        console.print(text, soft_wrap=True)


def _detail_reviews(reviews: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    if not reviews:
        console.print("reviews: none")
        return
    tab = Table(title="Reviews (last one in force)", title_justify="left")
    for c in ("when", "moderator", "source", "decision", "true", "note"):
        tab.add_column(c, overflow="fold")
    for i, r in enumerate(reviews):
        last = i == len(reviews) - 1
        tab.add_row(iso_utc(r["created_at"], seconds=True), plain(r["moderator"]),
                    plain(r.get("source") or "cli"), plain(r["decision"]), plain(r["true_medium"]),
                    plain(r["note"] or "", multiline=True), style="bold" if last else "dim")
    console.print(tab)


# --- the commands ------------------------------------------------------------------------------
def _console():
    from rich.console import Console

    return Console()


def _open_db(ctx: click.Context, db_path: str | None, *, write: bool = False) -> Database:
    """The database of ``--db`` (of the subcommand, else of ``modbot review``), else the
    configured one: read-only unless ``write``. ``StoreError`` when there is none or it is not
    a (current) modbot database."""
    if not db_path and ctx.parent is not None:
        db_path = ctx.parent.params.get("db_path")
    path = database_path(config_path(ctx), db_path)
    return open_existing(path) if write else open_readonly(path)


def _moderator_option(f):
    return click.option("--moderator", envvar="MODBOT_MODERATOR",
                        help="Who decides (default: $MODBOT_MODERATOR, else the OS user name).")(f)


def _filter_options(f):
    options = [
        click.option("--verdict", type=click.Choice(["mismatch", "uncertain", "all"]),
                     default="mismatch", show_default=True,
                     help="Which flags: mismatches, uncertain verdicts, or both."),
        click.option("--medium", type=click.Choice(MEDIA),
                     help="Only posts whose stated or predicted medium is this."),
        click.option("--since", metavar="YYYY-MM-DD",
                     help="Only posts made on/after this day (UTC)."),
        click.option("--until", metavar="YYYY-MM-DD",
                     help="Only posts made on/before this day (UTC)."),
        click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
                     help="At most this many posts."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _query(db: Database, verdict: str, medium: str | None, since: str | None, until: str | None,
           limit: int, state: str) -> list[dict[str, Any]]:
    try:
        lo = parse_day(since) if since else None
        hi = parse_day(until, end=True) if until else None
    except InputError as exc:  # a bad option value: a usage error (exit 2), as click's own
        raise click.BadParameter(str(exc)) from exc
    kinds = ("mismatch", "uncertain") if verdict == "all" else (verdict,)
    return flagged(db, verdicts=kinds, medium=medium, since=lo, until=hi, state=state, limit=limit)


@click.group("review", invoke_without_command=True)
@db_option
@_filter_options
@click.option("--state", type=click.Choice(["pending", "reviewed", "all"]), default="all",
              show_default=True, help="Listing: only undecided, only decided, or every flag.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Listing format (json: a list of objects, full paths).")
@click.option("--interactive", "-i", is_flag=True,
              help="Walk the pending queue one post at a time (same as `review walk`).")
@_moderator_option
@click.option("--viewer", help="Command that opens an image (the path is appended); "
              "default: the system viewer.")
@click.pass_context
def review(ctx: click.Context, db_path: str | None, verdict: str, medium: str | None,
           since: str | None, until: str | None, limit: int, state: str, fmt: str,
           interactive: bool, moderator: str | None, viewer: str | None) -> None:
    """List flagged submissions (newest first), or review them.

    \b
    Examples:
      modbot review --db modbot-demo/modbot.db
      modbot review --verdict all --medium painting --since 2020-11-01 --limit 10
      modbot review --db modbot-demo/modbot.db show t3_jkyp2v
      modbot review --db modbot-demo/modbot.db confirm jkyp2v
      modbot review --db modbot-demo/modbot.db dismiss jkyp2v --note "graphite, checked"
      modbot review --db modbot-demo/modbot.db walk
    """
    if ctx.invoked_subcommand is not None:
        return
    if interactive:
        ctx.invoke(walk, db_path=db_path, verdict=verdict, medium=medium, since=since,
                   until=until, limit=limit, moderator=moderator, viewer=viewer)
        return
    db = _open_db(ctx, db_path)
    try:
        rows = _query(db, verdict, medium, since, until, limit, state)
    finally:
        db.conn.close()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        render_list(rows, _console())


@review.command("show")
@click.argument("ident", metavar="ID")
@db_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people; json (every recorded field) for scripts.")
@click.pass_context
def show(ctx: click.Context, ident: str, db_path: str | None, fmt: str) -> None:
    """Print one submission in full: images' probabilities, actions, review history.

    ID is a fullname (t3_abc), a bare id (abc) or a permalink.
    """
    db = _open_db(ctx, db_path)
    try:
        detail = submission_detail(db, resolve_fullname(db, ident))
    finally:
        db.conn.close()
    if fmt == "json":
        click.echo(json.dumps(detail, indent=2))
    else:
        render_detail(detail, _console())


def _decide(ctx: click.Context, ident: str, db_path: str | None, decision: str,
            medium: str | None, moderator: str | None, note: str | None) -> None:
    db = _open_db(ctx, db_path, write=True)
    try:
        fullname = resolve_fullname(db, ident)
        rev, created = record_review(db, fullname, decision, true_medium=medium,
                                     moderator=moderator, note=note)
    finally:
        db.conn.close()
    word = "confirmed" if decision == "confirm" else "dismissed"
    if created:
        click.echo(printable(f"{fullname}: {word} by {rev.moderator} — true medium "
                             f"{rev.true_medium} (stated {rev.stated}, predicted {rev.predicted})"))
    else:
        click.echo(printable(f"{fullname}: already {word} by {rev.moderator} "
                             f"({iso_utc(rev.created_at, seconds=True)}); nothing changed"))


@review.command("confirm")
@click.argument("ident", metavar="ID")
@db_option
@click.option("--medium", type=click.Choice(MEDIA),
              help="The true medium (default: the model's prediction).")
@_moderator_option
@click.option("--note", help="Free text kept with the decision.")
@click.pass_context
def confirm(ctx: click.Context, ident: str, db_path: str | None, medium: str | None,
            moderator: str | None, note: str | None) -> None:
    """Confirm the flag on ID: the stated medium is wrong (true medium: the prediction or --medium)."""
    _decide(ctx, ident, db_path, "confirm", medium, moderator, note)


@review.command("dismiss")
@click.argument("ident", metavar="ID")
@db_option
@_moderator_option
@click.option("--note", help="Free text kept with the decision.")
@click.pass_context
def dismiss(ctx: click.Context, ident: str, db_path: str | None, moderator: str | None,
            note: str | None) -> None:
    """Dismiss the flag on ID: the stated medium is right."""
    _decide(ctx, ident, db_path, "dismiss", None, moderator, note)


WALK_HELP = ("[c] confirm (true = predicted)  [m] confirm, other medium  [d] dismiss  "
             "[s] skip  [o] open image  [q] quit")


def open_images(paths: Sequence[str], viewer: str | None) -> list[str]:
    """Open each existing image file with ``viewer`` (a command; the path is appended) or, by
    default, the system viewer (``click.launch``). Returns messages for the moderator."""
    messages = []
    for p in paths:
        if not os.path.isfile(p):
            messages.append(f"image not in the cache any more: {p}")
            continue
        if viewer:
            try:
                subprocess.Popen([*shlex.split(viewer), p], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except OSError as exc:
                messages.append(f"cannot run viewer {viewer!r}: {exc}")
                continue
        elif click.launch(p) != 0:
            messages.append(f"no system image viewer could open {p} (try --viewer)")
            continue
        messages.append(f"opened {p}")
    return messages


def _read_key() -> str:
    """One key press (``click.getchar`` in a terminal; without one, the next character of
    stdin, so keys can be piped in); whitespace ignored; EOF/Ctrl-C/Ctrl-D read as ``q``."""
    import sys

    while True:
        try:
            ch = click.getchar() if sys.stdin.isatty() else sys.stdin.read(1)
        except (EOFError, KeyboardInterrupt):
            return "q"
        if ch == "":
            return "q"
        if not ch.isspace():
            return ch.lower()


@review.command("walk")
@db_option
@_filter_options
@_moderator_option
@click.option("--viewer", help="Command that opens an image (the path is appended); "
              "default: the system viewer.")
@click.pass_context
def walk(ctx: click.Context, db_path: str | None, verdict: str, medium: str | None,
         since: str | None, until: str | None, limit: int, moderator: str | None,
         viewer: str | None) -> None:
    """Walk the pending queue one post at a time, newest first.

    Keys: c confirm (true medium = prediction), m confirm with another medium (asks), d dismiss,
    s skip, o open the image(s), q quit. Decisions are saved as they are made.
    """
    who = check_moderator((moderator or "").strip() or default_moderator())
    db = _open_db(ctx, db_path, write=True)
    counts = {"confirmed": 0, "dismissed": 0, "skipped": 0}
    console = _console()
    try:
        queue = _query(db, verdict, medium, since, until, limit, "pending")
        if not queue:
            click.echo("Nothing to review: no pending flagged submissions match.")
            return
        click.echo(f"{len(queue)} pending; reviewing as {who}. {WALK_HELP}")
        for n, row in enumerate(queue, 1):
            console.rule(f"{n}/{len(queue)}")
            render_list([row], console, title=False)
            while True:
                click.echo("c/m/d/s/o/q? ", nl=False)
                key = _read_key()
                click.echo(key)
                if key == "q":
                    click.echo(_summary(counts))
                    return
                if key == "s":
                    counts["skipped"] += 1
                    break
                if key == "o":
                    for msg in open_images(row["images"], viewer):
                        click.echo(msg)
                    continue
                if key in ("c", "m", "d"):
                    true_medium = None
                    if key == "m":
                        click.echo("media: " + " ".join(MEDIA))
                        answer = click.prompt("true medium (Enter: cancel)", default="",
                                              show_default=False).strip().lower()
                        if not answer:
                            click.echo("cancelled")
                            continue
                        if answer not in MEDIA:
                            click.echo(f"not a medium: {answer!r}")
                            continue
                        true_medium = answer
                    decision = "dismiss" if key == "d" else "confirm"
                    try:
                        rev, _ = record_review(db, row["fullname"], decision,
                                               true_medium=true_medium, moderator=who)
                    except InputError as exc:
                        click.echo(f"not recorded: {exc}")
                        continue
                    word = "confirmed" if decision == "confirm" else "dismissed"
                    counts[word] += 1
                    click.echo(printable(f"{row['fullname']}: {word}, true medium {rev.true_medium}"))
                    break
                click.echo(WALK_HELP + "  [?] this help")
        click.echo(_summary(counts))
    finally:
        db.conn.close()


def _summary(counts: dict[str, int]) -> str:
    return "Done: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "."
