"""Pieces the command modules share: the ``--db`` option, the root's ``--config`` value and an
image fetcher built from the configuration.

Cheap to import (click only), so ``modbot --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status for an unusable configuration or rejected credentials (sysexits.h EX_CONFIG).
#: The systemd unit lists it in RestartPreventExitStatus=, so it does not restart in a loop.
EXIT_CONFIG = 78


def config_path(ctx: click.Context) -> str | None:
    """The ``--config`` given to ``modbot`` (None: ``$MODBOT_CONFIG`` or the defaults)."""
    return (ctx.find_root().obj or {}).get("config_path")


def db_option(f: F) -> F:
    """``--db PATH`` (parameter ``db_path``): the SQLite database, default the configured one."""
    return click.option("--db", "db_path", type=click.Path(dir_okay=False),
                        help="SQLite database (default: the config's [storage] database).")(f)


