"""A Reddit-compatible HTTP server on loopback that unmodified praw talks to.

``SandboxServer`` answers the few Reddit endpoints modbot uses, with the shapes and headers
of real Reddit responses (recorded by the praw project's integration tests, see
``../shared/data/reddit-api/SOURCES.md``; the wire facts are in
``wire_actions_and_errors.json``):

* ``POST /api/v1/access_token`` — OAuth2 password (script app) and client-credentials grants,
  HTTP Basic auth with the client id/secret. A bad client id/secret is answered ``401``; a bad
  username/password ``200 {"error": "invalid_grant"}`` as Reddit does.
* ``GET /r/{sub}/new`` — a real Listing: newest first, ``limit`` (default 25, at most 100),
  ``before``/``after`` fullnames, ``after`` null at the end so praw does not page on;
  ``{sub}`` may be a multireddit ``A+B`` (or ``all``).
* ``GET /r/{sub}/about``, ``GET /api/v1/me``, ``GET /comments/{id}[/{slug}]`` (the
  ``[submission listing, comment listing]`` pair), ``GET /api/info?id=t3_..,t1_..``.
* ``POST /api/comment`` (``thing_id``, ``text``), ``POST /api/report`` (``id``/``thing_id``,
  ``reason``), ``POST /api/remove`` (``id``, ``spam``) — recorded in :attr:`SandboxServer.writes`.
* ``GET /i/{filename}`` — image hosting (stands in for ``i.redd.it``); Content-Type sniffed from
  the bytes, so an HTML page or a truncated JPEG is served as what it really is.
* ``GET /_sandbox/state`` and ``POST /_sandbox/release?n=K`` — control from another process.

Every OAuth endpoint checks the bearer token (``401`` with ``www-authenticate`` when it is
missing, unknown or expired) and sends ``x-ratelimit-remaining/used/reset`` computed from a real
counter (Reddit: 1000 requests per 600 s window per client, remaining sent as ``"997.0"``).
Paths are accepted with and without a trailing slash and with a ``.json`` suffix; praw's
``raw_json=1`` query and ``api_type=json`` form field are accepted and ignored.

Posts are Reddit ``t3`` ``data`` objects. They become visible over time (:meth:`release`), so a
daemon sees a live stream. String values may contain the placeholder ``{base}``, replaced by
the server's base URL when served; keys starting with ``_sandbox`` are stripped.

Run standalone with ``python -m modbot.sandbox.server`` (see :func:`serve_forever_cli`).
"""

from __future__ import annotations

import base64
import copy
import hmac
import itertools
import json
import mimetypes
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_USERNAME",
    "Fault",
    "RequestRecord",
    "SandboxServer",
    "Write",
    "serve_forever_cli",
]

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_USERNAME = "modbot-sandbox"
DEFAULT_USER_AGENT = "python:modbot-sandbox-client:0.1.0 (by /u/modbot-sandbox)"

#: Real ids of r/Art (``t5_2qh7a``, 22,396,857 subscribers in April 2026), from
#: ``../shared/data/reddit-api/art_image_flair_1skex88.json``.
_KNOWN_SUBREDDIT_IDS = {"art": ("2qh7a", 22396857)}

#: The body Reddit sends with a 429 (recorded 2021-05-24, ``wire_actions_and_errors.json``).
_TOO_MANY_REQUESTS_HTML = """
<!doctype html>
<html>
  <head>
    <title>Too Many Requests</title>
  </head>
  <body>
    <h1>whoa there, pardner!</h1>
<p>we're sorry, but you appear to be a bot and we've seen too many requests
from you lately. we enforce a hard speed limit on requests that appear to come
from bots to prevent abuse.</p>
<p>please wait {wait} second(s) and try again.</p>
  </body>
</html>
"""

_JSON_TYPE = "application/json; charset=UTF-8"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_ID36_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Write:
    """One write (moderation action) the server received.

    ``kind`` is ``comment``, ``report`` or ``remove``; ``fullname`` the target thing
    (``t3_…``/``t1_…``); ``text`` the comment body or report reason (``None`` for remove);
    ``time`` Unix seconds (float) when it arrived; ``ok`` whether it was accepted (Reddit
    answered without errors); ``result`` the new comment's fullname for comments;
    ``extra`` other form fields (e.g. ``{"spam": "False"}``).
    """

    kind: str
    fullname: str | None
    text: str | None
    time: float
    ok: bool = True
    result: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the server answered.

    ``path`` is the path as received (no query), ``query`` the decoded query parameters
    (last value wins), ``status`` the HTTP status sent, ``time`` Unix seconds at arrival,
    ``form`` the decoded form body of POSTs (``password`` redacted), ``fault`` whether an
    injected fault answered it, ``retry_after`` the ``Retry-After`` header that fault sent.
    """

    method: str
    path: str
    query: Mapping[str, str]
    status: int
    time: float
    form: Mapping[str, str] = field(default_factory=dict)
    fault: bool = False
    retry_after: str | None = None


@dataclass
class Fault:
    """An injected answer: the next ``times`` requests whose path matches ``path_regex``
    (``re.search`` on the path without query, optionally only for ``method``) get ``status``
    with ``headers`` and ``body`` after sleeping ``delay_s`` seconds.

    ``body`` is bytes, str, or a JSON-able object (sent as JSON); ``None`` uses Reddit's body
    for that status (429: the HTML "whoa there, pardner!" page; 5xx: empty; others
    ``{"message": …, "error": status}``). ``truncate_to`` sends only that many bytes of the body
    while announcing the full ``Content-Length``, then closes the connection (a truncated
    response). ``hits`` counts the requests it answered.
    """

    path_regex: str
    status: int
    times: int = 1
    headers: Mapping[str, str] | None = None
    body: Any = None
    delay_s: float = 0.0
    method: str | None = None
    truncate_to: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """True when this fault still has uses left and applies to ``method path``."""
        if self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path_regex, path) is not None


@dataclass
class _PostState:
    """Server-side state of one submission (everything that changes after release)."""

    data: dict[str, Any]
    seq: int | None = None  # release order; None = not released yet
    created_utc: float | None = None
    removed: bool = False
    spam: bool = False
    removed_at: float | None = None
    mod_reports: list[list[str]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        return "t3_" + str(self.data["id"])


@dataclass
class _Token:
    username: str | None
    expires_at: float


class _Reply(Exception):
    """Internal: stop handling and answer ``status`` with ``body``."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------- helpers


def _slug(title: str) -> str:
    """Reddit-like permalink slug: lower case, non-alphanumerics → ``_``, at most 50 chars."""
    return _SLUG_RE.sub("_", title.lower()).strip("_")[:50].rstrip("_") or "_"


def _to_base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _ID36_ALPHABET[r] + out
        if n == 0:
            return out


def _strip_and_substitute(obj: Any, base: str) -> Any:
    """Deep copy of ``obj`` with ``{base}`` replaced in strings and ``_sandbox*`` keys dropped."""
    if isinstance(obj, str):
        return obj.replace("{base}", base)
    if isinstance(obj, Mapping):
        return {
            k: _strip_and_substitute(v, base)
            for k, v in obj.items()
            if not (isinstance(k, str) and k.startswith("_sandbox"))
        }
    if isinstance(obj, list | tuple):
        return [_strip_and_substitute(v, base) for v in obj]
    return obj


def sniff_content_type(data: bytes, filename: str = "") -> str:
    """The Content-Type for ``data``, from its magic bytes (JPEG, PNG, GIF, WebP, HTML), else
    from ``filename``'s extension, else ``application/octet-stream``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html; charset=utf-8"
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def _listing(children: list[dict[str, Any]], after: str | None, before: str | None,
             dist: int | None = -1) -> dict[str, Any]:
    """A Reddit Listing envelope (key order as recorded in 2026)."""
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": len(children) if dist == -1 else dist,
            "modhash": None,
            "geo_filter": None,
            "children": children,
            "before": before,
        },
    }


# --------------------------------------------------------------------------- server


class SandboxServer:
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
    :raises ValueError: on a post without ``id`` or duplicate ids.
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
        self._posts: list[_PostState] = []
        self._by_id: dict[str, _PostState] = {}
        for raw in posts:
            if "id" not in raw:
                raise ValueError("every post needs an 'id'")
            data = copy.deepcopy(dict(raw))
            data.setdefault("subreddit", subreddit)
            state = _PostState(data=data)
            if state.data["id"] in self._by_id:
                raise ValueError(f"duplicate post id {state.data['id']!r}")
            self._posts.append(state)
            self._by_id[str(state.data["id"])] = state
        self._images = dict(images)
        self._released_count = 0
        self._seq = itertools.count()
        self._comment_seq = itertools.count(int(time.time()) % 10_000_000 + 36**6)
        self._tokens: dict[str, _Token] = {}
        self._issued_tokens: list[str] = []
        self._writes: list[Write] = []
        self._requests: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._latencies: list[tuple[re.Pattern[str], float, str | None]] = []
        self._rl_window_start = 0.0
        self._rl_used = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._auto_stop = threading.Event()
        self._auto_thread: threading.Thread | None = None
        self._url: str | None = None
        released = max(0, min(int(released), len(self._posts)))
        now = time.time()
        for i in range(released):
            self._release_one(created_utc=float(int(now) - 60 * (released - 1 - i)))

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns ``self``. Idempotent."""
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer((self.host, self._requested_port), handler)
        httpd.daemon_threads = True
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
        flight."""
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

    # ---------------------------------------------------------------- auth / rate limit

    def _issue_token(self, username: str | None) -> dict[str, Any]:
        token = "sandbox-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Token(username=username, expires_at=time.time() + self.token_ttl_s)
            self._issued_tokens.append(token)
        return {"access_token": token, "token_type": "bearer",
                "expires_in": int(self.token_ttl_s), "scope": "*"}

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued so far, expired ones included (tests grep output for
        them to prove that no token leaks)."""
        with self._lock:
            return list(self._issued_tokens)

    def expire_tokens(self) -> None:
        """Make every issued access token invalid (clients then get 401 and refresh)."""
        with self._lock:
            self._tokens.clear()

    def _check_token(self, header: str | None) -> _Token:
        invalid = _Reply(401, {"error": 401},
                         {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
        if not header or not header.lower().startswith("bearer "):
            raise invalid
        token = header.split(None, 1)[1].strip()
        with self._lock:
            info = self._tokens.get(token)
            if info is None or info.expires_at <= time.time():
                self._tokens.pop(token, None)
                raise invalid
            return info

    def _ratelimit_headers(self) -> dict[str, str]:
        """Count one OAuth request; return Reddit's headers, or raise a 429 past the limit."""
        limit, window = self.ratelimit or (1000, 600)
        now = time.time()
        with self._lock:
            start = now - (now % window)
            if start != self._rl_window_start:
                self._rl_window_start, self._rl_used = start, 0
            self._rl_used += 1
            used = self._rl_used
        reset = max(1, int(start + window - now))
        remaining = max(0, limit - used)
        headers = {"x-ratelimit-remaining": f"{float(remaining):.1f}",
                   "x-ratelimit-used": str(used), "x-ratelimit-reset": str(reset)}
        if self.ratelimit is not None and used > limit:
            raise _Reply(429, _TOO_MANY_REQUESTS_HTML.format(wait=reset).encode(),
                         {**headers, "content-type": "text/html; charset=UTF-8",
                          "retry-after": str(reset)})
        return headers

    # ---------------------------------------------------------------- rendering

    def _render_post(self, state: _PostState) -> dict[str, Any]:
        data = _strip_and_substitute(state.data, self.url)
        created = state.created_utc if state.created_utc is not None else data.get("created_utc")
        data["created_utc"] = created
        data["created"] = created
        sub = str(data.get("subreddit", self.subreddit))
        if not data.get("permalink"):
            data["permalink"] = f"/r/{sub}/comments/{data['id']}/{_slug(str(data.get('title', '')))}/"
        data["name"] = state.fullname
        data["num_comments"] = int(data.get("num_comments") or 0) + len(state.comments)
        if state.mod_reports:
            data["mod_reports"] = [list(r) for r in state.mod_reports]
            data["num_reports"] = len(state.mod_reports)
        if state.removed:
            data["removed"] = True
            data["spam"] = state.spam
            data["banned_by"] = self.username
            data["banned_at_utc"] = state.removed_at
            data["removed_by_category"] = "moderator"
        return data

    def _visible(self, subs: set[str] | None) -> list[_PostState]:
        """Released posts of ``subs`` (lower-case names; None = all), newest first."""
        with self._lock:
            out = [p for p in self._posts[: self._released_count]
                   if subs is None or str(p.data.get("subreddit", "")).lower() in subs]
        out.sort(key=lambda p: p.seq if p.seq is not None else -1, reverse=True)
        return out

    def _known_subs(self) -> set[str]:
        subs = {self.subreddit.lower()}
        subs.update(str(p.data.get("subreddit", "")).lower() for p in self._posts)
        return subs

    def _find_thing(self, fullname: str) -> tuple[_PostState, dict[str, Any] | None] | None:
        """(post, comment-or-None) for a released ``t3_``/``t1_`` fullname, else None."""
        with self._lock:
            if fullname.startswith("t3_"):
                state = self._by_id.get(fullname[3:])
                if state is not None and state.seq is not None:
                    return state, None
            elif fullname.startswith("t1_"):
                for state in self._posts[: self._released_count]:
                    for comment in state.comments:
                        if comment["name"] == fullname:
                            return state, comment
        return None

    # ---------------------------------------------------------------- endpoints

    def handle_token(self, auth_header: str | None, form: Mapping[str, str]) -> tuple[int, Any]:
        """``POST /api/v1/access_token``: (status, JSON body)."""
        client_ok = False
        if auth_header and auth_header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth_header.split(None, 1)[1]).decode("utf-8")
                cid, _, secret = decoded.partition(":")
                client_ok = hmac.compare_digest(cid, self.client_id) and hmac.compare_digest(
                    secret, self.client_secret)
            except (ValueError, UnicodeDecodeError):
                client_ok = False
        if not client_ok:
            return 401, {"message": "Unauthorized", "error": 401}
        grant = form.get("grant_type")
        if grant == "password":
            if (hmac.compare_digest(form.get("username", ""), self.username)
                    and hmac.compare_digest(form.get("password", ""), self.password)):
                return 200, self._issue_token(self.username)
            return 200, {"error": "invalid_grant"}
        if grant in ("client_credentials", "https://oauth.reddit.com/grants/installed_client"):
            return 200, self._issue_token(None)
        return 200, {"error": "unsupported_grant_type"}

    def handle_new(self, sub: str, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /r/{sub}/new``: a Listing, newest first, with Reddit's before/after paging."""
        names = {s.lower() for s in sub.split("+") if s}
        subs: set[str] | None
        if names & {"all", "popular"}:
            subs = None
        else:
            known = self._known_subs()
            if not names & known:
                raise _Reply(302, b"", {"location": f"/subreddits/search?q={quote(sub)}",
                                        "content-type": _JSON_TYPE})
            subs = names
        try:
            limit = int(query.get("limit", "25"))
        except ValueError:
            limit = 25
        limit = 25 if limit <= 0 else min(limit, 100)
        visible = self._visible(subs)
        names_list = [p.fullname for p in visible]
        before, after = query.get("before") or None, query.get("after") or None
        if before:
            if before not in names_list:
                return _listing([], None, None)
            newer = visible[: names_list.index(before)]
            page = newer[-limit:]
            before_out = page[0].fullname if page and len(newer) > limit else None
            after_out = None
        elif after:
            if after not in names_list:
                return _listing([], None, None)
            older = visible[names_list.index(after) + 1:]
            page = older[:limit]
            after_out = page[-1].fullname if len(older) > limit else None
            before_out = page[0].fullname if page else None
        else:
            page = visible[:limit]
            after_out = page[-1].fullname if len(visible) > limit else None
            before_out = None
        children = [{"kind": "t3", "data": self._render_post(p)} for p in page]
        return _listing(children, after_out, before_out)

    def handle_about(self, sub: str) -> dict[str, Any]:
        """``GET /r/{sub}/about``: a ``t5`` thing."""
        if sub.lower() not in self._known_subs():
            raise _Reply(404, {"message": "Not Found", "error": 404})
        sid, subscribers = _KNOWN_SUBREDDIT_IDS.get(
            sub.lower(), (_to_base36(zlib.crc32(sub.lower().encode()) % 36**6), 1))
        name = next((str(p.data.get("subreddit")) for p in self._posts
                     if str(p.data.get("subreddit", "")).lower() == sub.lower()), sub)
        return {"kind": "t5", "data": {
            "display_name": name, "display_name_prefixed": f"r/{name}", "id": sid,
            "name": f"t5_{sid}", "title": name, "url": f"/r/{name}/",
            "public_description": f"Sandbox copy of r/{name} served by modbot's sandbox.",
            "subscribers": subscribers, "subreddit_type": "public", "over18": False,
            "created": 1201233135.0, "created_utc": 1201233135.0, "lang": "en",
            "user_is_moderator": True, "user_is_subscriber": True, "user_is_banned": False,
            "link_flair_enabled": True, "submission_type": "any", "quarantine": False,
        }}

    def handle_me(self, token: _Token) -> dict[str, Any]:
        """``GET /api/v1/me``: the authenticated account (403 for app-only tokens)."""
        if token.username is None:
            raise _Reply(403, {"message": "Forbidden", "error": 403})
        return {
            "name": token.username, "id": "sbx" + _to_base36(len(token.username)),
            "created": 1700000000.0, "created_utc": 1700000000.0, "link_karma": 1,
            "comment_karma": 0, "total_karma": 1, "is_mod": True, "is_gold": False,
            "is_employee": False, "has_verified_email": True, "is_suspended": False,
            "over_18": False, "verified": True, "icon_img": "", "inbox_count": 0,
            "has_mail": False, "has_mod_mail": False, "pref_show_snoovatar": False,
        }

    def handle_comments(self, post_id: str) -> list[dict[str, Any]]:
        """``GET /comments/{id}``: ``[submission Listing, comment Listing]``."""
        found = self._find_thing("t3_" + post_id)
        if found is None:
            raise _Reply(404, {"message": "Not Found", "error": 404})
        state = found[0]
        with self._lock:
            comments = [{"kind": "t1", "data": _strip_and_substitute(c, self.url)} for c in state.comments]
        return [_listing([{"kind": "t3", "data": self._render_post(state)}], None, None, dist=1),
                _listing(comments, None, None, dist=None)]

    def handle_info(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/info?id=…``: a Listing of the released things among the ids (max 100)."""
        ids = [i for i in query.get("id", "").split(",") if i][:100]
        children = []
        for fullname in ids:
            found = self._find_thing(fullname)
            if found is None:
                continue
            state, comment = found
            if comment is None:
                children.append({"kind": "t3", "data": self._render_post(state)})
            else:
                children.append({"kind": "t1", "data": _strip_and_substitute(comment, self.url)})
        return _listing(children, None, None)

    def handle_comment(self, token: _Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/comment``: add a reply; Reddit's ``{"json": {"errors", "data"}}`` shape."""
        self._require_user(token)
        parent = form.get("thing_id", "")
        text = form.get("text", "")
        now = time.time()
        extra = {k: v for k, v in form.items() if k not in ("thing_id", "text", "api_type")}
        if not text.strip():
            self._record_write(Write("comment", parent or None, text, now, ok=False, extra=extra))
            return {"json": {"errors": [["NO_TEXT", "we need something here", "text"]]}}
        found = self._find_thing(parent)
        if found is None:
            # Sandbox choice (no recording of this case): an error in Reddit's error shape.
            self._record_write(Write("comment", parent or None, text, now, ok=False, extra=extra))
            return {"json": {"errors": [["NO_THING_ID", "can't find that thing", "thing_id"]]}}
        state, _ = found
        cid = _to_base36(next(self._comment_seq))
        sub = str(state.data.get("subreddit", self.subreddit))
        body_html = ('<div class="md"><p>' + text.replace("&", "&amp;").replace("<", "&lt;")
                     .replace(">", "&gt;").replace("\n\n", "</p>\n\n<p>") + "</p>\n</div>")
        sub_id = _KNOWN_SUBREDDIT_IDS.get(sub.lower(), ("2t5o6", 0))[0]
        comment = {  # field set of the recorded reply (wire_actions_and_errors.json, 2016)
            "subreddit_id": f"t5_{sub_id}", "banned_by": None, "removal_reason": None,
            "link_id": state.fullname, "likes": True, "replies": "", "user_reports": [],
            "saved": False, "id": cid, "gilded": 0, "archived": False, "report_reasons": [],
            "author": token.username, "parent_id": parent, "score": 1, "approved_by": None,
            "controversiality": 0, "body": text, "edited": False, "author_flair_css_class": None,
            "downs": 0, "body_html": body_html, "stickied": False, "subreddit": sub,
            "score_hidden": False, "name": f"t1_{cid}", "created": float(int(now)),
            "author_flair_text": None, "created_utc": float(int(now)), "ups": 1,
            "mod_reports": [], "num_reports": 0, "distinguished": None,
            "permalink": f"/r/{sub}/comments/{state.data['id']}/"
                         f"{_slug(str(state.data.get('title', '')))}/{cid}/",
        }
        with self._lock:
            state.comments.append(comment)
        self._record_write(Write("comment", parent, text, now, ok=True, result=f"t1_{cid}", extra=extra))
        return {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": copy.deepcopy(comment)}]}}}

    def handle_report(self, token: _Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/report``: ``{"json": {"errors": []}}``; reasons over 100 chars are
        refused with ``TOO_LONG`` like Reddit."""
        self._require_user(token)
        fullname = form.get("thing_id") or form.get("id") or ""
        reason = form.get("reason") or form.get("other_reason") or form.get("site_reason") or ""
        extra = {k: v for k, v in form.items() if k not in ("thing_id", "id", "reason", "api_type")}
        now = time.time()
        if len(reason) > 100:
            self._record_write(Write("report", fullname or None, reason, now, ok=False, extra=extra))
            return {"json": {"errors": [["TOO_LONG", "this is too long (max: 100)", "reason"]]}}
        found = self._find_thing(fullname)
        if found is not None:
            state, comment = found
            with self._lock:
                if comment is None:
                    state.mod_reports.append([reason, str(token.username)])
                else:
                    comment.setdefault("mod_reports", []).append([reason, str(token.username)])
        self._record_write(Write("report", fullname or None, reason, now, ok=found is not None, extra=extra))
        return {"json": {"errors": []}}

    def handle_remove(self, token: _Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/remove``: Reddit answers ``{}``; the post is then served removed."""
        self._require_user(token)
        fullname = form.get("id", "")
        spam = form.get("spam", "False").lower() == "true"
        extra = {k: v for k, v in form.items() if k not in ("id", "api_type")}
        found = self._find_thing(fullname)
        now = time.time()
        if found is not None and found[1] is None:
            state = found[0]
            with self._lock:
                state.removed, state.spam, state.removed_at = True, spam, float(int(now))
        self._record_write(Write("remove", fullname or None, None, now, ok=found is not None, extra=extra))
        return {}

    def _require_user(self, token: _Token) -> None:
        if token.username is None:
            raise _Reply(403, {"message": "Forbidden", "error": 403})

    def _record_write(self, write: Write) -> None:
        with self._lock:
            self._writes.append(write)

    def _record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def image(self, name: str) -> bytes | None:
        """Bytes served at ``/i/{name}``, or None."""
        return self._images.get(name)


# --------------------------------------------------------------------------- HTTP handler

_OAUTH_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/r/(?P<sub>[^/]+)/new$"), "new"),
    ("GET", re.compile(r"^/r/(?P<sub>[^/]+)/about$"), "about"),
    ("GET", re.compile(r"^/api/v1/me$"), "me"),
    ("GET", re.compile(r"^/comments/(?P<id>[a-z0-9]+)(?:/[^/]*)?$"), "comments"),
    ("GET", re.compile(r"^/r/[^/]+/comments/(?P<id>[a-z0-9]+)(?:/[^/]*)?$"), "comments"),
    ("GET", re.compile(r"^/api/info$"), "info"),
    ("POST", re.compile(r"^/api/comment$"), "comment"),
    ("POST", re.compile(r"^/api/report$"), "report"),
    ("POST", re.compile(r"^/api/remove$"), "remove"),
]


def _make_handler(server: SandboxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "modbot-sandbox/0.1"
        timeout = 30  # idle keep-alive connections are closed after this many seconds

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            return  # requests are recorded in server.requests instead of stderr

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (BrokenPipeError, ConnectionResetError):
                # the client gave up (e.g. its timeout fired during an injected stall)
                self.close_connection = True

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        # ------------------------------------------------------------------
        def _dispatch(self, method: str) -> None:
            arrived = time.time()
            parts = urlsplit(self.path)
            raw_path = parts.path
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            form: dict[str, str] = {}
            if body and "json" not in (self.headers.get("content-type") or ""):
                form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            shown_form = {k: ("<redacted>" if k == "password" else v) for k, v in form.items()}

            fault = server._take_fault(method, raw_path)
            if fault is not None:
                # recorded before the answer is written, so a client never outruns the log
                retry_after = {k.lower(): v for k, v in (fault.headers or {}).items()}.get(
                    "retry-after")
                self._send_fault(fault, lambda: server._record_request(RequestRecord(
                    method, raw_path, query, fault.status, arrived, shown_form, fault=True,
                    retry_after=retry_after)))
                return
            latency = server._latency_for(method, raw_path)
            if latency > 0:
                time.sleep(latency)
            try:
                status, payload, headers = self._route(method, raw_path, query, form)
            except _Reply as reply:
                status, payload, headers = reply.status, reply.body, reply.headers
            except Exception as exc:  # a sandbox bug must not look like a hung server
                status, payload, headers = 500, {"message": f"sandbox error: {exc!r}", "error": 500}, {}
            server._record_request(RequestRecord(method, raw_path, query, status, arrived, shown_form))
            self._send(status, payload, headers, head=(method == "HEAD"))

        def _route(self, method: str, raw_path: str, query: Mapping[str, str],
                   form: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
            path = raw_path.rstrip("/") or "/"
            path = path.removesuffix(".json")
            if path.startswith("/i/") and method in ("GET", "HEAD"):
                name = path[3:]
                data = server.image(name)
                if data is None:
                    return 404, b"<html><body><h1>404 Not Found</h1></body></html>", {
                        "content-type": "text/html; charset=utf-8"}
                return 200, data, {"content-type": sniff_content_type(data, name),
                                   "cache-control": "public, max-age=31536000",
                                   "accept-ranges": "bytes"}
            if path == "/api/v1/access_token":
                if method != "POST":
                    raise _Reply(404, {"message": "Not Found", "error": 404})
                status, payload = server.handle_token(self.headers.get("authorization"), form)
                return status, payload, {}
            if path == "/_sandbox/state" and method == "GET":
                return 200, server.state(), {}
            if path == "/_sandbox/release" and method == "POST":
                n = query.get("n", form.get("n", "1"))
                out = server.release_all() if n == "all" else server.release(int(n))
                return 200, {"released": out, "pending": server.pending}, {}
            for route_method, pattern, name in _OAUTH_ROUTES:
                match = pattern.match(path)
                if match is None or route_method != method:
                    continue
                token = server._check_token(self.headers.get("authorization"))
                rl_headers = server._ratelimit_headers()
                try:
                    payload = self._call(name, match, token, query, form)
                except _Reply as reply:
                    raise _Reply(reply.status, reply.body, {**rl_headers, **reply.headers}) from None
                return 200, payload, rl_headers
            raise _Reply(404, {"message": "Not Found", "error": 404})

        @staticmethod
        def _call(name: str, match: re.Match[str], token: _Token, query: Mapping[str, str],
                  form: Mapping[str, str]) -> Any:
            handlers: dict[str, Callable[[], Any]] = {
                "new": lambda: server.handle_new(match["sub"], query),
                "about": lambda: server.handle_about(match["sub"]),
                "me": lambda: server.handle_me(token),
                "comments": lambda: server.handle_comments(match["id"]),
                "info": lambda: server.handle_info(query),
                "comment": lambda: server.handle_comment(token, form),
                "report": lambda: server.handle_report(token, form),
                "remove": lambda: server.handle_remove(token, form),
            }
            return handlers[name]()

        def _send(self, status: int, payload: Any, headers: Mapping[str, str], *,
                  head: bool = False) -> None:
            headers = {k.lower(): v for k, v in headers.items()}
            if isinstance(payload, bytes | bytearray):
                data = bytes(payload)
                headers.setdefault("content-type", "application/octet-stream")
            elif isinstance(payload, str):
                data = payload.encode("utf-8")
                headers.setdefault("content-type", "text/plain; charset=utf-8")
            else:
                data = json.dumps(payload).encode("utf-8")
                headers.setdefault("content-type", _JSON_TYPE)
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            self.send_response(status, phrase)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(data)))
            if self.close_connection:
                # the request said "Connection: close" (prawcore's token requests do): say so,
                # or the client may reuse a connection this server is about to close
                self.send_header("connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _send_fault(self, fault: Fault, record: Callable[[], None]) -> None:
            if fault.delay_s > 0:
                time.sleep(fault.delay_s)
            record()
            headers = {k.lower(): v for k, v in (fault.headers or {}).items()}
            body = fault.body
            if body is None:
                if fault.status == 429:
                    wait = headers.get("retry-after", "1")
                    body = _TOO_MANY_REQUESTS_HTML.format(wait=wait).encode()
                    headers.setdefault("content-type", "text/html; charset=UTF-8")
                elif fault.status >= 500:
                    body = b""
                    headers.setdefault("content-type", _JSON_TYPE)
                elif fault.status == 401:
                    body = {"error": 401}
                    headers.setdefault("www-authenticate", 'Bearer realm="reddit", error="invalid_token"')
                else:
                    try:
                        body = {"message": HTTPStatus(fault.status).phrase, "error": fault.status}
                    except ValueError:
                        body = {"error": fault.status}
            if fault.truncate_to is None:
                self._send(fault.status, body, headers)
                return
            if isinstance(body, str):
                data = body.encode("utf-8")
            elif isinstance(body, bytes | bytearray):
                data = bytes(body)
            else:
                data = json.dumps(body).encode("utf-8")
                headers.setdefault("content-type", _JSON_TYPE)
            self.send_response(fault.status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: max(0, fault.truncate_to)])
            self.wfile.flush()
            self.close_connection = True

    return Handler


# --------------------------------------------------------------------------- CLI


def serve_forever_cli(argv: Iterable[str] | None = None) -> int:
    """Run the sandbox with the shipped sample until Ctrl-C or SIGTERM (``python -m
    modbot.sandbox.server --help``). Prints the base URL and the praw keyword arguments as JSON.

    :returns: process exit status (0).
    """
    import argparse  # noqa: PLC0415 - only the CLI needs it

    from modbot.sandbox.sample import load_sample  # noqa: PLC0415 - avoid an import cycle

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
    import signal  # noqa: PLC0415 - only the CLI needs it

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
