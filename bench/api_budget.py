"""Reddit API budget under faults: requests per minute the real daemon sends, retries included.

Runs ``python -m modbot.cli --config X run`` against the Reddit sandbox served from this process
(the shipped 42-submission sample, released one every ``--release-every`` seconds, actions
on, judge threshold 0 so that every disagreement is reported and commented: many writes), with
``poll_interval = 0.5`` — 120 polls a minute wanted, more than the budget allows, so the cap
binds. Every
``--fault-every`` seconds (once the previous fault has fired) a random fault is injected on the
listing or an action endpoint:
429 with and without Retry-After, 500/502/503 (prawcore retries them), a stalled response
past ``request_timeout``, a truncated body, a 401, or every token expired at once.

Everything the sandbox answers on its OAuth endpoints and the token endpoint is counted (what
Reddit counts against the OAuth client; image downloads from i.redd.it are not API requests).
Printed: requests in each whole minute, the most in any sliding 60-s window (must be <= 100;
the daemon's own cap is ``[reddit] requests_per_minute``, 90 by default), 429s answered because
the sandbox's own Reddit-style limit was exceeded (must be 0), whether every Retry-After was
honoured (no request of any kind before it ran out), and the faults injected.

Run: ``python bench/api_budget.py [--minutes 3] [--json]`` from the repository root (needs the
shipped model, or ``--model-dir``).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from crash_safety import daemon_env, log_events

from modbot.sandbox.harness import NotifySocket, run_config_toml

REPO = Path(__file__).resolve().parent.parent

NEW = r"^/r/[^/]+/new"
WRITES = r"^/api/(comment|report)"
REDDIT_LIMIT = 100


def write_config(path: Path, url: str, workdir: Path, model_dir: str, per_minute: int,
                 poll_interval: float) -> None:
    """The daemon's config: sandbox endpoints, actions on, threshold 0, ``poll_interval``."""
    path.write_text(run_config_toml(
        url, workdir, model_dir=model_dir,
        reddit={"poll_interval": poll_interval, "request_timeout": 3.0,
                "requests_per_minute": per_minute,
                "user_agent": "python:modbot-api-budget-bench:0.1.0 (by /u/modbot-sandbox)"},
        judge={"thresholds": {m: 0.5 for m in ("digital", "painting", "drawing", "photography", "sculpture")}}, daemon={"retry_base_s": 5.0, "max_attempts": 3}),
        encoding="utf-8")


FAULTS: list[tuple[str, Any]] = [
    ("429 Retry-After 5 on /new", lambda s: s.add_fault(NEW, 429, headers={"retry-after": "5"})),
    ("429 without Retry-After on /new", lambda s: s.add_fault(NEW, 429)),
    ("500 x3 on /new", lambda s: s.add_fault(NEW, 500, times=3)),
    ("502 on /new", lambda s: s.add_fault(NEW, 502)),
    ("503 x2 on /new", lambda s: s.add_fault(NEW, 503, times=2)),
    ("stall 6 s on /new", lambda s: s.add_fault(
        NEW, 200, delay_s=6.0, body={"kind": "Listing", "data": {"children": []}})),
    ("truncated listing", lambda s: s.add_fault(
        NEW, 200, body='{"kind": "Listing", "data": {"children": []}}', truncate_to=12,
        times=2)),
    ("401 on /new", lambda s: s.add_fault(NEW, 401)),
    ("all tokens expired", lambda s: s.expire_tokens()),
    ("429 Retry-After 3 on an action", lambda s: s.add_fault(
        WRITES, 429, headers={"retry-after": "3"}, method="POST")),
    ("503 on an action", lambda s: s.add_fault(WRITES, 503, method="POST")),
]


def analyse(requests: list[Any], started: float, minutes: float) -> dict[str, Any]:
    """Per-minute counts, the busiest sliding 60-s window, Retry-After compliance."""
    api = sorted((r for r in requests if not r.path.startswith(("/i/", "/_sandbox"))),
                 key=lambda r: r.time)
    times = [r.time for r in api]
    per_minute = [sum(1 for t in times if started + 60 * m <= t < started + 60 * (m + 1))
                  for m in range(int(minutes))]
    busiest, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 60:
            j += 1
        busiest = max(busiest, i - j + 1)
    # Retry-After: after a 429 whose header said N seconds, nothing at all for N seconds
    violations = 0
    honoured = 0
    for k, r in enumerate(api):
        if r.status == 429 and r.fault and r.retry_after is not None:
            nxt = next((x for x in api[k + 1:] if x.time > r.time), None)
            if nxt is not None:
                if nxt.time - r.time < float(r.retry_after) - 0.05:
                    violations += 1
                else:
                    honoured += 1
    return {
        "requests": len(api),
        "per_minute": per_minute,
        "max_in_any_60s": busiest,
        "mean_per_minute": round(sum(per_minute) / max(1, len(per_minute)), 1),
        "retries_and_refreshes": {
            "token_requests": sum(r.path == "/api/v1/access_token" for r in api),
            "answered_with_fault": sum(r.fault for r in api),
        },
        "sandbox_ratelimit_429s": sum(1 for r in api if r.status == 429 and not r.fault),
        "retry_after_honoured": honoured,
        "retry_after_violations": violations,
        "by_path": dict(Counter(_kind(r.path) for r in api)),
    }


def _kind(path: str) -> str:
    if path.endswith("/new") or path.endswith("/new/"):
        return "listing"
    if path.startswith("/api/v1/access_token"):
        return "token"
    return path.strip("/").split("/")[-1] or path


def run_bench(*, minutes: float = 3.0, seed: int = 1, model_dir: str = "", per_minute: int = 90,
              poll_interval: float = 0.5, fault_every_s: float = 6.0,
              release_every_s: float = 3.0, workdir: Path | None = None) -> dict[str, Any]:
    """Run the scenario (module docstring); returns its figures."""
    from modbot.sandbox.sample import load_sample
    from modbot.sandbox.server import SandboxServer

    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="modbot-budget-") if workdir is None else None
    work = Path(tmp.name) if tmp is not None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    posts, images = load_sample()
    injected: Counter[str] = Counter()
    notify = NotifySocket(work)
    log_path = work / "daemon.log"
    try:
        with SandboxServer(posts, images, released=3) as server:
            config = work / "modbot.toml"
            write_config(config, server.url, work, model_dir, per_minute, poll_interval)
            env = daemon_env(server, notify)
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "modbot.cli", "--config", str(config), "run",
                     "--json-logs"], cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT)
                try:
                    if not notify.wait_ready(proc, 180):
                        raise RuntimeError(f"daemon did not start; see {log_path}")
                    started = time.time()
                    # requests made while loading (none: the first one follows READY) are kept
                    end = started + 60 * minutes
                    next_fault = started + fault_every_s
                    next_release = started + release_every_s
                    pending = None
                    while time.time() < end and proc.poll() is None:
                        now = time.time()
                        # one fault at a time: the next is armed when the last one has fired
                        fired = pending is None or pending.hits >= pending.times
                        if now >= next_fault and fired:
                            name, inject = rng.choice(FAULTS)
                            pending = inject(server)
                            injected[name] += 1
                            next_fault = now + fault_every_s
                        if now >= next_release:
                            server.release(1)
                            next_release = now + release_every_s
                        time.sleep(0.1)
                    exited_early = proc.poll()
                finally:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                        try:
                            proc.wait(timeout=60)
                        except subprocess.TimeoutExpired:
                            proc.kill()
            requests = server.requests
            writes = server.writes
            released = len(server.released)
    finally:
        notify.close()
    result = analyse(requests, started, minutes)
    result.update({
        "minutes": minutes,
        "requests_per_minute_cap": per_minute,
        "poll_interval_s": poll_interval,
        "faults_injected": dict(injected),
        "stream_errors_logged": sum(e.get("event") == "stream_error"
                                    for e in log_events(log_path)),
        "released": released,
        "writes": dict(Counter(w.kind for w in writes)),
        "exit_status": proc.returncode,
        "exited_early": exited_early is not None,
    })
    if tmp is not None:
        tmp.cleanup()
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit status 1 if the budget was broken."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-minute", type=int, default=90, help="[reddit] requests_per_minute")
    parser.add_argument("--poll-interval", type=float, default=0.5,
                        help="[reddit] poll_interval in seconds (0.5: the cap binds)")
    parser.add_argument("--fault-every", type=float, default=6.0, help="seconds between faults")
    parser.add_argument("--model-dir", default="", help="model directory (default: shipped)")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    r = run_bench(minutes=args.minutes, seed=args.seed, model_dir=args.model_dir,
                  per_minute=args.per_minute, poll_interval=args.poll_interval,
                  fault_every_s=args.fault_every)
    print(f"API requests (OAuth + token, retries included) over {r['minutes']:g} min, "
          f"poll_interval {r['poll_interval_s']} s, cap {r['requests_per_minute_cap']}/min:")
    for m, n in enumerate(r["per_minute"]):
        print(f"  minute {m + 1}: {n:4d} requests")
    print(f"  busiest 60-s window: {r['max_in_any_60s']} (Reddit allows {REDDIT_LIMIT})")
    print(f"  mean: {r['mean_per_minute']} per minute; by endpoint: {r['by_path']}")
    print(f"  faults injected: {r['faults_injected']}")
    print(f"  answered with an injected fault: {r['retries_and_refreshes']['answered_with_fault']}"
          f", token requests: {r['retries_and_refreshes']['token_requests']}")
    print(f"  429s from exceeding the sandbox's own limit: {r['sandbox_ratelimit_429s']}")
    print(f"  Retry-After honoured: {r['retry_after_honoured']}, violated: "
          f"{r['retry_after_violations']}")
    print(f"  writes received: {r['writes']}; daemon exit status {r['exit_status']}")
    ok = (r["max_in_any_60s"] <= REDDIT_LIMIT and r["sandbox_ratelimit_429s"] == 0
          and r["retry_after_violations"] == 0 and not r["exited_early"])
    print(f"  verdict: {'PASS' if ok else 'FAIL'}")
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
