"""Secrets never leak: run the real ``modbot run`` through a faulty session (429s, 5xx, a
truncated listing, an expired token, failing actions and images) at DEBUG level, and two runs
with rejected credentials that crash out; then grep everything produced — stdout, stderr, the
database (``iterdump`` and the raw files, WAL included), the image cache — for the sandbox's
client secret, password and every access token it issued."""

from __future__ import annotations

import signal
import sqlite3
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import (FLAG_EVERY_DISAGREEMENT, REPO, NotifySocket, image_post, modbot_run_cmd, run_env,
                    write_run_config)

from modbot.sandbox.server import SandboxServer

IMAGES = Path(__file__).resolve().parent / "data" / "images"
GOOD = (IMAGES / "rgb.jpg").read_bytes()


def produced_text(workdir: Path, *outputs: bytes) -> str:
    """Everything the runs produced, as one string: outputs, the database dumped with
    ``iterdump``, and the raw bytes of every file under ``workdir`` (decoded leniently)."""
    parts = [o.decode("utf-8", "replace") for o in outputs]
    db = workdir / "modbot.db"
    if db.exists():
        conn = sqlite3.connect(str(db))
        try:
            parts.append("\n".join(conn.iterdump()))
        finally:
            conn.close()
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and not path.name.endswith(".sock"):
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def assert_no_secret(text: str, secrets: dict[str, str]) -> None:
    for name, value in secrets.items():
        assert value not in text, f"{name} leaked"


@pytest.mark.slow
def test_faulty_run_leaks_no_secret(tmp_path):
    titles = [f"Piece {i}, me, {m}, 2020" for i, m in
              enumerate(["oil on canvas", "digital", "pencil", "photograph"] * 2)]
    # four stated media: whatever the model says, most posts disagree (threshold 0) → actions
    posts = [image_post(f"sec{i:03d}", "good.jpg", title=t) for i, t in enumerate(titles)]
    posts.append(image_post("sec900", "flaky.jpg"))
    with SandboxServer(posts, {"good.jpg": GOOD, "flaky.jpg": GOOD}, released=3) as server:
        new = r"/r/Art/new"
        server.add_fault(new, 429, times=1)
        server.add_fault(new, 500, times=1)
        server.add_fault(new, 401, times=1)
        server.add_fault(r"/api/comment", 503, times=1)   # → unknown (never resent)
        server.add_fault(r"/api/report", 429, headers={"retry-after": "0.5"}, times=1)
        server.add_fault(r"^/i/flaky\.jpg$", 503, times=1)
        config = write_run_config(tmp_path / "modbot.toml", server, tmp_path, act=True,
                                  judge=FLAG_EVERY_DISAGREEMENT)
        notify = NotifySocket(tmp_path)
        proc = subprocess.Popen(modbot_run_cmd(config, "--log-level", "DEBUG"), cwd=str(REPO),
                                env=run_env(server, notify=notify),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out: dict[str, bytes] = {}
        readers = [threading.Thread(target=lambda k=k, f=f: out.__setitem__(k, f.read()),
                                    daemon=True)
                   for k, f in (("stdout", proc.stdout), ("stderr", proc.stderr))]
        for r in readers:
            r.start()
        try:
            assert notify.wait_for("READY=1", 120)
            time.sleep(2.0)
            server.expire_tokens()  # the next request gets a 401 and a new token is issued
            server.release_all()
            deadline = time.monotonic() + 60
            db = tmp_path / "modbot.db"
            while time.monotonic() < deadline:
                conn = sqlite3.connect(str(db))
                n = conn.execute("SELECT COUNT(*) FROM submissions WHERE status IN "
                                 "('done','skipped','failed')").fetchone()[0]
                conn.close()
                if n == len(posts):
                    break
                time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            for r in readers:
                r.join(timeout=10)
            notify.close()
        text = produced_text(tmp_path, out.get("stdout", b""), out.get("stderr", b""))
        # the faulty paths were really taken
        for needle in ("stream_error", "action_unknown", "action_deferred", "Retrying due to"):
            assert needle in text, needle
        assert len(server.issued_tokens) >= 2
        secrets = {"client_secret": server.client_secret, "password": server.password}
        secrets.update({f"token{i}": t for i, t in enumerate(server.issued_tokens)})
        assert_no_secret(text, secrets)


@pytest.mark.parametrize("wrong", ["client_secret", "password"])
def test_rejected_credentials_crash_out_without_leaking(tmp_path, wrong):
    """Wrong client secret (401 from the token endpoint) or password (``invalid_grant``):
    fatal, exit status 78, and the crash output names the error but not the credentials."""
    with SandboxServer([], {}) as server:
        config = write_run_config(tmp_path / "modbot.toml", server, tmp_path)
        bad_value = f"wrong-{wrong}-0123456789abcdef"
        env = run_env(server, **{f"praw_{wrong}": bad_value})
        proc = subprocess.run(modbot_run_cmd(config, "--log-level", "DEBUG"), cwd=str(REPO),
                              env=env, capture_output=True, timeout=180)
    assert proc.returncode == 78, proc.stdout.decode()[-3000:]
    text = produced_text(tmp_path, proc.stdout, proc.stderr)
    assert "credentials_rejected" in text
    assert_no_secret(text, {"given": bad_value, "client_secret": server.client_secret,
                            "password": server.password})


def test_redaction_covers_structlog_stdlib_logging_and_uncaught_exceptions():
    """Second line of defence: a registered secret in a log event, a library's log record or
    an uncaught exception's traceback is printed as [REDACTED]."""
    secret = "s3cr3t-value-for-redaction"
    code = f"""
import logging
from modbot.log import configure_logging
from modbot import redact
import structlog
configure_logging(json=True, level="INFO")
redact.install()
redact.add_secret({secret!r})
log = structlog.get_logger("t")
log.info("event", nested={{"a": [{secret!r}]}}, text="token={secret}")
try:
    raise ValueError("bad token {secret}")
except ValueError:
    log.error("failed", exc_info=True)
logging.getLogger("prawcore").warning("Retrying with %s", {secret!r})
try:
    raise OSError("socket to {secret}")
except OSError:
    logging.getLogger("apscheduler.executors").exception("job failed")
raise RuntimeError("crash with {secret}")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    output = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 1
    assert secret not in output
    # all four paths printed something, masked
    assert output.count("[REDACTED]") >= 5, output
    assert "crash with [REDACTED]" in output and "Retrying with [REDACTED]" in output
    # library (stdlib) records are JSON lines like modbot's own, tracebacks included
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    by_logger = {line.get("logger"): line for line in lines}
    assert by_logger["prawcore"]["level"] == "warning"
    assert by_logger["prawcore"]["event"] == "Retrying with [REDACTED]"
    failed = by_logger["apscheduler.executors"]
    assert failed["level"] == "error" and "OSError: socket to [REDACTED]" in failed["exception"]


def test_credentials_from_praw_ini_in_the_credentials_directory(tmp_path):
    """The systemd unit's way: LoadCredential=praw.ini:/etc/modbot/praw.ini puts a copy in
    $CREDENTIALS_DIRECTORY and XDG_CONFIG_HOME=%d points praw at it. Same environment here
    (plus NOTIFY_SOCKET/WATCHDOG_USEC as systemd sets them); no praw_* variables."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    with SandboxServer([image_post("ini001", "good.jpg")], {"good.jpg": GOOD},
                       released=1) as server:
        kw = server.praw_kwargs()
        ini = creds / "praw.ini"
        ini.write_text("[DEFAULT]\n" + "".join(
            f"{k}={kw[k]}\n" for k in ("client_id", "client_secret", "username", "password")))
        ini.chmod(0o600)
        config = write_run_config(tmp_path / "modbot.toml", server, tmp_path, act=False)
        notify = NotifySocket(tmp_path)
        env = run_env(server, notify=notify, XDG_CONFIG_HOME=str(creds),
                      CREDENTIALS_DIRECTORY=str(creds), WATCHDOG_USEC="1000000")
        for key in [k for k in env if k.lower().startswith("praw_")]:
            del env[key]
        proc = subprocess.Popen(modbot_run_cmd(config), cwd=str(REPO), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert notify.wait_for("READY=1", 120)
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline and status != "done":
                conn = sqlite3.connect(str(tmp_path / "modbot.db"))
                row = conn.execute("SELECT status FROM submissions WHERE fullname='t3_ini001'"
                                   ).fetchone()
                conn.close()
                status = row[0] if row else None
                time.sleep(0.2)
            time.sleep(1.2)  # at least one watchdog period
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            notify.close()
        assert status == "done", out.decode()[-2000:]
        assert proc.returncode == 0
        assert notify.count("WATCHDOG=1") >= 1 and notify.count("STOPPING=1") == 1
        assert server.requests[0].path == "/api/v1/access_token"  # it did authenticate
        ini_text = ini.read_text()
        ini.unlink()  # the credential file itself is the one place the secrets may be
        assert_no_secret(produced_text(tmp_path, out),
                         {"client_secret": server.client_secret, "password": server.password,
                          **{f"token{i}": t for i, t in enumerate(server.issued_tokens)}})
        assert server.client_secret in ini_text  # (the grep would have found it there)


def test_console_tracebacks_show_no_local_variables_and_other_forms_are_masked():
    """Issue 12 item 13: the console renderer's pretty tracebacks printed local variables —
    the client secret and password among them — after redaction; a secret's repr, JSON,
    URL-encoded and HTTP Basic forms were not masked."""
    import base64
    from urllib.parse import quote

    secret = 'pa"ss w/rd+ü&=x'
    basic = base64.b64encode(f"client-id-1:{secret}".encode()).decode()
    code = f"""
import sys
from modbot.log import configure_logging
from modbot import redact
import structlog
configure_logging(json=False, level="INFO", stream=sys.stdout)
redact.install()
redact.add_secret({secret!r})
redact.add_basic_auth("client-id-1", {secret!r})
log = structlog.get_logger("t")
def leak(password):
    raise ValueError("login failed")
try:
    leak({secret!r})
except ValueError:
    log.error("failed", exc_info=True)
log.info("forms", r=repr({secret!r}), q={quote(secret, safe="")!r}, b={("Basic " + basic)!r})
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    output = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 0, output
    assert "login failed" in output  # the traceback is there ...
    for form in (secret, repr(secret)[1:-1], quote(secret, safe=""), basic, "ss w/rd"):
        assert form not in output, form  # ... but neither locals nor any form of the secret
