"""``modbot report``: the report's figures (:mod:`modbot.queries.report`) as rich tables, CSV,
JSON or PNG charts (:mod:`modbot.cli.plots`).

No TensorFlow is imported; rich only when tables are printed, matplotlib only with ``--plot``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from modbot.cli.common import config_path, db_option
from modbot.cli.text import plain
from modbot.errors import InputError
from modbot.queries.db import database_path, open_readonly
from modbot.queries.report import CSV_TABLES, Period, build_report


# --- flat tables (CSV) ------------------------------------------------------------------------
def table_rows(report: Mapping[str, Any], name: str) -> tuple[list[str], list[dict[str, Any]]]:
    """One section of ``report`` as (column names, rows) — what ``--format csv --table NAME``
    writes. ``confusion`` becomes a wide table (``stated`` then one column per predicted label);
    ``flag_precision`` one row per predicted medium plus ``ALL`` (mismatches) and ``UNCERTAIN``;
    ``actions`` rows of (kind, status, count). Raises ``KeyError`` for an unknown name."""
    if name == "flair_accuracy":
        cols = ["stated", "posts", "classified", "match", "mismatch", "uncertain", "not_judged",
                "judged", "agreement"]
        return cols, [{c: r[c] for c in cols} for r in report["flair_accuracy"]]
    if name == "confusion":
        labels = report["confusion"]["labels"]
        rows = [{"stated": lab, **dict(zip(labels, report["confusion"]["matrix"][i], strict=True))}
                for i, lab in enumerate(labels)]
        return ["stated", *labels], rows
    if name == "flag_precision":
        cols = ["medium", "flagged", "reviewed", "confirmed", "dismissed", "unreviewed",
                "precision", "ci95_low", "ci95_high"]
        fp = report["flag_precision"]
        src = [*fp["by_medium"], {"medium": "ALL", **fp["overall"]},
               {"medium": "UNCERTAIN", **fp["uncertain"]}]
        rows = []
        for r in src:
            ci = r["ci95"] or [None, None]
            rows.append({**{c: r.get(c) for c in cols[:7]}, "ci95_low": ci[0], "ci95_high": ci[1]})
        return cols, rows
    if name == "weekly":
        cols = ["week", "posts", "judged", "mismatch", "uncertain", "mismatch_rate", "reviewed",
                "confirmed", "dismissed"]
        return cols, [{c: r[c] for c in cols} for r in report["weekly"]]
    if name == "top_authors":
        cols = ["author", "mismatch", "posts", "confirmed", "dismissed"]
        return cols, [{c: r[c] for c in cols} for r in report["top_authors"]]
    if name == "actions":
        rows = [{"kind": k, "status": s, "count": n}
                for k, by in report["actions"].items() for s, n in by.items()]
        return ["kind", "status", "count"], rows
    raise KeyError(f"unknown table {name!r} (one of {', '.join(CSV_TABLES)})")


def to_csv(report: Mapping[str, Any], name: str = "flair_accuracy") -> str:
    """The table ``name`` of ``report`` as CSV text (header row; empty cell for None; ratios as
    plain decimals with 6 digits)."""
    cols, rows = table_rows(report, name)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else round(v, 6) if isinstance(v, float) else v)
                    for k, v in r.items()})
    return buf.getvalue()


# --- terminal tables ---------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


_SHORT = {"digital": "digi", "painting": "pain", "drawing": "draw", "sculpture": "sculp",
          "photography": "photo", "mixed_media": "mixed", "other": "other", "unknown": "unkn",
          "ink": "ink"}


def render_tables(report: Mapping[str, Any], console: Any) -> None:
    """Print the report as rich tables, each at most 80 columns wide."""
    _print_header(report, console)
    _print_flair_accuracy(report, console)
    _print_confusion(report, console)
    _print_flag_precision(report, console)
    _print_weekly(report, console)
    _print_top_authors(report, console)
    acts = report["actions"]
    console.print("Actions: " + ("; ".join(
        f"{plain(k)} " + ", ".join(f"{plain(s)} {n}" for s, n in by.items())
        for k, by in acts.items()) or "none"))
    console.print(f"On Reddit: {moderator_tools_line(acts)}")
    rp = report.get("reposts") or {}
    if rp:
        console.print(f"Reposts: {rp['submissions']} posts (" + ", ".join(
            f"{k} {n}" for k, n in rp["by_kind"].items()) + f"; mirrored {rp['mirrored']}); "
            "reported: " + (", ".join(f"{plain(s)} {n}" for s, n in rp["reported"].items())
                            or "none"))


def moderator_tools_line(acts: Mapping[str, Mapping[str, int]]) -> str:
    """Mod notes, removals and modmail digests sent (dry-run ones in brackets), e.g.
    ``notes 3 sent (2 dry-run), removals 1 sent, digests 1 sent``."""
    groups = (("notes", [k for k in acts if k.startswith("note:")]), ("removals", ["remove"]),
              ("digests", ["digest"]))
    parts = []
    for label, kinds in groups:
        sent = sum(acts.get(k, {}).get("sent", 0) for k in kinds)
        dry = sum(acts.get(k, {}).get("dry_run", 0) for k in kinds)
        parts.append(f"{label} {sent} sent" + (f" ({dry} dry-run)" if dry else ""))
    return ", ".join(parts)


def _print_header(report: Mapping[str, Any], console: Any) -> None:
    p, t = report["period"], report["totals"]
    span = f"{t['first_post'] or '-'} .. {t['last_post'] or '-'}"
    console.print(f"[bold]modbot report[/bold]  {t['submissions']} submissions, posted {span}"
                  + (f", r/{plain(p['subreddit'])}" if p["subreddit"] else "")
                  + (f"  (since {p['since']})" if p["since"] else "")
                  + (f"  (until {p['until']})" if p["until"] else ""))
    console.print("Verdicts: " + ", ".join(f"{plain(k)} {v}" for k, v in t["by_verdict"].items()))


def _print_flair_accuracy(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    tab = Table(title="Flair accuracy: did the model agree with the stated medium?",
                title_justify="left")
    for c in ("stated", "posts", "classif.", "match", "mism.", "unc.", "n/j", "agree"):
        tab.add_column(c, justify="left" if c == "stated" else "right", no_wrap=True)
    for r in report["flair_accuracy"]:
        tab.add_row(plain(r["stated"]), str(r["posts"]), str(r["classified"]), str(r["match"]),
                    str(r["mismatch"]), str(r["uncertain"]), str(r["not_judged"]),
                    _pct(r["agreement"]))
    console.print(tab)
    console.print("classif. = classified; mism. = mismatch; unc. = uncertain; n/j = not judged "
                  "(no medium stated, or not a class of the model); agree = match / (match + "
                  "mismatch)", style="dim")
    u = report["unknown"]
    console.print(f"Stated medium unknown: {u['count']} ({_pct(u['share'])}) — "
                  f"{u['unparsed']} unparsed text, {u['unstated']} nothing stated. Sources: "
                  + ", ".join(f"{plain(k)} {v}" for k, v in u["by_source"].items()))


def _print_confusion(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    conf = report["confusion"]
    labels, m = conf["labels"], conf["matrix"]
    rows_used = [i for i, row in enumerate(m) if any(row)]
    cols_used = [j for j in range(len(labels)) if any(m[i][j] for i in range(len(labels)))]
    tab = Table(title="Confusion: rows stated, columns predicted", title_justify="left")
    tab.add_column("stated \\ pred")
    for j in cols_used:
        tab.add_column(plain(_SHORT.get(labels[j], labels[j][:5])), justify="right")
    for i in rows_used:
        cells = [f"[bold]{m[i][j]}[/bold]" if i == j and m[i][j] else str(m[i][j] or ".")
                 for j in cols_used]
        tab.add_row(plain(labels[i]), *cells)
    console.print(tab)


def _print_flag_precision(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    fp = report["flag_precision"]
    tab = Table(title="Flag precision where moderators reviewed (mismatches)", title_justify="left")
    tab.add_column("predicted", no_wrap=True)
    for c in ("flags", "reviewed", "conf.", "dism.", "precision", "95% CI"):
        tab.add_column(c, justify="right", no_wrap=True)

    def prow(name: str, r: Mapping[str, Any], style: str | None = None) -> None:
        ci = "-" if r["ci95"] is None else f"{r['ci95'][0]:.0%}-{r['ci95'][1]:.0%}"
        tab.add_row(name, str(r["flagged"]), str(r["reviewed"]), str(r["confirmed"]),
                    str(r["dismissed"]), _pct(r["precision"]), ci, style=style)

    for r in fp["by_medium"]:
        prow(plain(r["medium"]), r)
    prow("all", fp["overall"], "bold")
    if fp["uncertain"]["flagged"]:
        prow("uncertain*", fp["uncertain"], "dim")
    console.print(tab)
    if fp["uncertain"]["flagged"]:
        console.print("* uncertain verdicts (no action is taken on them), all predicted media.")
    if not fp["overall"]["reviewed"]:
        console.print("No flag reviewed yet: [bold]modbot review[/bold] lists them.")


def _print_weekly(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    tab = Table(title="By week (Monday, UTC): rate = mismatch / judged; rev./conf./dism. = "
                "flags reviewed / confirmed / dismissed", title_justify="left")
    for c in ("week", "posts", "judged", "mism.", "rate", "unc.", "rev.", "conf.", "dism."):
        tab.add_column(c, justify="left" if c == "week" else "right", no_wrap=True)
    for r in report["weekly"]:
        tab.add_row(r["week"], str(r["posts"]), str(r["judged"]), str(r["mismatch"]),
                    _pct(r["mismatch_rate"]), str(r["uncertain"]), str(r["reviewed"]),
                    str(r["confirmed"]), str(r["dismissed"]))
    console.print(tab)


def _print_top_authors(report: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    tab = Table(title="Top authors by mismatches", title_justify="left")
    for c in ("author", "mismatch", "posts", "confirmed", "dismissed"):
        tab.add_column(c, justify="left" if c == "author" else "right", no_wrap=c == "author",
                       max_width=30 if c == "author" else None, overflow="ellipsis")
    for r in report["top_authors"]:
        tab.add_row(plain(r["author"]), str(r["mismatch"]), str(r["posts"]), str(r["confirmed"]),
                    str(r["dismissed"]))
    console.print(tab)


# --- the command --------------------------------------------------------------------------------
@click.command("report")
@db_option
@click.option("--since", metavar="YYYY-MM-DD", help="First day of posts to include (UTC).")
@click.option("--until", metavar="YYYY-MM-DD",
              help="Last day of posts to include (UTC, inclusive).")
@click.option("--subreddit", help="Only this subreddit (default: all in the database).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--table", "table_name", type=click.Choice(CSV_TABLES), default="flair_accuracy",
              show_default=True, help="With --format csv: which table to write.")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many authors in top_authors.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False),
              help="Also write PNG charts (confusion.png, weekly.png, flag_precision.png) here.")
@click.pass_context
def report(ctx: click.Context, db_path: str | None, since: str | None, until: str | None,
           subreddit: str | None, fmt: str, table_name: str, top: int, plot_dir: str | None) -> None:
    """Flair accuracy, confusion matrix, flag precision, weekly trends, top authors, actions.

    \b
    Examples:
      modbot report --db modbot-demo/modbot.db
      modbot report --since 2020-11-01 --until 2020-11-30 --format json
      modbot report --format csv --table weekly > weekly.csv
      modbot report --plot charts/
    """
    try:
        period = Period.from_options(since, until, subreddit)
    except InputError as exc:  # a bad option value: a usage error (exit 2), as click's own
        raise click.BadParameter(str(exc)) from exc
    if plot_dir:  # before the work and the output: a bad --plot is a usage error
        try:
            Path(plot_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create {plot_dir}: {exc.strerror or exc}",
                                     param_hint="--plot") from exc
        if not os.access(plot_dir, os.W_OK | os.X_OK):
            raise click.BadParameter(f"{plot_dir} is not writable", param_hint="--plot")
    db = open_readonly(database_path(config_path(ctx), db_path))
    try:
        rep = build_report(db, period, top=top)
    finally:
        db.conn.close()
    if fmt == "json":
        click.echo(json.dumps(rep, indent=2))
    elif fmt == "csv":
        click.echo(to_csv(rep, table_name), nl=False)
    else:
        from rich.console import Console

        render_tables(rep, Console())
    if plot_dir:
        from modbot.cli.plots import write_plots  # imports matplotlib

        try:
            written = write_plots(rep, plot_dir)
        except OSError as exc:
            raise click.ClickException(f"cannot write charts to {plot_dir}: "
                                       f"{exc.strerror or exc}") from exc
        for path in written:
            click.echo(f"wrote {path}", err=fmt != "table")
