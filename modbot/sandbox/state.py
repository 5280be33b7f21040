"""Records, server-side state and wire helpers of the Reddit sandbox (no HTTP, no threads).

The sandbox is split in four modules, each importing only the ones above it:

* ``state`` (this module) — what the server records and keeps: :class:`Write` (a moderation
  action received), :class:`RequestRecord` (a request answered), :class:`Fault` (an injected
  answer), :class:`PostState` (one submission and what happened to it), :class:`Token` (an
  issued access token), :class:`Reply` (an early answer raised by an endpoint), and the helpers
  that shape Reddit's wire format: :func:`listing`, :func:`slug`, :func:`to_base36`,
  :func:`strip_and_substitute`, :func:`sniff_content_type`;
* :mod:`modbot.sandbox.api` — the Reddit endpoints (``RedditApi``, a mixin) and their route
  table;
* :mod:`modbot.sandbox.handler` — HTTP: the request handler class, fixed routes, dispatch,
  fault answers;
* :mod:`modbot.sandbox.server` — ``SandboxServer``: lifecycle, releases, faults, records, CLI.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_REMOVAL_REASONS",
    "DEFAULT_USERNAME",
    "DEFAULT_USER_AGENT",
    "Fault",
    "PostState",
    "Reply",
    "RequestRecord",
    "Token",
    "Write",
    "listing",
    "sniff_content_type",
]

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_USERNAME = "modbot-sandbox"
DEFAULT_USER_AGENT = "python:modbot-sandbox-client:0.1.0 (by /u/modbot-sandbox)"

#: Real ids of r/Art (``t5_2qh7a``, 22,396,857 subscribers in April 2026), from
#: ``../shared/data/reddit-api/art_image_flair_1skex88.json``.
KNOWN_SUBREDDIT_IDS = {"art": ("2qh7a", 22396857)}

#: The removal reasons every sandbox subreddit has (id → title and message), as
#: ``GET /api/v1/{sub}/removal_reasons`` lists them; ``SandboxServer.removal_reasons`` may
#: replace them per server.
DEFAULT_REMOVAL_REASONS: dict[str, dict[str, str]] = {
    "18rbsx2xyccdn": {"title": "Wrong medium",
                      "message": "The medium stated in your title or flair does not match the artwork."},
    "18rbt3ktwecgd": {"title": "Not original content", "message": "Only post your own artwork."},
}

#: The body Reddit sends with a 429 (recorded 2021-05-24, ``wire_actions_and_errors.json``).
TOO_MANY_REQUESTS_HTML = """
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

JSON_TYPE = "application/json; charset=UTF-8"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_ID36_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Write:
    """One write (moderation action) the server received.

    ``kind`` is ``comment``, ``report``, ``remove``, or one of the moderator tools
    (:mod:`modbot.sandbox.modtools`): ``note``, ``removal_reason``, ``removal_message``,
    ``distinguish``, ``lock``, ``modmail`` (``fullname`` = the recipient, ``result`` = the
    conversation id); ``fullname`` the target thing (``t3_…``/``t1_…``); ``text`` the comment
    body, report reason, note, message or reason id (``None`` for remove);
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
class PostState:
    """Server-side state of one submission (everything that changes after release)."""

    data: dict[str, Any]
    seq: int | None = None  # release order; None = not released yet
    created_utc: float | None = None
    removed: bool = False
    spam: bool = False
    removed_at: float | None = None
    removal_reason_id: str | None = None
    removed_by: str | None = None  # the moderator who removed it (None: the server's account)
    approved_by: str | None = None  # the moderator who approved it last
    mod_reports: list[list[str]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        """``t3_{id}``."""
        return "t3_" + str(self.data["id"])


@dataclass
class Token:
    """An issued access token: its account (``None`` for app-only grants) and expiry (Unix s)."""

    username: str | None
    expires_at: float


class Reply(Exception):
    """Raised by an endpoint (or the auth checks) to stop handling and answer ``status`` with
    ``body`` and ``headers`` instead; the HTTP handler catches it."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------- helpers


def slug(title: str) -> str:
    """Reddit-like permalink slug: lower case, non-alphanumerics → ``_``, at most 50 chars."""
    return _SLUG_RE.sub("_", title.lower()).strip("_")[:50].rstrip("_") or "_"


def to_base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _ID36_ALPHABET[r] + out
        if n == 0:
            return out


def strip_and_substitute(obj: Any, base: str) -> Any:
    """Deep copy of ``obj`` with ``{base}`` replaced in strings and ``_sandbox*`` keys dropped."""
    if isinstance(obj, str):
        return obj.replace("{base}", base)
    if isinstance(obj, Mapping):
        return {
            k: strip_and_substitute(v, base)
            for k, v in obj.items()
            if not (isinstance(k, str) and k.startswith("_sandbox"))
        }
    if isinstance(obj, list | tuple):
        return [strip_and_substitute(v, base) for v in obj]
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


def listing(children: list[dict[str, Any]], after: str | None, before: str | None,
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
