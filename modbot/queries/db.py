"""Which database a command works on, and opening one that must already exist.

Every command that takes ``--db`` goes through :func:`config_for_db` (or, when it needs no
other setting, :func:`database_path`): ``--db`` if given, else the configuration's
``[storage] database``. Errors are modbot errors (``ConfigError``, ``StoreError``).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlite_utils import Database

from modbot.config import Config, load_config
from modbot.errors import StoreError
from modbot.record import open_database


def config_for_db(config_path: str | os.PathLike[str] | None, db_path: str | None) -> Config:
    """The configuration (``config_path``, else ``$MODBOT_CONFIG``, else defaults) with
    ``[storage] database`` replaced by ``db_path`` when one is given.

    Raises ``ConfigError`` for an unusable configuration.
    """
    config = load_config(config_path)
    if db_path:
        config = config.replace(storage={"database": db_path})
    return config


def database_path(config_path: str | os.PathLike[str] | None, db_path: str | None) -> str:
    """``db_path`` if given (the configuration is then not read), else the configuration's
    ``[storage] database``. Raises ``ConfigError`` for an unusable configuration."""
    return db_path or config_for_db(config_path, None).storage.database


def open_existing(path: str | os.PathLike[str]) -> Database:
    """Open (and migrate) an existing modbot database; never creates one.

    Raises ``StoreError`` when there is no file at ``path`` (``:memory:`` is allowed) or it
    cannot be opened or migrated.
    """
    if str(path) != ":memory:" and not Path(path).is_file():
        raise StoreError(
            f"no database at {path} (run `modbot demo` or `modbot run` first, or pass --db)")
    return open_database(path)
