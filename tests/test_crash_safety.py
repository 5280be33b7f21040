"""Crash safety: the real ``modbot run`` process, SIGKILLed at random points while it reports
and comments, restarted each time (``bench/crash_safety.py``; the bench does 20 kills, this
test 5 to keep CI short). Afterwards every released submission is recorded once, the sandbox
got at most one report and one comment per submission, and the database passes
``PRAGMA integrity_check``."""

from __future__ import annotations

import pytest
from crash_safety import run_scenario  # bench/crash_safety.py (bench/ is on pytest's path)
from support import model_dir_for_tests


@pytest.mark.slow
def test_sigkill_at_random_points_never_loses_or_doubles(tmp_path):
    result = run_scenario(kills=5, seed=7, workdir=tmp_path, model_dir=model_dir_for_tests(),
                          progress=False)
    assert result["kills"] == 5, result
    assert result["early_exits"] == 0, result
    # the scenario did exercise actions (judge threshold 0: every disagreement is acted on)
    assert sum(result["writes_received"].values()) >= 10, result
    assert result["duplicate_actions"] == 0, result
    assert result["missing"] == 0 and result["extra_rows"] == 0, result
    assert result["recorded"] == result["released"] == 50, result
    assert result["unrecorded_writes"] == 0, result
    assert result["integrity"] == "ok", result
    assert result["final_exit"] == 0, result
