"""Running the real ``modbot run`` against the sandbox: its config file, its environment and a
stand-in for systemd's notify socket. Used by the tests and the benchmarks that start the
daemon as a subprocess (signals, secrets, crash safety, API budget, pipeline)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["CREDENTIAL_KEYS", "NotifySocket", "TrickleServer", "modbot_run_cmd", "run_config_toml", "run_env"]

#: The praw settings that are credentials: passed as ``praw_*`` environment variables.
CREDENTIAL_KEYS = ("client_id", "client_secret", "username", "password")


def run_config_toml(server_url: str, workdir: Path, *, act: bool = True, model_dir: str = "",
                    **sections: dict[str, Any]) -> str:
    """The TOML text of a config for ``modbot run`` against the sandbox at ``server_url``:
    endpoints, files under ``workdir``, ``model_dir`` (empty = the shipped model), report and
    comment on when ``act``, fast polls and retries; ``sections`` override or add keys
    (``judge={"default_threshold": 0.0}``). Credentials are NOT in it (see :func:`run_env`)."""
    conf: dict[str, dict[str, Any]] = {
        "reddit": {"oauth_url": server_url, "reddit_url": server_url, "short_url": server_url,
                   "subreddits": "Art", "poll_interval": 0.2, "request_timeout": 5.0,
                   "user_agent": "python:modbot-sandbox-run:0.1.0 (by /u/modbot-sandbox)"},
        "storage": {"database": str(workdir / "modbot.db"), "image_cache": str(workdir / "cache"),
                    "model_dir": model_dir},
        "images": {"allow_hosts": ["127.0.0.1"]},
        "actions": {"report": act, "comment": act},
        "daemon": {"retry_base_s": 0.5, "max_attempts": 3},
    }
    for section, values in sections.items():
        conf.setdefault(section, {}).update(values)
    lines = []
    for section, values in conf.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    """A TOML value: strings, numbers and booleans as JSON writes them (valid TOML too), lists
    as arrays, dicts as inline tables."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def run_env(server: Any, *, notify: NotifySocket | None = None, praw_ini_dir: Path,
            **extra: str) -> dict[str, str]:
    """Environment for a ``modbot run`` subprocess: this environment without praw or systemd
    variables, plus ``praw_*`` credentials of ``server``, ``XDG_CONFIG_HOME=praw_ini_dir`` (a
    folder without a ``praw.ini``, so the user's own never applies), ``NOTIFY_SOCKET`` when
    ``notify`` is given, and ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.lower().startswith("praw_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC",
                                                              "WATCHDOG_PID")}
    kwargs = server.praw_kwargs()
    for key in CREDENTIAL_KEYS:
        env[f"praw_{key}"] = kwargs[key]
    env["PYTHONUNBUFFERED"] = "1"
    env["XDG_CONFIG_HOME"] = str(praw_ini_dir)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.path
    env.update(extra)
    return env


def modbot_run_cmd(config: Path, *extra: str) -> list[str]:
    """``python -m modbot.cli --config CONFIG run --json-logs EXTRA…`` with this interpreter."""
    return [sys.executable, "-m", "modbot.cli", "--config", str(config), "run", "--json-logs", *extra]


class NotifySocket:
    """A systemd-style notify socket (AF_UNIX datagram) at ``directory/notify.sock``; a thread
    collects every message (``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=…``)."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode("utf-8", "replace"))

    def drain(self) -> None:
        """Forget the messages received so far."""
        self.messages.clear()

    def wait_for(self, needle: str, timeout_s: float = 60.0,
                 proc: subprocess.Popen | None = None) -> bool:
        """Wait until a message containing ``needle`` arrived (False after ``timeout_s``
        seconds, or as soon as ``proc`` has exited)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(needle in m for m in list(self.messages)):
                return True
            if proc is not None and proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def wait_ready(self, proc: subprocess.Popen, timeout_s: float) -> bool:
        """True once ``READY=1`` arrives; False if ``proc`` exits or time runs out."""
        return self.wait_for("READY=1", timeout_s, proc)

    def count(self, needle: str) -> int:
        """How many messages so far contain ``needle``."""
        return sum(needle in m for m in list(self.messages))

    def close(self) -> None:
        """Stop the collecting thread and close the socket."""
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


class TrickleServer:
    """A hostile image server on 127.0.0.1: it answers every request, then trickles — the
    body (``mode="body"``: headers, then one byte every ``every_s`` seconds) or the headers
    themselves (``mode="headers"``) — for ever, until :meth:`close`. Each byte restarts a
    client's read timeout, so only a total deadline stops such a download."""

    def __init__(self, mode: str = "body", every_s: float = 0.2) -> None:
        if mode not in ("body", "headers"):
            raise ValueError(f"mode must be body or headers, not {mode!r}")
        self.mode, self.every_s = mode, every_s
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow.jpg"
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n" if self.mode == "body" else b"HTTP/1.1 200 OK\r\n"
            conn.sendall(head)
            while not self.closed.wait(self.every_s):
                conn.sendall(b"\xff" if self.mode == "body" else b"X")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        """Stop serving; open connections end at their next byte."""
        self.closed.set()
        self.sock.close()
