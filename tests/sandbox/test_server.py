"""``SandboxServer`` itself (``modbot.sandbox.server``): release control over HTTP and in
process, auto-release, constructor checks, and the standalone CLI's ``--help``.

The endpoints are tested in ``test_api.py``, HTTP and faults in ``test_handler.py``; all of them
use the ``server`` fixture of ``conftest.py`` (the shipped sample, 10 posts released)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from support import REPO

from modbot.sandbox.server import SandboxServer


# --------------------------------------------------------------------------- control


def test_release_control_and_auto_release(server):
    assert server.pending == 40 and len(server.released) == 10
    resp = requests.post(server.url + "/_sandbox/release?n=2", timeout=5).json()
    assert len(resp["released"]) == 2 and resp["pending"] == 38
    state = requests.get(server.url + "/_sandbox/state", timeout=5).json()
    assert state["released"] == 12 and state["released_fullnames"] == server.released
    server.auto_release(0.05, n=5)
    deadline = time.monotonic() + 5
    while server.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.pending == 0 and len(server.released) == 50
    assert server.release() == []  # nothing left


def test_constructor_rejects_duplicate_ids():
    with pytest.raises(ValueError):
        SandboxServer([{"id": "a"}, {"id": "a"}], {})


def test_cli_help():
    proc = subprocess.run([sys.executable, "-m", "modbot.sandbox.server", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--release-every" in proc.stdout and "python -m modbot.sandbox.server" in proc.stdout
