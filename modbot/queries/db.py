"""Which database a command works on, and opening one that must already exist.

Commands that only read open it with :func:`open_readonly` (SQLite ``mode=ro``: nothing is
created, migrated or switched to WAL); commands that write use :func:`open_existing`. Both
refuse a file that is not a modbot database.

Every command that takes ``--db`` goes through :func:`config_for_db` (or, when it needs no
other setting, :func:`database_path`): ``--db`` if given, else the configuration's
``[storage] database``. Errors are modbot errors (``ConfigError``, ``StoreError``).
"""

from __future__ import annotations

import os
import sqlite3
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


def _require_file(path: str | os.PathLike[str]) -> None:
    if not Path(path).is_file():
        raise StoreError(
            f"no database at {path} (run `modbot demo` or `modbot run` first, or pass --db)")


def _check_modbot_schema(conn: sqlite3.Connection, path: str | os.PathLike[str], *,
                         current: bool) -> None:
    """Raise ``StoreError`` unless ``conn`` holds a modbot database (``_sqlite_migrations``
    with modbot's migration set, and a ``submissions`` table); with ``current``, also unless
    every migration is applied. Only reads."""
    from modbot.migrations import migrations

    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        applied = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [migrations.name])
        ] if "_sqlite_migrations" in tables else []
    except sqlite3.Error as exc:  # not a database at all, or locked/corrupt
        raise StoreError(f"cannot read database {path}: {exc}") from exc
    if not applied or "submissions" not in tables:
        raise StoreError(f"{path} is not a modbot database (no modbot migrations or no "
                         "submissions table); refusing to use it")
    if current:
        pending = [m.name for m in migrations.pending(Database(conn))]
        if pending:
            raise StoreError(f"{path} is not migrated to this modbot version (pending: "
                             f"{', '.join(pending)}); run `modbot db migrate --db {path}`")


def _connect_ro(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to the file at ``path``; ``StoreError`` if it cannot be opened."""
    try:
        return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=30,
                               check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path} read-only: {exc}") from exc


def open_readonly(path: str | os.PathLike[str]) -> Database:
    """Open an existing, current modbot database read-only (SQLite URI ``mode=ro``).

    Nothing is ever written: no file is created, no migration applied, the journal mode is left
    as it is. Raises ``StoreError`` when there is no file at ``path``, it is not a modbot
    database (no ``_sqlite_migrations`` of modbot's set or no ``submissions`` table), it is not
    migrated to the current version, or it cannot be opened.
    """
    _require_file(path)
    conn = _connect_ro(path)
    try:
        _check_modbot_schema(conn, path, current=True)
    except StoreError:
        conn.close()
        raise
    return Database(conn)


def open_existing(path: str | os.PathLike[str]) -> Database:
    """Open an existing modbot database read-write and apply pending migrations; never
    creates one. For commands that write.

    Raises ``StoreError`` when there is no file at ``path`` (``:memory:`` is allowed), it is
    not a modbot database (checked read-only first, so a foreign file is left untouched), or it
    cannot be opened or migrated.
    """
    if str(path) == ":memory:":
        return open_database(path)
    _require_file(path)
    probe = _connect_ro(path)
    try:
        _check_modbot_schema(probe, path, current=False)
    finally:
        probe.close()
    return open_database(path)



def backup_database(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> dict[str, object]:
    """Copy the modbot database at ``path`` to a new file ``dest`` with SQLite's online backup
    API: a consistent snapshot (WAL included) while the daemon keeps writing. The source is
    opened read-only; ``dest`` must not exist (nothing is overwritten) and its folder must.

    Returns ``{"source", "dest", "bytes", "submissions", "integrity"}`` (``integrity``: the
    copy's ``PRAGMA quick_check``, ``"ok"`` when sound). Raises ``StoreError`` when the source
    is missing or not a modbot database, ``dest`` exists or cannot be written; a partial copy
    is removed.
    """
    src = open_readonly(path)
    target = Path(dest)
    try:
        if target.exists():
            raise StoreError(f"{target} exists: choose a new file (a backup never overwrites)")
        if not target.parent.is_dir():
            raise StoreError(f"{target.parent} is not a directory")
        try:
            out = sqlite3.connect(target)
            try:
                src.conn.backup(out)
                integrity = out.execute("PRAGMA quick_check").fetchone()[0]
                submissions = out.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
            finally:
                out.close()
        except sqlite3.Error as exc:
            target.unlink(missing_ok=True)
            raise StoreError(f"cannot back up {path} to {target}: {exc}") from exc
    finally:
        src.conn.close()
    return {"source": str(path), "dest": str(target), "bytes": target.stat().st_size,
            "submissions": int(submissions), "integrity": integrity}
