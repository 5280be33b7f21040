"""Stream stage: connect to Reddit with praw and yield new submissions as ``Post`` objects.

Resuming after a restart needs no cursor: praw's ``stream.submissions()`` first returns the
newest 100 submissions (Reddit's listing window), oldest first, so posts made while the daemon
was down are seen; the daemon skips the ones already recorded (``Store.is_final``).
"""

from __future__ import annotations

import configparser
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog

from modbot.config import Config
from modbot.domain import Post
from modbot.errors import ConfigError

log = structlog.get_logger("modbot.stream")


def make_reddit(config: Config, **credentials: Any) -> Any:
    """A ``praw.Reddit`` for ``config``.

    Credentials come from praw's own sources — the praw.ini site ``[reddit] site`` (or praw's
    default site) and ``praw_*`` environment variables — unless given here as keyword arguments
    (the sandbox does that). They are handed to praw only: modbot never logs or stores them.
    Endpoint URLs (``oauth_url``/``reddit_url``/``short_url``) are overridden when configured.
    The request timeout (seconds) is applied through prawcore's requestor, because praw 8.0.3
    ignores ``timeout=``. Raises ``ConfigError`` for an unknown praw.ini site.
    """
    import praw

    rc = config.reddit
    kwargs: dict[str, Any] = {
        "user_agent": rc.user_agent,
        "check_for_updates": False,
        "requestor_kwargs": {"timeout": rc.request_timeout},
    }
    for key in ("oauth_url", "reddit_url", "short_url"):
        value = getattr(rc, key)
        if value:
            kwargs[key] = value
    kwargs.update(credentials)
    try:
        return praw.Reddit(rc.site or None, **kwargs)
    except configparser.NoSectionError as exc:
        raise ConfigError(f"praw.ini has no site [{rc.site}] (see README: credentials)") from exc
    except praw.exceptions.MissingRequiredAttributeException as exc:
        raise ConfigError(f"Reddit credentials incomplete: {exc}") from exc


def post_from_data(data: Mapping[str, Any]) -> Post:
    """Build a ``Post`` from a submission's attributes (praw's ``vars(submission)`` or raw JSON).

    ``author``/``subreddit`` may be praw objects or strings; a deleted author is ``None``.
    Raises ``KeyError`` if ``id`` is missing.
    """
    author = data.get("author")
    subreddit = data.get("subreddit")
    sid = str(data["id"])
    permalink = str(data.get("permalink") or f"/comments/{sid}/")
    return Post(
        id=sid,
        fullname=str(data.get("name") or f"t3_{sid}"),
        subreddit=str(subreddit) if subreddit is not None else "",
        title=str(data.get("title") or ""),
        author=str(author) if author not in (None, "[deleted]") else None,
        permalink=permalink,
        url=str(data.get("url") or ""),
        created_utc=float(data.get("created_utc") or 0.0),
        link_flair_text=data.get("link_flair_text"),
        data={k: v for k, v in data.items() if not k.startswith("_")},
    )


def submission_data(submission: Any) -> dict[str, Any]:
    """The public attributes of a praw ``Submission`` (no ``_reddit``, no private fields)."""
    return {k: v for k, v in vars(submission).items() if not k.startswith("_")}


def stream_posts(
    reddit: Any,
    subreddits: str,
    *,
    poll_interval: float,
    stop: threading.Event,
    on_error: Callable[[Exception], None] | None = None,
) -> Iterator[Post | None]:
    """Yield new submissions of ``subreddits`` (``"Art+ArtistLounge"``) as ``Post``s, forever.

    Yields ``None`` after each poll that brought nothing new, so the caller can do idle work
    (retries, watchdog pings, stop checks); then waits ``poll_interval`` seconds (interruptible
    by ``stop``). Network errors, 5xx and 429 never end the stream: ``on_error`` is called and
    praw backs off (exponential, at most ~16 s); a 429's ``Retry-After`` is honoured here.
    """

    def handler(exc: Exception) -> None:
        retry_after = getattr(exc, "retry_after", None)
        log.warning("stream_error", error_type=type(exc).__name__, error=str(exc)[:200],
                    retry_after_s=retry_after)
        if on_error is not None:
            on_error(exc)
        if retry_after:
            stop.wait(float(retry_after))
        if stop.is_set():
            raise _StopStream from None

    subreddit = reddit.subreddit(subreddits)
    try:
        for submission in subreddit.stream.submissions(pause_after=0, exception_handler=handler):
            if stop.is_set():
                return
            if submission is None:
                yield None
                stop.wait(poll_interval)
                continue
            try:
                yield post_from_data(submission_data(submission))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("malformed_submission", error=str(exc)[:200],
                          fullname=getattr(submission, "name", None))
    except _StopStream:
        return


class _StopStream(Exception):
    """Raised inside praw's stream to leave it when the daemon is stopping."""
