"""``modbot.queries.report`` without the CLI: dates, periods, the Wilson interval, and the
report of an empty database (the full figures are checked on a daemon-written database in
``tests/cli/test_report.py``)."""

from __future__ import annotations

import pytest

from modbot.errors import InputError
from modbot.queries.report import (
    REPORT_KEYS,
    Period,
    build_report,
    iso_utc,
    parse_day,
    wilson_interval,
)
from modbot.record import open_database


def test_wilson_interval_known_values():
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(8, 10)  # textbook value: 0.490 to 0.943
    assert lo == pytest.approx(0.490, abs=1e-3) and hi == pytest.approx(0.943, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def test_parse_day_and_period():
    start = parse_day("2020-11-25")
    assert iso_utc(start, seconds=True) == "2020-11-25T00:00:00Z"
    assert parse_day("2020-11-25", end=True) - start == 86400
    p = Period.from_options("2020-11-01", "2020-11-30", "r/Art")
    assert p.as_dict() == {"since": "2020-11-01", "until": "2020-11-30", "subreddit": "Art"}
    assert p.where() == ("s.created_utc >= ? AND s.created_utc < ? AND s.subreddit = ? COLLATE NOCASE",
                         [p.since, p.until, "Art"])
    assert Period().where() == ("1", [])


def test_bad_dates_are_input_errors():
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        parse_day("22/11/2020")
    with pytest.raises(InputError, match="after"):
        Period.from_options("2020-12-01", "2020-11-01", None)


def test_report_of_an_empty_database(tmp_path):
    db = open_database(tmp_path / "modbot.db")
    rep = build_report(db, now=0)
    db.conn.close()
    assert tuple(rep) == REPORT_KEYS
    assert rep["generated_at"] == "1970-01-01T00:00:00Z"
    assert rep["totals"]["submissions"] == 0 and rep["flair_accuracy"] == [] and rep["weekly"] == []
    assert rep["flag_precision"]["overall"]["precision"] is None
    assert len(rep["confusion"]["labels"]) == len(rep["confusion"]["matrix"])
