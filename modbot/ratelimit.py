"""Reddit API budget: every request modbot sends to Reddit passes one gate.

:class:`BudgetedRequestor` is a prawcore ``Requestor`` (handed to praw as ``requestor_class``) and
so sees every HTTP request praw makes — listings, actions, prawcore's own retries and the OAuth
token requests. Before each request it asks its :class:`RequestBudget` for permission, which
waits (interruptibly) until all of these allow it:

* **Client cap**: at most ``per_minute`` requests in any sliding 60-second window (default 90;
  Reddit allows 100 per minute per OAuth client, averaged over 10 minutes — Reddit's API rules
  and ``../shared/README.md``). A sliding log of send times makes this exact, not an average.
* **Even pace**: a token bucket of ``burst`` requests (default 10) refilled at
  ``per_minute - burst`` per minute spreads requests out: a backlog is worked through at a
  steady 80 requests/minute (one every 0.75 s) instead of 90 requests at once followed by a
  60-second stall (which made a new post wait up to 13 s for its turn).
* **Reddit's headers**: ``x-ratelimit-remaining`` / ``-used`` / ``-reset`` (seconds to the end
  of Reddit's 600-second window, in whole seconds). When ``remaining`` is below 1, nothing is
  sent until the reset (plus one second, as the header is rounded down). When the remaining requests per second of the window are fewer than our own cap
  allows (another program uses the same OAuth client), requests are spaced
  ``reset / remaining`` seconds apart, so the window is never exhausted early.
* **Retry-After**: a 429 blocks every request (not only the one refused) for that many seconds
  (delta-seconds or an HTTP date). A 429 without it, a 5xx, 408, a timeout or a connection
  error start an exponential backoff: ``backoff_base_s · 2^(k-1)`` after ``k`` consecutive
  failures, at most ``backoff_max_s``; any other answer resets it.

prawcore has its own rate limiter, but it sleeps with ``time.sleep`` (up to a whole window,
uninterruptible by SIGTERM) and only knows the headers. The requestor therefore removes the
``x-ratelimit-*`` headers from the responses it hands back, after reading them, so that this
module is the only place that waits and every wait can be cut short by the daemon's stop event
(:class:`ShuttingDown`) while pinging the systemd watchdog (``heartbeat``).

The requestor also makes ``[reddit] request_timeout`` real (praw 8.0.3 ignores ``timeout=`` and
prawcore's ``Session.request`` always passes ``PRAWCORE_TIMEOUT``, 16 s by default), and it
refuses to repeat a write (POST other than the token request) whose first attempt ended in a
timeout, connection error or 5xx: Reddit may have applied it, and prawcore would resend it,
which could double a comment. That case raises :class:`AmbiguousWriteError` instead.
"""

from __future__ import annotations

import collections
import email.utils
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import prawcore
import structlog
from prawcore.const import ACCESS_TOKEN_PATH

from modbot.errors import AmbiguousWriteError, ShuttingDown

log = structlog.get_logger("modbot.ratelimit")

#: Reddit's documented limit: requests per minute per OAuth client.
REDDIT_PER_MINUTE = 100
#: Statuses that mean "try later" (prawcore retries the same set, plus 429 which it does not).
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 522})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (``"4"``, ``"4.0"``) or an
    HTTP date (RFC 9110 §10.2.3). Returns None when absent or unparsable; never negative."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class RequestBudget:
    """When the next Reddit request may be sent. Thread-safe; one per OAuth client.

    ``per_minute``: most requests in any 60-s window (1–100); a request that would be the
    ``per_minute+1``-th waits ``margin_s`` (0.5 s) longer than strictly needed, so the server,
    which sees arrival times with network jitter, counts no more either. ``burst``: how many
    requests may go back to back before the even pace (``60 / (per_minute - burst)`` s apart)
    applies. ``backoff_base_s`` /
    ``backoff_max_s``: exponential backoff after transient failures (seconds).
    ``stop``: when set, a request that would have to wait raises :class:`ShuttingDown`
    instead (one that may go at once still goes). ``heartbeat``: called at least every
    ``heartbeat_every_s`` seconds while waiting (systemd watchdog pings). ``clock`` /
    ``sleep``: monotonic seconds and an interruptible wait ``sleep(seconds) -> stop_was_set``;
    tests pass a fake clock. Counters: ``sent`` (requests let through), ``waited_s`` (total
    seconds waited), ``waits`` (how many acquisitions had to wait).

    Raises ``ValueError`` for ``per_minute`` outside 1–100 or a negative backoff.
    """

    per_minute: int = 90
    burst: int = 10
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    window_s: float = 60.0
    margin_s: float = 0.5
    heartbeat_every_s: float = 5.0
    stop: threading.Event = field(default_factory=threading.Event)
    heartbeat: Callable[[], Any] | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], bool] | None = None
    sent: int = 0
    waited_s: float = 0.0
    waits: int = 0

    def __post_init__(self) -> None:
        if not 1 <= int(self.per_minute) <= REDDIT_PER_MINUTE:
            raise ValueError(f"per_minute must be 1-{REDDIT_PER_MINUTE}, got {self.per_minute}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff times must not be negative")
        self.per_minute = int(self.per_minute)
        self._lock = threading.RLock()
        self._sent_at: collections.deque[float] = collections.deque()
        self._not_before = 0.0  # monotonic time before which nothing may be sent
        self._tokens = float(self._burst)  # the even-pace bucket
        self._tokens_at: float | None = None
        self._failures = 0
        self.remaining: float | None = None  # last x-ratelimit-remaining seen
        self.used: int | None = None
        self.reset_s: float | None = None

    # -- decisions ------------------------------------------------------------------------
    def delay(self, now: float | None = None) -> float:
        """Seconds until a request may be sent (0 = now), without recording anything."""
        now = self.clock() if now is None else now
        with self._lock:
            while self._sent_at and self._sent_at[0] <= now - self.window_s - self.margin_s:
                self._sent_at.popleft()
            wait = max(0.0, self._not_before - now)
            if len(self._sent_at) >= self.per_minute:
                wait = max(wait, self._sent_at[0] + self.window_s + self.margin_s - now)
            tokens = self._tokens_now(now)
            if tokens < 1.0 - 1e-6:  # (not 1.0: float rounding must not leave a 1e-14 s wait)
                wait = max(wait, (1.0 - tokens) / self._rate)
            return wait

    @property
    def _burst(self) -> int:
        return max(1, min(int(self.burst), self.per_minute))

    @property
    def _rate(self) -> float:
        """Even-pace refill rate (requests per second): what is left of ``per_minute`` after a
        full burst, so burst + pace never exceed the cap in a window (no stall after a burst)."""
        return max(1, self.per_minute - self._burst) / self.window_s

    def _tokens_now(self, now: float) -> float:
        if self._tokens_at is None:
            return min(self._tokens, float(self._burst))
        return min(float(self._burst), self._tokens + (now - self._tokens_at) * self._rate)

    def acquire(self) -> float:
        """Block until a request may be sent, then count it as sent. Returns seconds waited.

        Raises :class:`ShuttingDown` if ``stop`` is (or becomes) set while a wait is needed.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                wait = self.delay(now)
                if wait <= 0:
                    self._sent_at.append(now)
                    self._tokens, self._tokens_at = self._tokens_now(now) - 1.0, now
                    self.sent += 1
                    if waited:
                        self.waited_s += waited
                        self.waits += 1
                    return waited
            if self.stop.is_set():
                raise ShuttingDown(f"not sending: stopping, and the budget asks to wait {wait:.1f} s")
            if waited == 0:
                (log.info if wait >= 5 else log.debug)(
                    "api_budget_wait", wait_s=round(wait, 2), remaining=self.remaining,
                    failures=self._failures)
            step = min(wait, self.heartbeat_every_s)
            if self._wait(step):
                raise ShuttingDown("not sending: stopping while waiting for the API budget")
            waited += step
            if self.heartbeat is not None:
                self.heartbeat()

    def _wait(self, seconds: float) -> bool:
        if self.sleep is not None:
            return self.sleep(seconds)
        return self.stop.wait(seconds)

    def observe(self, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        """Learn from an answer: ``status`` (None = no answer: timeout, connection error) and
        its headers (``x-ratelimit-*``, ``retry-after``; case-insensitive mapping)."""
        headers = headers or {}
        now = self.clock()
        with self._lock:
            self._observe_ratelimit(headers, now)
            if status == 429:
                retry_after = parse_retry_after(headers.get("retry-after"))
                if retry_after is not None:
                    self._failures = 0
                    self._block_until(now + retry_after)
                    log.warning("api_retry_after", retry_after_s=retry_after)
                    return
            if status is None or status in _TRANSIENT_STATUSES:
                self._failures += 1
                backoff = min(self.backoff_max_s, self.backoff_base_s * 2 ** (self._failures - 1))
                self._block_until(now + backoff)
                return
            self._failures = 0

    def _observe_ratelimit(self, headers: Mapping[str, str], now: float) -> None:
        try:
            remaining = float(headers["x-ratelimit-remaining"])
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, TypeError, ValueError):
            return
        try:
            used = int(float(headers.get("x-ratelimit-used", "0")))
        except (TypeError, ValueError):
            used = 0
        self.remaining, self.used, self.reset_s = remaining, used, reset
        if remaining < 1:
            # Reddit sends whole seconds, cut down: wait one more so we are not early
            self._block_until(now + reset + 1.0)
            log.warning("api_ratelimit_exhausted", reset_s=reset, used=used)
            return
        # Pacing: when what is left of Reddit's window is scarcer than our own cap allows
        # (another program shares the OAuth client), spread it evenly over the time to reset.
        if reset > 0 and remaining / reset < self.per_minute / self.window_s:
            self._block_until(now + reset / remaining)

    def _block_until(self, when: float) -> None:
        self._not_before = max(self._not_before, when)

    @property
    def failures(self) -> int:
        """Consecutive transient failures seen (0 after any other answer)."""
        return self._failures

    def in_last_window(self, now: float | None = None) -> int:
        """Requests sent in the last ``window_s`` seconds."""
        now = self.clock() if now is None else now
        with self._lock:
            return sum(1 for t in self._sent_at if t > now - self.window_s)


def _never_sent(exc: BaseException) -> bool:
    """True when a requests error proves the request never reached the server: the TCP
    connection could not be made (refused, unreachable, DNS, connect timeout). Timeouts while
    reading and connections dropped mid-exchange are ambiguous for writes."""
    import requests
    import urllib3

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


class BudgetedRequestor(prawcore.Requestor):
    """prawcore ``Requestor`` that enforces a :class:`RequestBudget`, a real timeout and
    no repeated ambiguous writes (see the module docstring).

    Pass it to praw as ``praw.Reddit(..., requestor_class=BudgetedRequestor,
    requestor_kwargs={"budget": budget, "timeout": seconds})``. ``on_secret`` is called with
    every access or refresh token Reddit issues (for log redaction).
    """

    def __init__(self, *, budget: RequestBudget | None = None,
                 on_secret: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget if budget is not None else RequestBudget()
        self.on_secret = on_secret
        self._failed_write: tuple[str, str, str] | None = None

    def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:  # noqa: ARG002
        """Send one HTTP request (prawcore's signature: ``method, url`` and requests' keyword
        arguments). The ``timeout`` prawcore passes is replaced by this requestor's own.

        Raises :class:`ShuttingDown`, :class:`AmbiguousWriteError`, or prawcore's
        ``RequestException`` (wrapping the requests error) like the base class.
        """
        method = str(args[0] if args else kwargs.get("method", "")).upper()
        url = str(args[1] if len(args) > 1 else kwargs.get("url", ""))
        is_token = url.rstrip("/").endswith(ACCESS_TOKEN_PATH)
        write_key = None
        if method == "POST" and not is_token:
            write_key = (method, url, repr(kwargs.get("data")))
        if write_key is not None and write_key == self._failed_write:
            self._failed_write = None
            raise AmbiguousWriteError(f"not repeating {method} {url}: the first attempt may have "
                                      "been applied")
        self._failed_write = None
        self.budget.acquire()
        try:
            response = super().request(*args, timeout=self.timeout, **kwargs)
        except prawcore.exceptions.RequestException as exc:
            self.budget.observe(None)
            self._failed_write = None if _never_sent(exc.original_exception) else write_key
            raise
        headers = response.headers
        self.budget.observe(response.status_code, headers)
        if write_key is not None and (response.status_code >= 500 or response.status_code == 408):
            self._failed_write = write_key
        for name in [h for h in headers if h.lower().startswith("x-ratelimit-")]:
            del headers[name]
        if is_token and self.on_secret is not None and response.status_code == 200:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                for key in ("access_token", "refresh_token"):
                    if isinstance(payload.get(key), str):
                        self.on_secret(payload[key])
        return response
