"""modbot.cron: crontab lines as APScheduler triggers (pure functions, no scheduler running)."""

from __future__ import annotations

import pytest

from modbot.config import Config
from modbot.cron import cron_trigger, crontab_day_names
from modbot.errors import ConfigError


def test_crontab_weekday_numbers_follow_crontab():
    assert crontab_day_names("0") == "sun" and crontab_day_names("7") == "sun"
    assert crontab_day_names("1-5") == "mon,tue,wed,thu,fri"
    assert crontab_day_names("*/2") == "sun,tue,thu,sat"
    assert crontab_day_names("0,6") == "sun,sat"
    assert crontab_day_names("mon-fri") == "mon-fri" and crontab_day_names("*") == "*"
    with pytest.raises(ValueError):
        crontab_day_names("3-1")


def test_cron_trigger_reads_five_fields_and_refuses_the_rest():
    trigger = cron_trigger("30 4 * * 1")
    assert "day_of_week='mon'" in str(trigger)
    for bad in ("30 4 * *", "61 4 * * *", "30 4 * * 9", "every day"):
        with pytest.raises(ValueError):
            cron_trigger(bad)


def test_a_bad_cron_line_is_a_config_error_at_load():
    """Issue 12 item 3: a bad [learning] cron made `modbot run` exit 1 with a 389-line
    traceback (systemd restarted it for ever); it is now a ConfigError when loading."""
    with pytest.raises(ConfigError, match="cron"):
        Config().replace(learning={"cron": "61 4 * * *"})
    assert Config().replace(learning={"cron": "61 4 * * *", "interval_s": 60.0}).learning.interval_s == 60
