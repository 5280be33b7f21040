"""Signals on the real ``modbot run`` process: SIGHUP reloads the config (a broken file is
refused, the old config kept), SIGTERM in the middle of a submission abandons it (recorded as
such), sends STOPPING=1 and exits 0 quickly; the next start finishes the abandoned post."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support import (REPO, NotifySocket, image_post, modbot_run_cmd, run_env,
                    write_run_config)

from modbot.sandbox.server import SandboxServer

GOOD = (Path(__file__).resolve().parent / "data" / "images" / "rgb.jpg").read_bytes()


class Daemon:
    """A ``modbot run`` subprocess whose JSON log lines are collected as they come."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(modbot_run_cmd(config), cwd=str(REPO), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("{"):
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass

    def wait_event(self, name: str, timeout_s: float = 30.0, **match) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for e in list(self.events):
                if e.get("event") == name and all(e.get(k) == v for k, v in match.items()):
                    return e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {name} {match} in log:\n" + "\n".join(self.lines[-30:]))

    def stop(self, timeout_s: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code


def row(db: Path, fullname: str) -> tuple:
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute("SELECT status, reason, attempts FROM submissions WHERE fullname=?",
                            [fullname]).fetchone()
    finally:
        conn.close()


def test_sighup_reload_and_sigterm_mid_submission(tmp_path):
    posts = [image_post("sig001", "good.jpg"), image_post("sig002", "slow.jpg")]
    with SandboxServer(posts, {"good.jpg": GOOD, "slow.jpg": GOOD}, released=1) as server:
        # the second post's image takes 3 s to start arriving
        slow = server.add_fault(r"^/i/slow\.jpg$", 200, body=GOOD, delay_s=3.0, times=1,
                                headers={"content-type": "image/jpeg"})
        config = write_run_config(tmp_path / "modbot.toml", server, tmp_path, act=False)
        notify = NotifySocket(tmp_path)
        try:
            daemon = Daemon(config, run_env(server, notify=notify))
            assert notify.wait_for("READY=1", 120), daemon.lines[-20:]
            daemon.wait_event("submission", fullname="t3_sig001")

            # SIGHUP with a broken file: refused, the daemon keeps its config and runs on
            good_text = config.read_text()
            config.write_text(good_text + "\n[actions]\nreprot = true\n")
            daemon.proc.send_signal(signal.SIGHUP)
            daemon.wait_event("reload_failed")
            # SIGHUP with a valid change: applied
            config.write_text(good_text.replace("poll_interval = 0.2", "poll_interval = 0.3"))
            daemon.proc.send_signal(signal.SIGHUP)
            reloaded = daemon.wait_event("config_reloaded")
            assert reloaded["source"] == str(config)
            assert daemon.proc.poll() is None

            # SIGTERM while the slow image is being fetched
            server.release(1)
            deadline = time.monotonic() + 20
            while slow.hits == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert slow.hits == 1
            sent_at = time.monotonic()
            code = daemon.stop()
            took = time.monotonic() - sent_at
            assert code == 0
            assert took < 10.0  # the 3-s stall, then a clean stop
            assert row(tmp_path / "modbot.db", "t3_sig002") == ("abandoned", "shutdown", 1)
            assert row(tmp_path / "modbot.db", "t3_sig001")[0] == "done"
            assert notify.wait_for("STOPPING=1", 5)
            assert daemon.events[-1]["event"] == "stream_stop"

            # the next start finishes the abandoned submission first
            again = Daemon(config, run_env(server, notify=notify))
            again.wait_event("resume_unfinished", timeout_s=120, fullname="t3_sig002")
            again.wait_event("submission", fullname="t3_sig002", status="done")
            assert again.stop() == 0
            assert row(tmp_path / "modbot.db", "t3_sig002") == ("done", None, 2)
        finally:
            notify.close()


@pytest.mark.parametrize(("toml", "named"), [
    ("[reddit]\nrequests_per_minute = 500\n", b"requests_per_minute"),
    ('[learning]\nenabled = true\ncron = "61 4 * * *"\n', b"cron"),  # issue 12 item 3
    ('[actions]\nreport_template = "{nosuch}"\n', b"report_template"),  # issue 12 item 2
])
def test_bad_config_exits_78_without_restart_loop(tmp_path, toml, named):
    """An unusable config is exit status 78 (EX_CONFIG), listed in the unit's
    RestartPreventExitStatus=, so systemd does not restart it in a loop — with one line
    naming the key, not a traceback (a bad cron line printed 389 lines and exited 1)."""
    bad = tmp_path / "bad.toml"
    bad.write_text(toml)
    with SandboxServer([], {}) as server:
        proc = subprocess.run(modbot_run_cmd(bad), cwd=str(REPO), env=run_env(server),
                              capture_output=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 78, output.decode()[-2000:]
    assert named in output
    assert b"Traceback" not in output and len(output.splitlines()) < 10


@pytest.mark.parametrize("key", ["image_cache", "database"])
def test_an_unwritable_storage_path_exits_78_before_anything_runs(tmp_path, key):
    """A wrong [storage] path (here under a regular file; as root, permissions alone would not
    stop the write) was a failure of every post (image cache: internal_error) or exit 1 and a
    restart loop (database); now it is exit 78 at start, naming the key and the path, before
    any request and before the database is created."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    where = {"image_cache": str(blocker / "cache"), "database": str(blocker / "modbot.db")}[key]
    with SandboxServer([], {}) as server:
        config = write_run_config(tmp_path / "modbot.toml", server, tmp_path, storage={key: where})
        proc = subprocess.run(modbot_run_cmd(config), cwd=str(REPO), env=run_env(server),
                              capture_output=True, timeout=60, check=False)
        requests = server.requests
    output = proc.stdout + proc.stderr
    assert proc.returncode == 78, output.decode()[-2000:]
    assert f"[storage] {key}".encode() in output and b"not-a-folder" in output
    assert b"Traceback" not in output
    assert not (tmp_path / "modbot.db").exists()
    assert requests == []  # not even a token request
