"""Stream stage: connect to Reddit with praw and yield new submissions as ``Post`` objects.

Resuming after a restart needs no cursor: the first poll returns the newest 100 submissions
(Reddit's listing window), oldest first, so posts made while the daemon was down are seen; the
daemon skips the ones already recorded (``Store.status_of``).

Every request goes through :class:`modbot.ratelimit.BudgetedRequestor` (API budget,
Retry-After, ``x-ratelimit-*``, real timeout). Errors never end the stream unless they are
fatal (:func:`is_fatal`: bad credentials, a subreddit that does not exist): polling resumes
after an interruptible, exponential backoff, so no wait here outlasts a SIGTERM.
"""

from __future__ import annotations

import collections
import configparser
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from modbot import redact
from modbot.config import Config
from modbot.domain import Post
from modbot.errors import ConfigError, MalformedListingError, ShuttingDown
from modbot.ratelimit import BudgetedRequestor, RequestBudget

log = structlog.get_logger("modbot.stream")

#: praw.Reddit attribute that carries the request budget (see :func:`make_reddit`).
BUDGET_ATTRIBUTE = "modbot_budget"


def make_reddit(config: Config, *, budget: RequestBudget | None = None, **credentials: Any) -> Any:
    """A ``praw.Reddit`` for ``config``, whose every request passes ``budget``.

    Credentials come from praw's own sources — the praw.ini site ``[reddit] site`` (or praw's
    default site; praw also reads ``$XDG_CONFIG_HOME/praw.ini``, which the systemd unit points
    at its credentials directory) and ``praw_*`` environment variables — unless given here as
    keyword arguments (the sandbox does that). They are handed to praw only and registered for
    redaction (:mod:`modbot.redact`): modbot never logs or stores them.

    ``budget`` defaults to ``RequestBudget(per_minute=[reddit] requests_per_minute)``; it is
    also set as the attribute ``modbot_budget`` of the returned object, where the daemon finds
    it to connect its stop event and watchdog. The request timeout (``[reddit]
    request_timeout``, seconds) is applied by the requestor because praw 8.0.3 ignores
    ``timeout=``. Endpoint URLs (``oauth_url``/``reddit_url``/``short_url``) are overridden
    when configured. Raises ``ConfigError`` for an unknown praw.ini site, incomplete
    credentials or an out-of-range ``requests_per_minute``.
    """
    import praw

    rc = config.reddit
    if budget is None:
        try:
            budget = RequestBudget(per_minute=rc.requests_per_minute)
        except ValueError as exc:
            raise ConfigError(f"[reddit] requests_per_minute: {exc}") from exc
    kwargs: dict[str, Any] = {
        "user_agent": rc.user_agent,
        "check_for_updates": False,
        "requestor_class": BudgetedRequestor,
        "requestor_kwargs": {"timeout": rc.request_timeout, "budget": budget,
                             "on_secret": redact.add_secret},
    }
    for key in ("oauth_url", "reddit_url", "short_url"):
        value = getattr(rc, key)
        if value:
            kwargs[key] = value
    redact.add_secrets(credentials.get(k) for k in ("client_secret", "password", "refresh_token"))
    kwargs.update(credentials)
    try:
        reddit = praw.Reddit(rc.site or None, **kwargs)
    except configparser.NoSectionError as exc:
        raise ConfigError(f"praw.ini has no site [{rc.site}] (see README: credentials)") from exc
    except praw.exceptions.MissingRequiredAttributeException as exc:
        raise ConfigError(f"Reddit credentials incomplete: {exc}") from exc
    redact.add_secrets(getattr(reddit.config, k, None)
                       for k in ("client_secret", "password", "refresh_token"))
    redact.add_basic_auth(getattr(reddit.config, "client_id", None),
                          getattr(reddit.config, "client_secret", None))
    setattr(reddit, BUDGET_ATTRIBUTE, budget)
    return reddit


def budget_of(reddit: Any) -> RequestBudget | None:
    """The :class:`RequestBudget` that :func:`make_reddit` attached to ``reddit``, if any."""
    budget = getattr(reddit, BUDGET_ATTRIBUTE, None)
    return budget if isinstance(budget, RequestBudget) else None


def is_fatal(exc: BaseException) -> bool:
    """True for errors that waiting will not cure, so the daemon should exit (non-zero):
    rejected credentials (``OAuthException``, e.g. ``invalid_grant``; a 401 from the token
    endpoint), a misused API (``InvalidInvocation``), and a subreddit that does not exist
    (Reddit redirects ``/r/<unknown>/new`` to a search page: ``Redirect``)."""
    import prawcore

    if isinstance(exc, prawcore.OAuthException | prawcore.InvalidInvocation | prawcore.Redirect):
        return True
    if isinstance(exc, prawcore.ResponseException):
        response = getattr(exc, "response", None)
        url = str(getattr(getattr(response, "request", None), "url", "") or "")
        return getattr(response, "status_code", None) == 401 and "/api/v1/access_token" in url
    return False


def check_credentials(reddit: Any) -> str | None:
    """Authenticate once (``GET /api/v1/me``: one API request) so rejected credentials stop
    the daemon at start-up, before the model is loaded. Returns the account name (None for an
    app-only login). Fatal errors (:func:`is_fatal`) are raised; any other error (Reddit down,
    a timeout) is logged as ``credentials_unchecked`` and ignored — the stream retries later.
    """
    try:
        me = reddit.user.me()
    except ShuttingDown:
        return None
    except Exception as exc:  # classified below
        if is_fatal(exc):
            log.error("credentials_rejected", error_type=type(exc).__name__, error=str(exc)[:300])
            raise
        log.warning("credentials_unchecked", error_type=type(exc).__name__, error=str(exc)[:300])
        return None
    name = str(me) if me is not None else None
    log.info("credentials_ok", account=name)
    return name


def post_from_data(data: Mapping[str, Any]) -> Post:
    """Build a ``Post`` from a submission's attributes (praw's ``vars(submission)`` or raw JSON).

    ``author``/``subreddit`` may be praw objects or strings; a deleted author is ``None``.
    Whatever the text holds, the fields become storable: lone surrogates (invalid UTF-16 halves
    that Reddit's JSON can carry) are replaced by ``?``, a link flair that is not a string is
    ``None``, and a ``created_utc`` that is not a finite time between 1970 and 9999 is ``0.0``.
    Raises ``KeyError`` if ``id`` is missing.
    """
    author = data.get("author")
    subreddit = data.get("subreddit")
    sid = _text(data["id"])
    flair = data.get("link_flair_text")
    return Post(
        id=sid,
        fullname=_text(data.get("name") or f"t3_{sid}"),
        subreddit=_text(subreddit) if subreddit is not None else "",
        title=_text(data.get("title") or ""),
        author=_text(author) if author not in (None, "[deleted]") else None,
        permalink=_text(data.get("permalink") or f"/comments/{sid}/"),
        url=_text(data.get("url") or ""),
        created_utc=_timestamp(data.get("created_utc")),
        link_flair_text=_text(flair) if isinstance(flair, str) else None,
        data={k: v for k, v in data.items() if not k.startswith("_")},
    )


#: The latest time ``created_utc`` may hold: 9999-12-31T23:59:59Z (Unix seconds).
_MAX_TIMESTAMP = 253_402_300_799.0


def _text(value: Any) -> str:
    """``str(value)`` with lone surrogates replaced by ``?`` (SQLite and UTF-8 refuse them)."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def _timestamp(value: Any) -> float:
    """Unix seconds from Reddit's ``created_utc``; 0.0 when missing, not a number, infinite,
    negative or past :data:`_MAX_TIMESTAMP`."""
    try:
        ts = float(value or 0.0)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return ts if 0.0 <= ts <= _MAX_TIMESTAMP else 0.0


def submission_data(submission: Any) -> dict[str, Any]:
    """The public attributes of a praw ``Submission`` (no ``_reddit``, no private fields)."""
    return {k: v for k, v in vars(submission).items() if not k.startswith("_")}


#: Reddit's largest listing page (``limit``), and how many fullnames the stream remembers to
#: drop items it has already yielded (praw's ``stream_generator`` keeps 301).
PAGE_LIMIT = 100
SEEN_MAX = 301


def listing_children(payload: Any) -> list[Any]:
    """The ``children`` of a Listing ``payload`` (raw JSON). Raises
    :class:`MalformedListingError` when the envelope is wrong; children are not checked."""
    if not isinstance(payload, Mapping) or payload.get("kind") != "Listing":
        raise MalformedListingError(f"not a Listing: {type(payload).__name__}")
    data = payload.get("data")
    children = data.get("children") if isinstance(data, Mapping) else None
    if not isinstance(children, list):
        raise MalformedListingError("Listing without a children list")
    return children


def post_from_child(child: Any) -> Post:
    """A ``Post`` from one Listing child (``{"kind": "t3", "data": {...}}``). Raises
    :class:`~modbot.errors.MalformedListingError` for another kind, missing data or an id that
    is not a non-empty base-36 string."""
    if not isinstance(child, Mapping) or child.get("kind") != "t3":
        raise MalformedListingError(f"not a submission (kind {getattr(child, 'get', lambda _: None)('kind')!r})")
    data = child.get("data")
    if not isinstance(data, Mapping):
        raise MalformedListingError("submission without data")
    sid = data.get("id")
    if not isinstance(sid, str) or not sid.isalnum():
        raise MalformedListingError(f"submission id {sid!r} is not base-36")
    name = data.get("name")
    if name is not None and name != f"t3_{sid}":
        raise MalformedListingError(f"fullname {name!r} does not match id {sid!r}")
    return post_from_data(data)


def _unseen_posts(children: list[Any], seen: collections.OrderedDict[str, None]) -> list[Post]:
    """The submissions of one page not yielded before, oldest first; ``seen`` (the last
    :data:`SEEN_MAX` fullnames) is updated. A malformed child is logged and skipped."""
    new: list[Post] = []
    for child in reversed(children):  # Reddit lists newest first
        try:
            post = post_from_child(child)
        except (MalformedListingError, KeyError, TypeError, ValueError) as exc:
            data = child.get("data") if isinstance(child, Mapping) else None
            log.error("malformed_submission", error=str(exc)[:200],
                      fullname=data.get("name") if isinstance(data, Mapping) else None)
            continue
        if post.fullname in seen:
            continue
        seen[post.fullname] = None
        if len(seen) > SEEN_MAX:
            seen.popitem(last=False)
        new.append(post)
    return new


@dataclass(frozen=True)
class BacklogEnd:
    """How the cold-start backlog read ended without meeting a recorded submission.

    ``pages``: listing pages read (``after=`` paging, :data:`PAGE_LIMIT` each); ``posts``:
    submissions on them; ``oldest``: fullname of the oldest one (None when the listing was
    empty) and ``oldest_created_utc`` (Unix seconds); ``reason``: ``listing_end`` (Reddit
    answered ``after`` = null: its ~1,000-post window, or the subreddit's first post) or
    ``page_limit`` (:data:`BACKLOG_PAGES` pages read). Whether this is a gap (posts lost) depends
    on whether anything of the subreddit was recorded before: the caller decides.
    """

    pages: int
    posts: int
    oldest: str | None
    oldest_created_utc: float | None
    reason: str


#: Most ``after=`` pages read on a cold start: Reddit lists at most ~1,000 submissions.
BACKLOG_PAGES = 10


@dataclass
class _Backlog:
    """The cold-start read in progress: raw children (newest first) and where paging is."""

    children: list[Any] = field(default_factory=list)
    after: str | None = None
    pages: int = 0
    met_recorded: bool = False


def _page_after(payload: Any) -> str | None:
    """The Listing's ``after`` cursor (None at the end of the listing or when malformed)."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    after = data.get("after") if isinstance(data, Mapping) else None
    return after if isinstance(after, str) and after else None


def _read_backlog_page(backlog: _Backlog, payload: Any, children: list[Any],
                       is_recorded: Callable[[str], bool]) -> bool:
    """Add one ``after=`` page to ``backlog``; True when paging is over (a recorded
    submission met, ``after`` null, an empty page, or :data:`BACKLOG_PAGES` pages read)."""
    backlog.pages += 1
    backlog.children.extend(children)
    backlog.after = _page_after(payload)
    for child in children:
        data = child.get("data") if isinstance(child, Mapping) else None
        name = data.get("name") if isinstance(data, Mapping) else None
        if isinstance(name, str) and is_recorded(name):
            backlog.met_recorded = True
            break
    return (backlog.met_recorded or backlog.after is None or not children
            or backlog.pages >= BACKLOG_PAGES)


def _backlog_end(backlog: _Backlog, posts: list[Post]) -> BacklogEnd:
    oldest = posts[0] if posts else None
    return BacklogEnd(pages=backlog.pages, posts=len(posts),
                      oldest=oldest.fullname if oldest else None,
                      oldest_created_utc=oldest.created_utc if oldest else None,
                      reason="listing_end" if backlog.after is None else "page_limit")


def _finish_backlog(backlog: _Backlog, seen: collections.OrderedDict[str, None],
                    is_recorded: Callable[[str], bool],
                    on_backlog_end: Callable[[BacklogEnd], None] | None,
                    ) -> tuple[list[Post], str | None]:
    """The cold start's posts to yield (unrecorded, oldest first) and the fullname to poll
    ``before`` (the newest listed); tells ``on_backlog_end`` when no recorded post was met."""
    listed = _unseen_posts(backlog.children, seen)
    log.info("backlog_read", pages=backlog.pages, posts=len(listed),
             met_recorded=backlog.met_recorded)
    if not backlog.met_recorded and on_backlog_end is not None:
        on_backlog_end(_backlog_end(backlog, listed))
    before = listed[-1].fullname if listed else None
    return [p for p in listed if not is_recorded(p.fullname)], before


def _poll_params(backlog: _Backlog | None, before: str | None,
                 without_before: int) -> dict[str, Any]:
    """Query of the next ``/new`` request: a backlog page (``after``), a poll for what is newer
    than ``before``, or (no ``before``) the newest page with ``limit`` varied by a few."""
    if backlog is not None:
        return {"limit": PAGE_LIMIT, **({"after": backlog.after} if backlog.after else {})}
    if before is not None:
        return {"limit": PAGE_LIMIT, "before": before}
    return {"limit": PAGE_LIMIT - without_before}


def _stream_error(exc: Exception, failures: int, base_s: float, max_s: float) -> float:
    """Log a failed poll (``stream_error``) and return the backoff (seconds) after
    ``failures`` consecutive ones; a fatal error (:func:`is_fatal`) is logged as
    ``stream_fatal`` and raised."""
    if is_fatal(exc):
        log.error("stream_fatal", error_type=type(exc).__name__, error=str(exc)[:300])
        raise exc
    wait = min(max_s, base_s * 2 ** (failures - 1))
    log.warning("stream_error", error_type=type(exc).__name__, error=str(exc)[:300],
                retry_after_s=getattr(exc, "retry_after", None),
                consecutive_failures=failures, backoff_s=wait)
    return wait


def stream_posts(
    reddit: Any,
    subreddits: str,
    *,
    poll_interval: float,
    stop: threading.Event,
    is_recorded: Callable[[str], bool] | None = None,
    on_backlog_end: Callable[[BacklogEnd], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    backoff_base_s: float = 1.0,
    backoff_max_s: float = 60.0,
) -> Iterator[Post | None]:
    """Yield new submissions of ``subreddits`` (``"Art+ArtistLounge"``) as ``Post``s, oldest
    first, until ``stop`` is set.

    **Cold start** (only with ``is_recorded``, a ``fullname -> bool`` "already in the database"
    check): pages back through ``GET /r/<subreddits>/new`` (``after=``, :data:`PAGE_LIMIT` per
    page) until a page holds a recorded submission, Reddit answers ``after`` = null, or
    :data:`BACKLOG_PAGES` pages were read; then yields the unrecorded submissions of those pages
    oldest first. If no recorded submission was met, ``on_backlog_end`` gets a
    :class:`BacklogEnd` (the caller decides whether that is a gap). Without ``is_recorded``,
    the first poll reads the newest page only.

    **Polling**: ``limit=100`` and ``before=<newest fullname yielded>`` the way praw's
    ``stream.submissions()`` does (dropping ``before``, and varying ``limit`` by a few to get past
    caches, after an empty page; skipping the last 301 fullnames already yielded), reading the
    raw JSON so one malformed child is logged as ``malformed_submission`` and skipped. After a
    full page (as many new submissions as the limit: more may be waiting) the next poll is sent
    at once; after a short page the stream yields ``None`` (an idle point: retries, watchdog,
    stop checks) and waits ``poll_interval`` seconds.

    An error (network, 5xx, 429, malformed JSON, not a Listing) is logged (``stream_error``),
    passed to ``on_error``, yields ``None`` and is followed by ``backoff_base_s · 2^(k-1)`` s (at
    most ``backoff_max_s``) after ``k`` consecutive failures; a cold start resumes at its page.
    Waits end at once when ``stop`` is set. Fatal errors (:func:`is_fatal`) are raised.
    """
    path = f"r/{subreddits}/new"
    seen: collections.OrderedDict[str, None] = collections.OrderedDict()
    backlog = _Backlog() if is_recorded is not None else None
    before: str | None = None
    without_before = 0
    failures = 0
    while not stop.is_set():
        params = _poll_params(backlog, before, without_before)
        if backlog is None and before is None:
            without_before = (without_before + 1) % 30
        try:
            payload = reddit.request(method="GET", path=path, params=params)
            children = listing_children(payload)
        except ShuttingDown:
            return
        except Exception as exc:  # praw/prawcore/requests raise many types; see is_fatal
            if stop.is_set():
                return
            failures += 1
            wait = _stream_error(exc, failures, backoff_base_s, backoff_max_s)
            if on_error is not None:
                on_error(exc)
            yield None
            if stop.wait(wait):
                return
            continue
        failures = 0
        if backlog is not None and is_recorded is not None:
            if not _read_backlog_page(backlog, payload, children, is_recorded):
                continue
            new, before = _finish_backlog(backlog, seen, is_recorded, on_backlog_end)
            full, backlog = False, None
        else:
            new = _unseen_posts(children, seen)
            full = len(new) >= params["limit"]
            before = new[-1].fullname if new else None
        for post in new:
            if stop.is_set():
                return
            yield post
        if not full:
            yield None
            if stop.wait(poll_interval):
                return
