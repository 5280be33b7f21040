"""``modbot collect``: a first labelled dataset, balanced by stated medium, from a subreddit's
history.

The seed project (MWilliamson96/RedditArtClassifier) found that about a third of r/Art posts
are digital (its own 2020 sample, ``../shared/data/rart-2020/``, is half digital after
balancing by hand), so taking posts as they come gives a lopsided dataset. ``collect`` reads a
listing through praw — ``new``, ``top`` (with a time filter) or ``search`` (a query, e.g.
``flair:Painting``) — reads each submission's stated medium exactly as the daemon does
(:func:`modbot.medium.stated_medium`: link flair, then the r/Art title), and keeps a submission
only while its medium is below ``per_medium``; for each kept submission the first image is
downloaded into the content-addressed cache (:class:`modbot.images.ImageFetcher`) and
fingerprinted for the repost finder (:func:`modbot.repost.fingerprint_image`).

Everything is recorded (``migrations/`` ``m004_learning``): the run in ``collect_runs`` (its
listing cursor — the fullname of the last submission read, Reddit's ``after`` — is updated
after every submission) and each kept or failed submission in ``collected_posts``. Running the
same command again resumes an unfinished run from its cursor; quotas count every image already
collected from that subreddit, so a later run with a larger ``per_medium`` tops the set up.
Every request goes through the praw client's request budget (:func:`modbot.stream.make_reddit`:
``[reddit] requests_per_minute``, Retry-After, ``x-ratelimit-*``). Reddit serves at most about
1,000 submissions per listing; use ``top``/``search`` to reach further back.

The stated media of collected posts are labels for retraining when ``[learning]
collected_labels`` is true (source ``collected``; moderator reviews outrank them).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from modbot.domain import MEDIA
from modbot.errors import ImageError, InputError
from modbot.images import resolve_images
from modbot.medium import Vocabulary, stated_medium
from modbot.record import write_transaction
from modbot.repost import fingerprint_image
from modbot.stream import post_from_data, submission_data

log = structlog.get_logger("modbot.learning.collect")

LISTINGS = ("new", "top", "search")
TIME_FILTERS = ("hour", "day", "week", "month", "year", "all")
#: Default target media: every canonical medium but the catch-alls (``mixed_media``, ``other``).
DEFAULT_MEDIA: tuple[str, ...] = tuple(m for m in MEDIA if m not in ("mixed_media", "other"))
#: Run statuses from which a run is resumed.
RESUMABLE = ("running", "stopped", "failed")


@dataclass
class CollectResult:
    """What a ``collect`` call did.

    ``status``: ``done`` (every medium reached ``per_medium``), ``exhausted`` (the listing
    ended first), ``stopped`` (``max_posts`` or a stop request; run again to resume) or
    ``failed`` (an error; run again to resume). ``counts``: collected images per target medium,
    all runs of this subreddit included; ``scanned``/``kept``: submissions read/kept by this
    call; ``skipped``: why read submissions were not kept (``no_stated_medium``,
    ``other_medium``, ``quota_full``, ``already_collected``, or the image's failure reason).
    """

    run_id: int
    status: str
    resumed: bool
    counts: dict[str, int]
    scanned: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    error: str | None = None


def collected_counts(db: Any, subreddit: str, media: Sequence[str]) -> dict[str, int]:
    """Images collected (status ``ok``) from ``subreddit`` per medium of ``media``, all runs."""
    rows = dict(db.execute(
        "SELECT stated_medium, COUNT(*) FROM collected_posts WHERE lower(subreddit) = lower(?) "
        "AND status = 'ok' GROUP BY stated_medium", [subreddit]).fetchall())
    return {m: int(rows.get(m, 0)) for m in media}


def _listing(reddit: Any, subreddit: str, listing: str, query: str | None, time_filter: str,
             after: str | None) -> Iterator[Any]:
    sub = reddit.subreddit(subreddit)
    # praw's top/search add their own params (t, q, ...) to a dict given here: never None
    kwargs: dict[str, Any] = {"limit": None, "request_limit": 100,
                              "params": {"after": after} if after else {}}
    if listing == "new":
        return sub.new(**kwargs)
    if listing == "top":
        return sub.top(time_filter=time_filter, **kwargs)
    return sub.search(query, sort="new", time_filter=time_filter, **kwargs)


def _check_args(listing: str, query: str | None, time_filter: str, per_medium: int,
                media: Sequence[str]) -> tuple[str, ...]:
    """The target media without duplicates; ``InputError`` for a bad argument."""
    if listing not in LISTINGS:
        raise InputError(f"listing must be one of {LISTINGS}, not {listing!r}")
    if listing == "search" and not query:
        raise InputError("listing 'search' needs a query")
    if time_filter not in TIME_FILTERS:
        raise InputError(f"time filter must be one of {TIME_FILTERS}, not {time_filter!r}")
    if per_medium < 1:
        raise InputError("per_medium must be at least 1")
    media = tuple(dict.fromkeys(media))
    unknown = [m for m in media if m not in MEDIA]
    if unknown or not media:
        raise InputError(f"unknown media {unknown} (canonical: {', '.join(MEDIA)})")
    return media


def _open_run(db: Any, *, subreddit: str, listing: str, query: str | None, time_filter: str,
              per_medium: int, media: Sequence[str], fresh: bool,
              now: Callable[[], float]) -> tuple[int, str | None, bool]:
    """Resume the latest unfinished run of the same listing (unless ``fresh``) or start one;
    returns ``(run_id, cursor, resumed)``."""
    tf = time_filter if listing != "new" else ""
    found = [] if fresh else list(db.query(
        "SELECT id, cursor FROM collect_runs WHERE lower(subreddit) = lower(?) AND listing = ? "
        "AND coalesce(query, '') = coalesce(?, '') AND coalesce(time_filter, '') = ? "
        f"AND status IN ({', '.join('?' for _ in RESUMABLE)}) ORDER BY id DESC LIMIT 1",
        [subreddit, listing, query, tf, *RESUMABLE]))
    run = found[0] if found else None
    with write_transaction(db):
        if run is not None:
            db["collect_runs"].update(run["id"], {"status": "running", "per_medium": per_medium,
                                                  "media": json.dumps(list(media)),
                                                  "updated_at": now(), "error": None})
            return int(run["id"]), run["cursor"], True
        run_id = int(db["collect_runs"].insert({
            "subreddit": subreddit, "listing": listing, "query": query, "time_filter": tf,
            "per_medium": per_medium, "media": json.dumps(list(media)), "status": "running",
            "cursor": None, "scanned": 0, "kept": 0, "started_at": now(), "updated_at": now(),
        }).last_pk)
    return run_id, None, False


def collect(reddit: Any, db: Any, fetcher: Any, *, subreddit: str, per_medium: int,
            media: Sequence[str] = DEFAULT_MEDIA, listing: str = "new", query: str | None = None,
            time_filter: str = "all", max_posts: int | None = None, fresh: bool = False,
            vocabulary: Vocabulary | None = None, stop: threading.Event | None = None,
            on_progress: Callable[[dict[str, int], int], None] | None = None,
            now: Callable[[], float] = time.time) -> CollectResult:
    """Collect up to ``per_medium`` images per stated medium of ``media`` from ``subreddit``.

    ``reddit``: a ``praw.Reddit`` (:func:`modbot.stream.make_reddit`). ``db``: the modbot
    database (sqlite-utils). ``fetcher``: an :class:`~modbot.images.ImageFetcher` writing to
    the image cache. ``listing``: ``new`` | ``top`` | ``search`` (``query`` required; results
    sorted by new); ``time_filter`` applies to ``top`` and ``search``. ``max_posts``: read at
    most this many submissions in this call (then status ``stopped``; resumable). ``fresh``:
    start a new run from the top of the listing instead of resuming an unfinished one.
    ``stop``: set it to end after the current submission (status ``stopped``).
    ``on_progress(counts, scanned)`` is called once at the start and after every submission read.

    Raises ``InputError`` for bad arguments; errors from Reddit end the call with status
    ``failed`` (recorded, resumable), never a half-written record.
    """
    media = _check_args(listing, query, time_filter, per_medium, media)
    query = query or None
    run_id, cursor, resumed = _open_run(db, subreddit=subreddit, listing=listing, query=query,
                                        time_filter=time_filter, per_medium=per_medium,
                                        media=media, fresh=fresh, now=now)
    counts = collected_counts(db, subreddit, media)
    result = CollectResult(run_id=run_id, status="running", resumed=resumed, counts=counts)
    log.info("collect_start", run_id=run_id, resumed=resumed, cursor=cursor, subreddit=subreddit,
             listing=listing, per_medium=per_medium, counts=counts)
    if on_progress is not None:
        on_progress(dict(counts), 0)
    scan = _Scan(db, fetcher, result, per_medium, media, vocabulary or Vocabulary.default(), now)
    status = "done" if scan.full() else "exhausted"
    try:
        if not scan.full():
            posts = _listing(reddit, subreddit, listing, query, time_filter, cursor)
            status = scan.run(posts, stop=stop, max_posts=max_posts, on_progress=on_progress)
    except Exception as exc:  # praw/prawcore/network errors: recorded, resumable
        status = "failed"
        result.error = f"{type(exc).__name__}: {str(exc)[:300]}"
        log.error("collect_failed", run_id=run_id, error=result.error)
    except KeyboardInterrupt:
        status = "stopped"
        result.error = "interrupted"
    result.status = status
    with write_transaction(db):
        db["collect_runs"].update(run_id, {
            "status": status, "updated_at": now(), "error": result.error,
            "finished_at": now() if status in ("done", "exhausted") else None})
    log.info("collect_end", run_id=run_id, status=status, scanned=result.scanned, kept=result.kept,
             counts=counts, skipped=dict(result.skipped))
    return result


@dataclass
class _Scan:
    """Reading a listing for one :func:`collect` call (``result.counts`` is updated in place)."""

    db: Any
    fetcher: Any
    result: CollectResult
    per_medium: int
    media: tuple[str, ...]
    vocabulary: Vocabulary
    now: Callable[[], float]

    def full(self) -> bool:
        """True when every target medium has ``per_medium`` images."""
        return all(self.result.counts[m] >= self.per_medium for m in self.media)

    def run(self, submissions: Iterator[Any], *, stop: threading.Event | None,
            max_posts: int | None,
            on_progress: Callable[[dict[str, int], int], None] | None) -> str:
        """Consider each submission, recording the cursor after each; returns ``done``,
        ``stopped`` or ``exhausted`` (the listing ended). Errors from Reddit propagate."""
        result = self.result
        for submission in submissions:
            data = submission_data(submission)
            post = post_from_data(data)
            result.scanned += 1
            reason = _consider(self.db, self.fetcher, post, data, result.run_id, result.counts,
                               self.per_medium, self.media, self.vocabulary, self.now)
            if reason == "ok":
                result.kept += 1
            else:
                result.skipped[reason] += 1
            with write_transaction(self.db):
                self.db.execute("UPDATE collect_runs SET cursor = ?, scanned = scanned + 1, "
                                "kept = kept + ?, updated_at = ? WHERE id = ?",
                                [post.fullname, int(reason == "ok"), self.now(), result.run_id])
            if on_progress is not None:
                on_progress(dict(result.counts), result.scanned)
            if self.full():
                return "done"
            if (stop is not None and stop.is_set()) or (max_posts is not None
                                                         and result.scanned >= max_posts):
                return "stopped"
        return "exhausted"


def _consider(db: Any, fetcher: Any, post: Any, data: dict[str, Any], run_id: int,
              counts: dict[str, int], per_medium: int, media: Sequence[str],
              vocabulary: Vocabulary, now: Callable[[], float]) -> str:
    """Keep ``post`` if its stated medium still needs images; returns ``ok`` or why not."""
    if db.execute("SELECT 1 FROM collected_posts WHERE fullname = ? AND status = 'ok'",
                  [post.fullname]).fetchone():
        return "already_collected"
    stated = stated_medium(post.title, post.link_flair_text, vocabulary=vocabulary)
    if stated.medium not in MEDIA:
        return "no_stated_medium"
    if stated.medium not in media:
        return "other_medium"
    if counts[stated.medium] >= per_medium:
        return "quota_full"
    row: dict[str, Any] = {
        "fullname": post.fullname, "run_id": run_id, "subreddit": post.subreddit, "id": post.id,
        "title": post.title, "author": post.author, "permalink": post.permalink,
        "link_flair_text": post.link_flair_text, "created_utc": post.created_utc,
        "stated_medium": stated.medium, "stated_source": stated.source, "collected_at": now(),
    }
    resolution = resolve_images(data, max_images=1)
    if resolution.skip_reason:
        row.update(status=resolution.skip_reason)
    else:
        ref = resolution.images[0]
        row["image_url"] = ref.url
        try:
            image = fetcher.fetch(ref)
        except ImageError as exc:
            row.update(status=exc.reason, error=str(exc)[:500])
        else:
            row.update(status="ok", sha256=image.sha256, path=image.path, width=image.width,
                       height=image.height)
            counts[stated.medium] += 1
            # the repost finder's fingerprint (modbot.repost): collected history counts as earlier
            fingerprint_image(db, post, image.rgb, source="collect", position=0,
                              sha256=image.sha256)
    with write_transaction(db):
        db["collected_posts"].insert(row, replace=True)
    return row["status"]
