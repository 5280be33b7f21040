"""``modbot config``: show the effective configuration (``show``, the default), every key with
its default (``defaults``, or ``--defaults``), or check it (``check``: loads it and fills in the
action templates with a sample verdict, as :mod:`modbot.act` does).

An invalid configuration (:class:`~modbot.errors.ConfigError`) is a message and exit status 78
(``EXIT_CONFIG``, sysexits.h EX_CONFIG), never a traceback.
"""

from __future__ import annotations

import click

from modbot.cli.common import EXIT_CONFIG, config_path
from modbot.errors import ConfigError


def _config_or_exit(ctx: click.Context):
    """The configuration; on ``ConfigError`` its message (no traceback) and exit status 78."""
    from modbot.config import load_config

    try:
        return load_config(config_path(ctx))
    except ConfigError as exc:
        err = click.ClickException(str(exc))
        err.exit_code = EXIT_CONFIG
        raise err from exc


@click.group("config", invoke_without_command=True)
@click.option("--defaults", is_flag=True, help="Print every key with its default and meaning.")
@click.pass_context
def config_cmd(ctx: click.Context, defaults: bool) -> None:
    """Show the effective configuration, its defaults, or check it (exit 78 if invalid).

    Without a subcommand: ``show`` (``--defaults``: ``defaults``). No secrets are shown:
    credentials live in praw.ini or the environment.
    """
    if ctx.invoked_subcommand is not None:
        return
    if defaults:
        ctx.invoke(config_defaults)
    else:
        ctx.invoke(config_show)


@config_cmd.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration as JSON (exit status 78 if it is invalid)."""
    import dataclasses
    import json

    config = _config_or_exit(ctx)
    click.echo(json.dumps(dataclasses.asdict(config), indent=2))


@config_cmd.command("defaults")
def config_defaults() -> None:
    """Print every key with its default value and meaning (a valid config file)."""
    from modbot.config import default_config_text

    click.echo(default_config_text())


@config_cmd.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Load the configuration and fill in the report and comment templates with a sample
    verdict, as the daemon does; print them and OK.

    Exit status 78 (EX_CONFIG) with the reason, naming the key, when the configuration is
    invalid; 0 when it is usable.
    """
    from modbot.cli.text import printable

    config = _config_or_exit(ctx)
    try:
        report, comment = _sample_actions(config)
    except ConfigError as exc:
        err = click.ClickException(str(exc))
        err.exit_code = EXIT_CONFIG
        raise err from exc
    source = config_path(ctx) or "built-in defaults ($MODBOT_CONFIG not set)"
    click.echo(f"config: {printable(source)}")
    click.echo(f"report reason (sample): {printable(report)}")
    click.echo("comment (sample):")
    click.echo(printable(comment, multiline=True))
    click.echo("OK")


def _sample_actions(config) -> tuple[str, str]:
    """The report reason and the comment ``modbot.act`` would post for a sample mismatch (the
    config's templates were checked when it was loaded)."""
    from modbot.act import render, report_reason
    from modbot.configcheck import TEMPLATE_SAMPLE
    from modbot.domain import Post, Verdict, VerdictKind

    post = Post(id="abc123", fullname="t3_abc123", subreddit="Art", title=TEMPLATE_SAMPLE["title"],
                author="sample_artist", permalink="/r/Art/comments/abc123/sample/",
                url="https://i.redd.it/abc123.jpg", created_utc=0.0, link_flair_text="Digital",
                data={})
    verdict = Verdict(kind=VerdictKind.MISMATCH, stated=TEMPLATE_SAMPLE["stated"],
                      predicted=TEMPLATE_SAMPLE["predicted"],
                      confidence=TEMPLATE_SAMPLE["confidence"], reason="sample")
    version = TEMPLATE_SAMPLE["model_version"]
    # load_config has already checked that both templates fill in (modbot.configcheck)
    return (report_reason(config.actions.report_template, post, verdict, version),
            render(config.actions.comment_template, post, verdict, version))
