"""A Reddit-compatible HTTP server on loopback that unmodified praw talks to.

``SandboxServer`` answers the few Reddit endpoints modbot uses, with the shapes and headers
of real Reddit responses: OAuth token grants, ``/r/{sub}/new`` listings, subreddit about,
``/api/v1/me``, comments, ``/api/info``, and the moderation writes comment/report/remove
(recorded in :attr:`SandboxServer.writes`); images at ``/i/{filename}``; control from another
process at ``GET /_sandbox/state`` and ``POST /_sandbox/release?n=K``. Every OAuth endpoint
checks the bearer token and sends Reddit's rate-limit headers from a real counter.

Posts are Reddit ``t3`` ``data`` objects. They become visible over time (:meth:`release`), so a
daemon sees a live stream. String values may contain the placeholder ``{base}``, replaced by
the server's base URL when served; keys starting with ``_sandbox`` are stripped. Faults
(:meth:`SandboxServer.add_fault`) and latency (:meth:`SandboxServer.add_latency`) can be
injected; every request is recorded (:attr:`SandboxServer.requests`).

The sandbox lives in four modules, each importing only those before it:

* :mod:`modbot.sandbox.state` — records (:class:`Write`, :class:`RequestRecord`,
  :class:`Fault`), post and token state, wire helpers (listings, ``sniff_content_type``);
* :mod:`modbot.sandbox.api` — the Reddit endpoints (mixin ``RedditApi``: auth, rate limit,
  ``handle_…`` methods) and their route table ``ROUTES``: the place to add an endpoint;
* :mod:`modbot.sandbox.handler` — HTTP: socket server, request handler, fixed routes, faults;
* :mod:`modbot.sandbox.server` (this module) — :class:`SandboxServer` (lifecycle, releases,
  faults and latency, recorded writes and requests) and the CLI :func:`serve_forever_cli`.

Run standalone with ``python -m modbot.sandbox.server`` (see :func:`serve_forever_cli`).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from modbot.sandbox.api import RedditApi
from modbot.sandbox.handler import SandboxHTTPServer
from modbot.sandbox.sample import load_sample
from modbot.sandbox.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_USER_AGENT,
    DEFAULT_USERNAME,
    Fault,
    PostState,
    RequestRecord,
    Token,
    Write,
)

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_USERNAME",
    "Fault",
    "RequestRecord",
    "SandboxServer",
    "Write",
    "serve_forever_cli",
]


# --------------------------------------------------------------------------- server


class SandboxServer(RedditApi):
    """A Reddit-compatible server on loopback with posts released over time.

    :param posts: Reddit ``t3`` ``data`` dicts in release order (oldest first); each needs a
        unique ``id``. Strings may contain ``{base}``; ``_sandbox*`` keys are never served.
    :param images: file name → bytes, served at ``/i/{name}``.
    :param released: how many posts are visible from the start (their ``created_utc`` is set
        to one minute apart, ending at construction time).
    :param subreddit: the subreddit the server hosts (posts without a ``subreddit`` key get it).
    :param client_id, client_secret, username, password: the only credentials accepted.
    :param host, port: where to listen; ``port=0`` picks a free port.
    :param token_ttl_s: lifetime of access tokens in seconds (Reddit: 3600; ``expires_in``).
    :param ratelimit: ``(requests, window_s)`` — Reddit allows 1000 requests per 600 s per
        OAuth client; past that the server answers 429 as Reddit does. ``None`` disables the
        limit (headers are still sent).
    :param image_latency_s: seconds slept before answering each ``/i/`` image download (a
        real-world CDN round trip, e.g. 0.05); the same as ``add_latency(r"^/i/", seconds)``
        (so :meth:`clear_faults` removes it too).
    :raises ValueError: on a post without ``id`` or duplicate ids.

    The Reddit endpoints, token checks and rate limit are inherited from
    :class:`~modbot.sandbox.api.RedditApi`; :meth:`start` serves them over HTTP through
    :class:`~modbot.sandbox.handler.SandboxHTTPServer`. This class owns the state they read
    (posts, tokens, counters under one lock) and what tests steer and inspect: releases, faults,
    latency, recorded writes and requests.
    """

    def __init__(
        self,
        posts: Sequence[Mapping[str, Any]],
        images: Mapping[str, bytes],
        *,
        released: int = 0,
        subreddit: str = "Art",
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        username: str = DEFAULT_USERNAME,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl_s: float = 3600.0,
        ratelimit: tuple[int, int] | None = (1000, 600),
        image_latency_s: float = 0.0,
    ) -> None:
        self.subreddit = subreddit
        self.client_id = client_id
        # Fresh random secrets per server unless given: nothing to leak from the repo, and
        # a secrets test can grep for values that exist nowhere else.
        self.client_secret = client_secret or "sbx-secret-" + secrets.token_urlsafe(12)
        self.username = username
        self.password = password or "sbx-pass-" + secrets.token_urlsafe(12)
        self.host = host
        self.token_ttl_s = float(token_ttl_s)
        self.ratelimit = ratelimit
        self._requested_port = port
        self._lock = threading.RLock()
        self._posts: list[PostState] = []
        self._by_id: dict[str, PostState] = {}
        for raw in posts:
            if "id" not in raw:
                raise ValueError("every post needs an 'id'")
            data = copy.deepcopy(dict(raw))
            data.setdefault("subreddit", subreddit)
            state = PostState(data=data)
            if state.data["id"] in self._by_id:
                raise ValueError(f"duplicate post id {state.data['id']!r}")
            self._posts.append(state)
            self._by_id[str(state.data["id"])] = state
        self._images = dict(images)
        self._released_count = 0
        self._seq = itertools.count()
        self._comment_seq = itertools.count(int(time.time()) % 10_000_000 + 36**6)
        self._tokens: dict[str, Token] = {}
        self._issued_tokens: list[str] = []
        self._writes: list[Write] = []
        self._requests: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._latencies: list[tuple[re.Pattern[str], float, str | None]] = []
        self._rl_window_start = 0.0
        self._rl_used = 0
        self._httpd: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._auto_stop = threading.Event()
        self._auto_thread: threading.Thread | None = None
        self._url: str | None = None
        released = max(0, min(int(released), len(self._posts)))
        now = time.time()
        for i in range(released):
            self._release_one(created_utc=float(int(now) - 60 * (released - 1 - i)))
        if image_latency_s > 0:
            self.add_latency(r"^/i/", image_latency_s)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns ``self``. Idempotent."""
        if self._httpd is not None:
            return self
        httpd = SandboxHTTPServer((self.host, self._requested_port), self)
        self._httpd = httpd
        host, port = httpd.server_address[:2]
        self._url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"sandbox-reddit-{port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop auto-release and the HTTP server, and close its socket. Idempotent."""
        self._auto_stop.set()
        if self._auto_thread is not None:
            self._auto_thread.join(timeout=5)
            self._auto_thread = None
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash).

        :raises RuntimeError: before :meth:`start`.
        """
        if self._url is None:
            raise RuntimeError("SandboxServer not started")
        return self._url

    def praw_kwargs(self, user_agent: str = DEFAULT_USER_AGENT, *,
                    timeout: float | None = None) -> dict[str, Any]:
        """Everything ``praw.Reddit(**kwargs)`` needs to talk to this server.

        ``timeout`` (seconds), when given, is passed as ``requestor_kwargs={"timeout": …}``;
        note that prawcore 4's ``Session.request`` passes its own default (``PRAWCORE_TIMEOUT``
        read at import, 16 s), so that default wins for API calls.
        """
        kwargs: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": self.username,
            "password": self.password,
            "user_agent": user_agent,
            "oauth_url": self.url,
            "reddit_url": self.url,
            "short_url": self.url,
            "check_for_updates": False,
        }
        if timeout is not None:
            kwargs["requestor_kwargs"] = {"timeout": float(timeout)}
        return kwargs

    # ---------------------------------------------------------------- releases

    def _release_one(self, created_utc: float | None = None) -> str:
        state = self._posts[self._released_count]
        state.seq = next(self._seq)
        state.created_utc = float(int(time.time())) if created_utc is None else created_utc
        self._released_count += 1
        return state.fullname

    def release(self, n: int = 1) -> list[str]:
        """Make the next ``n`` posts visible (newest now; ``created_utc`` = now, whole seconds).

        :returns: their fullnames in release order (may be shorter than ``n`` at the end).
        """
        with self._lock:
            out = []
            for _ in range(max(0, int(n))):
                if self._released_count >= len(self._posts):
                    break
                out.append(self._release_one())
            return out

    def release_all(self) -> list[str]:
        """Release every pending post; returns their fullnames."""
        return self.release(len(self._posts))

    @property
    def pending(self) -> int:
        """How many posts are not released yet."""
        with self._lock:
            return len(self._posts) - self._released_count

    @property
    def released(self) -> list[str]:
        """Fullnames of the released posts, in release order."""
        with self._lock:
            return [p.fullname for p in self._posts[: self._released_count]]

    def auto_release(self, every_s: float, n: int = 1) -> None:
        """Release ``n`` posts every ``every_s`` seconds in a background thread until all are
        out or :meth:`stop` is called."""
        if every_s <= 0:
            raise ValueError("every_s must be > 0")
        self._auto_stop.clear()

        def loop() -> None:
            while not self._auto_stop.wait(every_s):
                self.release(n)
                if self.pending == 0:
                    return

        self._auto_thread = threading.Thread(target=loop, name="sandbox-auto-release", daemon=True)
        self._auto_thread.start()

    # ---------------------------------------------------------------- records / faults

    @property
    def writes(self) -> list[Write]:
        """Snapshot of the writes received so far, oldest first."""
        with self._lock:
            return list(self._writes)

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def add_fault(self, path_regex: str, status: int, *, times: int = 1,
                  headers: Mapping[str, str] | None = None, body: Any = None,
                  delay_s: float = 0.0, method: str | None = None,
                  truncate_to: int | None = None) -> Fault:
        """Answer the next ``times`` requests matching ``path_regex`` with ``status``.

        See :class:`Fault`. Faults are checked before authentication, in the order added.
        Example: ``add_fault(r"/r/Art/new", 429, headers={"retry-after": "4"})``.
        """
        fault = Fault(path_regex=path_regex, status=int(status), times=int(times),
                      headers=dict(headers or {}), body=body, delay_s=float(delay_s),
                      method=method, truncate_to=truncate_to)
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_latency(self, path_regex: str, seconds: float, *, method: str | None = None) -> None:
        """Sleep ``seconds`` before handling every request matching ``path_regex`` (and
        ``method``), then handle it normally: a slow server, not a failing one. A client that
        gives up (or dies) meanwhile does not stop the request from being applied, as on
        Reddit — the crash-safety scenario uses this to kill the daemon while a comment is in
        flight. ``add_latency(r"^/i/", 0.05)`` gives every image download a 50-ms round trip
        (requests are answered on one thread per connection, so concurrent downloads overlap)."""
        with self._lock:
            self._latencies.append((re.compile(path_regex), float(seconds),
                                    method.upper() if method else None))

    def _latency_for(self, method: str, path: str) -> float:
        with self._lock:
            return sum(s for rx, s, m in self._latencies
                       if (m is None or m == method.upper()) and rx.search(path))

    def clear_faults(self) -> None:
        """Remove all injected faults and latencies."""
        with self._lock:
            self._faults.clear()
            self._latencies.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def state(self) -> dict[str, Any]:
        """JSON-able summary: released count and fullnames, pending, writes, request count."""
        with self._lock:
            return {
                "url": self._url,
                "subreddit": self.subreddit,
                "released": self._released_count,
                "released_fullnames": [p.fullname for p in self._posts[: self._released_count]],
                "pending": len(self._posts) - self._released_count,
                "writes": [asdict(w) for w in self._writes],
                "requests": len(self._requests),
            }

    def _record_write(self, write: Write) -> None:
        with self._lock:
            self._writes.append(write)

    def _record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def image(self, name: str) -> bytes | None:
        """Bytes served at ``/i/{name}``, or None."""
        return self._images.get(name)


# --------------------------------------------------------------------------- CLI


def serve_forever_cli(argv: Iterable[str] | None = None) -> int:
    """Run the sandbox with the shipped sample until Ctrl-C or SIGTERM (``python -m
    modbot.sandbox.server --help``). Prints the base URL and the praw keyword arguments as JSON.

    :returns: process exit status (0).
    """
    parser = argparse.ArgumentParser(prog="python -m modbot.sandbox.server",
                                     description="Reddit-compatible sandbox server (loopback).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--released", type=int, default=5, help="posts visible at start")
    parser.add_argument("--release-every", type=float, default=0.0,
                        help="release posts every S seconds (0 = only via POST /_sandbox/release)")
    parser.add_argument("--release-n", type=int, default=1, help="posts per automatic release")
    args = parser.parse_args(list(argv) if argv is not None else None)
    posts, images = load_sample()
    server = SandboxServer(posts, images, released=args.released, host=args.host, port=args.port)
    server.start()
    if args.release_every > 0:
        server.auto_release(args.release_every, args.release_n)
    print(json.dumps({"url": server.url, "praw_kwargs": server.praw_kwargs(),
                      "posts": len(posts), "released": len(server.released)}, indent=2), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(serve_forever_cli())
