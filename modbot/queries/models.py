"""The model registry's records in the database: retraining runs (``models``) and champion
changes (``champion_history``), for ``modbot models``."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

#: ``models`` columns stored as JSON text.
JSON_COLUMNS = ("labels", "data_counts", "champion_metrics", "challenger_metrics", "params")


def model_rows(db: Database, limit: int | None = None) -> list[dict[str, Any]]:
    """``models`` rows (retraining runs), newest first, JSON columns decoded; at most ``limit``
    (None = all)."""
    sql = "SELECT * FROM models ORDER BY id DESC"
    params: list[Any] = []
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    rows = []
    for row in db.query(sql, params):
        for k in JSON_COLUMNS:
            if row.get(k):
                row[k] = json.loads(row[k])
        rows.append(row)
    return rows


def champion_history(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """Champion changes, newest first: ``version``, ``event``, ``at`` (Unix seconds), ``by``,
    ``note``."""
    return list(db.query("SELECT version, event, at, by, note FROM champion_history "
                         "ORDER BY id DESC LIMIT ?", [int(limit)]))
