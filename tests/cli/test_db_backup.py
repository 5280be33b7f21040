"""``modbot db backup`` on a database the real daemon wrote: a sound copy with every row, taken
while another connection keeps writing; never overwriting a file; clear errors for a wrong
path."""

from __future__ import annotations

import sqlite3
import threading

from test_report import built_database, cli, copy_db, raw

from modbot.queries.db import open_readonly


def test_backup_is_a_sound_copy_taken_while_writes_go_on(tmp_path, tmp_path_factory, sample,
                                                          shipped_classifier):
    db = copy_db(built_database(tmp_path_factory, sample, shipped_classifier)["db"], tmp_path / "modbot.db")
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE scratch (n INTEGER)")
    c.close()
    stop = threading.Event()
    written = []

    def writer() -> None:  # another process's writes, as the daemon's would be
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        while not stop.is_set():
            conn.execute("INSERT INTO scratch VALUES (?)", [len(written)])
            written.append(1)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 50:
            threading.Event().wait(0.01)
        res = cli("db", "backup", "--db", str(db), str(tmp_path / "copy.db"))
    finally:
        stop.set()
        thread.join()
    assert res.exit_code == 0, res.output
    assert "check ok" in res.output
    copy = tmp_path / "copy.db"
    open_readonly(copy).conn.close()  # a current modbot database
    tables = [r[0] for r in raw(db, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        if table != "scratch":
            assert raw(copy, f"SELECT COUNT(*) FROM [{table}]") == raw(db, f"SELECT COUNT(*) FROM [{table}]"), table
    n_copy = raw(copy, "SELECT COUNT(*) FROM scratch")[0][0]
    assert 50 <= n_copy <= len(written)  # a snapshot from within the writes
    assert raw(copy, "SELECT COUNT(*) FROM submissions")[0][0] > 0


def test_backup_never_overwrites_and_names_a_wrong_path(tmp_path, tmp_path_factory, sample,
                                                        shipped_classifier):
    db = copy_db(built_database(tmp_path_factory, sample, shipped_classifier)["db"], tmp_path / "modbot.db")
    precious = tmp_path / "precious.db"
    precious.write_bytes(b"not to be lost")
    res = cli("db", "backup", "--db", str(db), str(precious))
    assert res.exit_code == 1 and "never overwrites" in res.output
    assert precious.read_bytes() == b"not to be lost"
    res = cli("db", "backup", "--db", str(tmp_path / "typo.db"), str(tmp_path / "b.db"))
    assert res.exit_code == 1 and "typo.db" in res.output
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "b.db").exists()
    res = cli("db", "backup", "--db", str(db), str(tmp_path / "no" / "b.db"))
    assert res.exit_code == 1 and "not a directory" in res.output
