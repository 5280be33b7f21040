"""sd_notify over a real AF_UNIX datagram socket, the watchdog rate limit, and the daemon's
READY / WATCHDOG / STOPPING sequence."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest

from support import REPO, NotifySocket, fast_budget, fast_daemon, run_until

from modbot.notify import Notifier, sd_notify


def test_sd_notify_sends_one_datagram(tmp_path):
    sock = NotifySocket(tmp_path)
    try:
        assert sd_notify("READY=1\nSTATUS=hi", env={"NOTIFY_SOCKET": sock.path})
        assert sock.wait_for("READY=1", 5)
        assert sock.messages == ["READY=1\nSTATUS=hi"]
    finally:
        sock.close()


def test_sd_notify_abstract_namespace():
    name = f"modbot-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(5)
    try:
        assert sd_notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "@" + name})
        assert server.recv(100) == b"WATCHDOG=1"
    finally:
        server.close()


def test_outside_systemd_everything_is_a_no_op(tmp_path):
    assert sd_notify("READY=1", env={}) is False
    n = Notifier(env={})
    assert n.ready() is False and n.watchdog() is False and n.stopping() is False
    # a socket that is not there: swallowed, never raised
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_watchdog_pings_at_most_every_half_interval(tmp_path):
    sock = NotifySocket(tmp_path)
    try:
        n = Notifier(env={"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "400000"})  # 0.4 s
        assert n.watchdog_interval_s == 0.2
        sent = sum(n.watchdog() for _ in range(100))  # a tight loop: one ping only
        assert sent == 1
        time.sleep(0.25)
        assert n.watchdog() is True
        assert sock.wait_for("WATCHDOG=1", 5)
        time.sleep(0.1)
        assert sock.count("WATCHDOG=1") == 2
    finally:
        sock.close()


def test_watchdog_for_another_pid_is_ignored():
    n = Notifier(env={"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000",
                      "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval_s is None and n.watchdog() is False


def test_daemon_reports_ready_pings_and_stopping(tmp_path):
    """In order: READY=1 (start-up done), WATCHDOG=1 while idle polling, STOPPING=1 at the end."""
    from modbot.sandbox.server import SandboxServer

    sock = NotifySocket(tmp_path)
    try:
        with SandboxServer([], {}, released=0) as server:
            notifier = Notifier(env={"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "200000"})
            daemon = fast_daemon(server, tmp_path, notifier=notifier)
            started = time.monotonic()
            run_until(daemon, lambda: time.monotonic() - started > 1.5)
            daemon.close()
        sock.wait_for("STOPPING=1", 5)
        kinds = [m.split("=", 1)[0] for m in sock.messages]
        assert kinds[0] == "READY" and kinds[-1] == "STOPPING"
        assert "STATUS=streaming r/Art" in sock.messages[0]
        assert kinds.count("WATCHDOG") >= 5  # every ~0.1 s of a 1.5-s idle run
    finally:
        sock.close()


def test_budget_wait_keeps_the_watchdog_fed(tmp_path):
    """A long Retry-After wait pings the watchdog, so systemd does not kill a healthy daemon."""
    from modbot.sandbox.server import SandboxServer

    sock = NotifySocket(tmp_path)
    try:
        with SandboxServer([], {}, released=0) as server:
            server.add_fault(r"/r/Art/new", 429, headers={"retry-after": "2"}, times=1)
            notifier = Notifier(env={"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "400000"})
            daemon = fast_daemon(server, tmp_path, notifier=notifier,
                                 budget=fast_budget(heartbeat_every_s=0.1))
            stop = threading.Event()
            threading.Timer(2.5, stop.set).start()
            daemon.run(stop=stop)
            daemon.close()
        # at most 0.2 s between pings during the 2-s wait → about ten of them
        assert sock.count("WATCHDOG=1") >= 6
    finally:
        sock.close()


SYSTEMD = REPO / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_units_pass_systemd_analyze_verify_and_security():
    """systemd/verify.sh: `systemd-analyze verify` (warnings count as failures) in a throwaway
    root, and `systemd-analyze security --offline=true` exposure <= 2.0, for every unit."""
    proc = subprocess.run(["sh", str(SYSTEMD / "verify.sh")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify   modbot.service: ok" in proc.stdout
    exposure = float(re.search(r"exposure ([0-9.]+)", proc.stdout).group(1))
    assert exposure <= 2.0


def test_unit_matches_what_the_daemon_does():
    """The unit and the code agree: notify + watchdog, SIGHUP reload, the exit status that is
    not restarted, and the credential path praw reads."""
    from modbot.cli import EXIT_CONFIG

    unit = (SYSTEMD / "modbot.service").read_text()
    settings = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    watchdog = float(settings["WatchdogSec"][0].rstrip("s"))
    assert watchdog > 120 + 20  # > one image download (total timeout 120 s) + a read timeout
    assert settings["ExecReload"] == ["kill -HUP $MAINPID"]
    assert settings["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]
    assert "praw.ini:/etc/modbot/praw.ini" in settings["LoadCredential"]
    assert "XDG_CONFIG_HOME=%d" in settings["Environment"]
    assert settings["ExecStart"][0].split()[1:3] == ["run", "--json-logs"]


def test_unit_contains_memory_core_dumps_and_private_networks():
    """Issue 12: a memory ceiling, no core dumps (they could hold credentials), and the private,
    loopback and link-local ranges denied at the socket level except the local stub resolver."""
    settings: dict[str, list[str]] = {}
    for line in (SYSTEMD / "modbot.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert settings["LimitCORE"] == ["0"]
    assert settings["MemoryMax"][0].endswith(("M", "G"))
    denied = " ".join(settings["IPAddressDeny"]).split()
    for needed in ("localhost", "link-local", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                   "100.64.0.0/10", "fc00::/7"):
        assert needed in denied
    assert settings["IPAddressAllow"] == ["127.0.0.53"]
