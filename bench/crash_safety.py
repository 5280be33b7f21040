"""Crash safety: SIGKILL the real daemon at random points, restart it, and check the books.

The daemon runs as it does in production — ``python -m modbot.cli --config X run`` in its own
process, with report and comment switched on — against the Reddit sandbox served from this
process on 127.0.0.1 (the shipped 42-submission sample). Each cycle: start the daemon, wait
for systemd's READY=1 on a notify socket of our own, release a few submissions, wait a random
0–``--window`` seconds, SIGKILL. Comment and report requests are slowed down by the sandbox
(``--write-latency``, applied before the write is handled) and the judge's threshold is 0 (every
disagreement with the stated medium is acted on), so many kills land while an action is in
flight — the case that could double a comment. After ``--kills`` kills, everything left is
released and one last run must record every submission and exit 0 on SIGTERM.

Figures (printed; with ``--json`` the last line is one JSON object):

* ``kills``: SIGKILLs delivered to a running daemon (``early_exits``: runs that ended by
  themselves before their kill, with ``early_exit_codes``; must be 0 — see ``daemon.log``);
* ``duplicate_actions``: reports/comments the sandbox received beyond one per submission and
  kind (must be 0);
* ``missing``: released submissions without a final status (done/skipped/failed) in the end
  (must be 0); ``extra_rows``: rows for submissions never released (must be 0);
* ``integrity``: ``PRAGMA integrity_check`` of the database (must be ``ok``);
* ``actions``: action rows by status (``unknown`` = killed between intent and answer and not
  verifiable: maybe lost, never doubled); ``reconciled``: intents settled on restart, by
  outcome (``sent`` = the comment was found on Reddit); ``resumed_unfinished``: submissions a
  kill left in ``processing`` and a restart finished; ``max_attempts``; ``final_exit``: exit
  status after SIGTERM (must be 0).

Run: ``python bench/crash_safety.py [--kills 20] [--seed 1] [--json]`` from the repository
root (needs the shipped model, or ``--model-dir``). Takes about 10 s per kill (the daemon
imports TensorFlow on every start).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from modbot.sandbox.harness import NotifySocket, run_config_toml, run_env

REPO = Path(__file__).resolve().parent.parent

FINAL = ("done", "skipped", "failed")


def write_config(path: Path, url: str, workdir: Path, model_dir: str) -> None:
    """The daemon's TOML config: sandbox endpoints, actions on, files under ``workdir``; the
    judge acts on every disagreement, however unsure — more actions, more kills while one is
    in flight."""
    path.write_text(run_config_toml(
        url, workdir, model_dir=model_dir,
        reddit={"user_agent": "python:modbot-crash-bench:0.1.0 (by /u/modbot-sandbox)"},
        judge={"thresholds": {m: 0.5 for m in ("digital", "painting", "drawing", "photography", "sculpture")}}), encoding="utf-8")


def daemon_env(server: Any, notify: NotifySocket) -> dict[str, str]:
    """Environment of the daemon: praw_* credentials, the notify socket, no praw.ini."""
    return run_env(server, notify=notify, praw_ini_dir=REPO / "bench")


def start_daemon(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "modbot.cli", "--config", str(config), "run", "--json-logs"],
        cwd=str(REPO), env=env, stdout=handle, stderr=subprocess.STDOUT)


def db_statuses(db_path: Path) -> dict[str, str]:
    """fullname → status, read through a separate connection (the daemon may be writing)."""
    if not db_path.exists():
        return {}
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return dict(conn.execute("SELECT fullname, status FROM submissions").fetchall())
    except sqlite3.OperationalError:  # no schema yet
        return {}
    finally:
        conn.close()


def run_scenario(*, kills: int = 20, seed: int = 1, workdir: Path | None = None,
                 model_dir: str = "", window_s: float = 2.0, write_latency_s: float = 0.25,
                 per_cycle: int = 3, ready_timeout_s: float = 120.0,
                 final_timeout_s: float = 240.0, progress: bool = True) -> dict[str, Any]:
    """Run the scenario (module docstring) and return its figures as a dict."""
    from modbot.sandbox.sample import load_sample
    from modbot.sandbox.server import SandboxServer

    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="modbot-crash-") if workdir is None else None
    work = Path(tmp.name) if tmp is not None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / "modbot.db"
    log_path = work / "daemon.log"
    posts, images = load_sample()
    started = time.monotonic()
    notify = NotifySocket(work)
    try:
        with SandboxServer(posts, images, released=per_cycle) as server:
            server.add_latency(r"^/api/(comment|report)", write_latency_s, method="POST")
            config = work / "modbot.toml"
            write_config(config, server.url, work, model_dir)
            env = daemon_env(server, notify)
            run = _Runs(server, notify, config, env, log_path, db_path, ready_timeout_s)
            delivered, early_exits = run.kill_cycles(kills, per_cycle, rng, window_s, progress)
            final_exit = run.final(final_timeout_s)
            writes = server.writes
            state_released = server.released
    finally:
        notify.close()

    result = {
        "kills": delivered,
        "early_exits": len(early_exits),
        "early_exit_codes": early_exits,
        **_books(db_path, log_path, writes, state_released),
        "final_exit": final_exit,
        "seconds": round(time.monotonic() - started, 1),
        "seed": seed,
    }
    if tmp is not None:
        tmp.cleanup()
    return result


class _Runs:
    """Starts, kills and stops the daemon against one sandbox (the two phases of the scenario)."""

    def __init__(self, server: Any, notify: NotifySocket, config: Path, env: dict[str, str],
                 log_path: Path, db_path: Path, ready_timeout_s: float) -> None:
        self.server, self.notify, self.config, self.env = server, notify, config, env
        self.log_path, self.db_path, self.ready_timeout_s = log_path, db_path, ready_timeout_s

    def kill_cycles(self, kills: int, per_cycle: int, rng: random.Random, window_s: float,
                    progress: bool) -> tuple[int, list[int]]:
        """``kills`` start/release/SIGKILL cycles: (kills delivered, early exit codes)."""
        server, delivered, early_exits = self.server, 0, []
        for cycle in range(kills):
            self.notify.drain()
            proc = start_daemon(self.config, self.env, self.log_path)
            if not self.notify.wait_ready(proc, self.ready_timeout_s):
                proc.kill()
                proc.wait()
                raise RuntimeError(f"daemon did not become ready (exit {proc.returncode}); "
                                   f"see {self.log_path}")
            if cycle:
                server.release(per_cycle)
            time.sleep(rng.uniform(0.0, window_s))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                delivered += 1
            else:
                early_exits.append(proc.returncode)
            proc.wait()
            if progress:
                done = sum(s in FINAL for s in db_statuses(self.db_path).values())
                print(f"kill {cycle + 1}/{kills}: {done}/{len(server.released)} recorded, "
                      f"{len(server.writes)} writes", file=sys.stderr, flush=True)
        return delivered, early_exits

    def final(self, final_timeout_s: float) -> int | str:
        """The last run: everything released, it must finish and stop cleanly on SIGTERM.

        :returns: its exit status, or ``"timeout"``.
        """
        self.server.release_all()
        self.notify.drain()
        proc = start_daemon(self.config, self.env, self.log_path)
        if not self.notify.wait_ready(proc, self.ready_timeout_s):
            proc.kill()
            raise RuntimeError(f"final daemon did not become ready; see {self.log_path}")
        deadline = time.monotonic() + final_timeout_s
        released = set(self.server.released)
        while time.monotonic() < deadline and proc.poll() is None:
            rows = db_statuses(self.db_path)
            if all(rows.get(f) in FINAL for f in released):
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "timeout"


def _books(db_path: Path, log_path: Path, writes: list[Any],
           state_released: list[str]) -> dict[str, Any]:
    """The figures from the database, the daemon's log and the writes the sandbox received
    (``released`` … ``integrity``, in the order they are printed)."""
    conn = sqlite3.connect(str(db_path))
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        rows = dict(conn.execute("SELECT fullname, status FROM submissions").fetchall())
        actions = Counter(s for (s,) in conn.execute("SELECT status FROM actions"))
        max_attempts = conn.execute("SELECT MAX(attempts) FROM submissions").fetchone()[0]
        sent_rows = {(s, k) for s, k in conn.execute(
            "SELECT submission, kind FROM actions WHERE status = 'sent'")}
    finally:
        conn.close()
    events = log_events(log_path)
    reconciled = Counter(e.get("status") for e in events if e.get("event") == "action_reconciled")
    resumed = sum(e.get("event") == "resume_unfinished" for e in events)
    received = Counter((w.kind, w.fullname) for w in writes)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    missing = sorted(f for f in state_released if rows.get(f) not in FINAL)
    extra = sorted(set(rows) - set(state_released))
    # every action the sandbox received is in the database as sent or unknown, never absent
    unrecorded = sorted(f"{k}:{f}" for (k, f) in received
                        if (f, k) not in sent_rows and not _is_unknown(db_path, f, k))
    return {
        "released": len(state_released),
        "recorded": sum(s in FINAL for s in rows.values()),
        "missing": len(missing),
        "extra_rows": len(extra),
        "duplicate_actions": duplicates,
        "writes_received": dict(Counter(w.kind for w in writes)),
        "actions": dict(actions),
        "reconciled": dict(reconciled),
        "resumed_unfinished": resumed,
        "unrecorded_writes": len(unrecorded),
        "max_attempts": max_attempts,
        "integrity": integrity,
    }


def log_events(path: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log lines (other lines, e.g. TensorFlow's, are skipped)."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _is_unknown(db_path: Path, fullname: str, kind: str) -> bool:
    conn = sqlite3.connect(str(db_path))
    try:
        row = conn.execute("SELECT status FROM actions WHERE submission=? AND kind=?",
                           [fullname, kind]).fetchone()
        return row is not None and row[0] == "unknown"
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit status 1 when a safety property fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=float, default=2.0,
                        help="kill within this many seconds after READY (uniform)")
    parser.add_argument("--write-latency", type=float, default=0.25,
                        help="seconds the sandbox takes per report/comment")
    parser.add_argument("--per-cycle", type=int, default=3, help="submissions released per cycle")
    parser.add_argument("--model-dir", default="", help="model directory (default: shipped)")
    parser.add_argument("--workdir", default=None, help="keep files here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    result = run_scenario(kills=args.kills, seed=args.seed, window_s=args.window,
                          write_latency_s=args.write_latency, per_cycle=args.per_cycle,
                          model_dir=args.model_dir,
                          workdir=Path(args.workdir) if args.workdir else None)
    ok = (result["duplicate_actions"] == 0 and result["missing"] == 0 and result["early_exits"] == 0
          and result["extra_rows"] == 0 and result["integrity"] == "ok"
          and result["unrecorded_writes"] == 0 and result["final_exit"] == 0)
    for key, value in result.items():
        print(f"{key:>18}: {value}")
    print(f"{'verdict':>18}: {'PASS' if ok else 'FAIL'}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
