"""``modbot.queries.db``: which database a command uses, and refusing to create one."""

from __future__ import annotations

import pytest

from modbot.errors import ConfigError, StoreError
from modbot.queries.db import config_for_db, database_path, open_existing
from modbot.record import open_database


def test_db_option_wins_over_the_config(tmp_path):
    cfg = tmp_path / "modbot.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "configured.db"}"\n')
    assert database_path(cfg, None) == str(tmp_path / "configured.db")
    assert database_path(cfg, "other.db") == "other.db"
    assert config_for_db(cfg, "other.db").storage.database == "other.db"
    assert config_for_db(cfg, None).storage.database == str(tmp_path / "configured.db")


def test_a_given_db_does_not_read_the_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[actions]\nreport = 'yes'\n")
    assert database_path(bad, "x.db") == "x.db"
    with pytest.raises(ConfigError):
        database_path(bad, None)


def test_open_existing_never_creates(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(StoreError, match="no database"):
        open_existing(missing)
    assert not missing.exists()
    open_database(missing).conn.close()
    db = open_existing(missing)
    assert "submissions" in db.table_names()
    db.conn.close()
