"""The daemon: stream → images → reposts → classify → judge → record → act, one submission at a time.

``Pipeline.process`` is the whole path of one post; read it top to bottom to follow a
submission from the stream to the database. ``Daemon.run`` feeds it from the praw stream,
settles what a previous run left unfinished, and retries retryable failures with backoff.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from modbot.act import Actor
from modbot.classify import CROP_MODES, prepare_input
from modbot.config import Config
from modbot.domain import (
    FetchedImage,
    ImageRef,
    Post,
    Prediction,
    Resolution,
    StatedMedium,
    Verdict,
)
from modbot.errors import EnvironmentFailure, FingerprintError, ImageError, ModbotError
from modbot.fingerprint import fingerprint, single_blas_thread
from modbot.images import ImageFetcher, resolve_images
from modbot.judge import judge
from modbot.medium import Vocabulary, stated_medium
from modbot.notify import Notifier
from modbot.prefetch import Prefetcher
from modbot.record import Store
from modbot.repost import RepostFinding, RepostStage
from modbot.stream import BacklogEnd, budget_of, post_from_data, stream_posts

log = structlog.get_logger("modbot.daemon")

#: Default of :attr:`Daemon.fingerprint_ahead`: the perceptual fingerprint is computed on the
#: decode threads; ``RepostStage.check`` uses ``FetchedImage.fingerprint`` when present and
#: computes it itself otherwise (an image fetched on the spot, or one that failed ahead).
FINGERPRINT_AHEAD = True


def failure_reason(exc: ImageError) -> str:
    """The submission-level reason for an image error: its ``reason`` code, plus the HTTP
    status for ``http_status`` (``"http_status:404"``), so moderators see which failure it was."""
    status = getattr(exc, "status", None)
    return f"{exc.reason}:{status}" if exc.reason == "http_status" and status else exc.reason


def _served(classifier: Any, name: str) -> Any:
    """Attribute ``name`` of the model ``classifier`` serves now: the classifier's own, or that
    of its ``current`` model (the learning loop's swappable classifier); None when neither has it."""
    for model in (classifier, getattr(classifier, "current", None)):
        value = getattr(model, name, None)
        if value is not None:
            return value
    return None


def model_input_size(classifier: Any) -> tuple[int, int] | None:
    """``(H, W)`` in pixels of the input of the model ``classifier`` serves now
    (:func:`_served`); None when it says nothing (any classifier works without it)."""
    size = _served(classifier, "input_size")
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        return None
    return (h, w) if h > 0 and w > 0 else None


def model_crops(classifier: Any) -> str:
    """The crop mode (:data:`modbot.classify.CROP_MODES`) of the model ``classifier`` serves
    now (:func:`_served`); ``"centre"`` when it says nothing."""
    crops = _served(classifier, "crops")
    return str(crops) if crops in CROP_MODES else "centre"


class Classifier(Protocol):
    """What the daemon needs of a classifier (see ``modbot.classify.KerasClassifier``)."""

    labels: tuple[str, ...]
    version: str

    def predict(self, images: list[Any]) -> list[Prediction]:
        """One ``Prediction`` per RGB Pillow image, same order."""
        ...


class BackgroundJobs(Protocol):
    """A job that runs beside the stream while :meth:`Daemon.run` runs: the learning loop
    (:class:`modbot.learning.LearningLoop`: scheduled retraining, live model swaps), the modmail
    digest (:mod:`modbot.digest`), the mod log reader (:mod:`modbot.learning.modlog`)."""

    def start(self) -> None:
        """Start the job (called when streaming starts, again on a later ``run``)."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Stop the job; called when streaming stops and on ``close`` (idempotent)."""
        ...


@dataclass
class Pipeline:
    """One submission's way through the stages. All collaborators are real objects; tests swap
    them for other real ones (the sandbox's praw client, a small model, a temp database)."""

    config: Config
    store: Store
    fetcher: ImageFetcher
    classifier: Classifier
    actor: Actor
    vocabulary: Vocabulary = field(default_factory=Vocabulary.default)
    stop: threading.Event = field(default_factory=threading.Event)
    #: Called between stages and images (the daemon pings the systemd watchdog with it).
    heartbeat: Callable[[], Any] = field(default=lambda: None)
    #: Images downloaded ahead by the daemon (:mod:`modbot.prefetch`); None = fetch here.
    prefetch: Prefetcher | None = None
    #: The repost finder (:mod:`modbot.repost`); None = no fingerprints, no findings.
    reposts: RepostStage | None = None

    def process(self, post: Post) -> str:
        """Process ``post`` completely and return its final status (done, skipped, retry,
        failed, abandoned).

        Every outcome is recorded; nothing is raised for bad input (a broken image, a post
        without images). Unexpected errors propagate to the caller, with the submission left
        in ``processing`` so it is processed again. If ``stop`` is set before the post is
        judged (SIGTERM), it is recorded as ``abandoned`` (reason ``shutdown``) and processed
        again on the next start; once judged, it is finished — unless the API budget would
        make an action wait, then the unsent action is undone and the post abandoned too.
        Retryable image failures (timeouts, 5xx, 429) and actions refused with 429 are retried
        ``[daemon] retry_base_s · 2^(attempt-1)`` seconds later, at most ``[daemon]
        max_attempts`` attempts in all; actions already sent are never repeated.
        """
        stated = stated_medium(post.title, post.link_flair_text, vocabulary=self.vocabulary)
        run = _PostRun(self, post, stated)

        # already removed (AutoModerator, a moderator, the author): nothing to judge or act on
        removed = post.data.get("removed_by_category")
        if removed:
            return run.finish("skipped", f"removed:{removed}"[:100])

        # images: resolve
        resolution = resolve_images(post.data, max_images=self.config.images.max_images_per_post)
        if resolution.skip_reason:
            return run.finish("skipped", resolution.skip_reason)

        # images: fetch (their rows are written below, with the predictions and the verdict)
        fetch = _Fetch()
        try:
            done = self._fetch(run, resolution, fetch)
        except EnvironmentFailure as exc:
            with self.store.transaction():
                self._record_images(post, fetch)
                return run.defer(exc)
        images, errors = fetch.images, fetch.errors
        if not done:
            with self.store.transaction():
                self._record_images(post, fetch)
                return run.abandon()
        run.facts["n_images"] = len(images)
        if not images:
            reason = failure_reason(errors[0]) if errors else "no_image"
            with self.store.transaction():
                self._record_images(post, fetch)
                if any(e.retryable for e in errors) and run.may_retry:
                    return run.retry_later(reason)
                return run.finish("failed", reason)
        self.heartbeat()
        if self.stop.is_set():
            with self.store.transaction():
                self._record_images(post, fetch)
                return run.abandon()

        # reposts: fingerprint the images, look up earlier posts, record what matched
        reposts = (self.reposts.check(post, images, self.config.reposts)
                   if self.reposts is not None else None)
        if reposts is not None:
            run.facts["repost"] = reposts.kind

        # classify (one model for all images of the post, even if a promotion swaps it now)
        predictions = self.classifier.predict([f.rgb for f in images])
        model_version = predictions[0].model_version

        # judge
        verdict = judge(stated.medium, predictions, flag_below=self.config.judge.threshold_for)

        # record: the images, their predictions and the verdict in one commit, before any action
        with self.store.transaction():
            image_ids = self._record_images(post, fetch)
            self.store.record_predictions(post.fullname, image_ids, predictions)
            self.store.record_verdict(post.fullname, verdict, model_version=model_version,
                                      n_images=len(images))
        run.facts.update(verdict=verdict.kind.value, predicted=verdict.predicted,
                         confidence=None if verdict.confidence is None else round(verdict.confidence, 3),
                         model_version=model_version)

        # act
        self.heartbeat()
        return self._act(run, verdict, model_version, errors, len(resolution.images), reposts)

    def _fetch(self, run: _PostRun, resolution: Resolution, fetch: _Fetch) -> bool:
        """Download every resolved image into ``fetch`` (each fetched, or its error kept for
        its row). Returns False when ``stop`` was set (SIGTERM) before all were tried."""
        for position, ref in enumerate(resolution.images):
            self.heartbeat()
            if self.stop.is_set():
                return False
            try:
                image = (self.prefetch or self.fetcher).fetch(ref)
            except EnvironmentFailure:
                raise  # the machine, not this image: handled by process()
            except ImageError as exc:
                if self.stop.is_set():  # the download was cut short by the shutdown
                    return False
                fetch.errors.append(exc)
                fetch.rows.append((position, ref, None, exc))
                continue
            fetch.images.append(image)
            fetch.rows.append((position, ref, image, None))
        return True

    def _record_images(self, post: Post, fetch: _Fetch) -> list[int]:
        """Write the image rows of ``fetch`` in position order (fetched, or with the error's
        reason); returns the row ids of the fetched ones, in order."""
        ids = []
        for position, ref, image, error in fetch.rows:
            if error is not None:
                self.store.record_image(post.fullname, position, ref, status=error.reason,
                                        error=str(error)[:500])
            else:
                ids.append(self.store.record_image(post.fullname, position, ref, fetched=image))
        return ids

    def _act(self, run: _PostRun, verdict: Verdict, model_version: str,
             errors: list[ImageError], n_resolved: int, reposts: RepostFinding | None = None) -> str:
        """Act on the verdict and the repost finding (at most once per kind); finish the post."""
        outcomes = self.actor.act(run.post, verdict, model_version)
        outcomes += self.actor.report_repost(run.post, reposts, self.config.reposts)
        if outcomes:
            run.facts["actions"] = {o.kind: o.status for o in outcomes}
            if any(o.status == "abandoned" for o in outcomes):
                return run.abandon()
            deferred = [o for o in outcomes if o.status == "deferred"]  # 429 on an action
            if deferred and run.may_retry:
                return run.retry_later(f"action_deferred: {deferred[0].detail}")
        reason = None
        if errors:
            reason = f"{len(errors)} of {n_resolved} images failed: {failure_reason(errors[0])}"
        deferred = [o for o in outcomes if o.status == "deferred"]
        if deferred:
            reason = f"action_gave_up: {deferred[0].detail}"[:300]
        return run.finish("done", reason)


@dataclass
class _Fetch:
    """One post's downloads: the fetched images and the errors, in order, and a row to write
    for each image tried: ``(position, ref, image, error)`` with one of the last two set."""

    images: list[FetchedImage] = field(default_factory=list)
    errors: list[ImageError] = field(default_factory=list)
    rows: list[tuple[int, ImageRef, FetchedImage | None, ImageError | None]] = field(
        default_factory=list)


class _PostRun:
    """One attempt at one submission: its attempt number, the facts of its canonical
    ``submission`` log line, and the ways it can end (each recorded, then logged once)."""

    def __init__(self, pipeline: Pipeline, post: Post, stated: StatedMedium) -> None:
        self.started = time.monotonic()
        self.store, self.daemon_config, self.post = pipeline.store, pipeline.config.daemon, post
        self.attempt = self.store.begin(post, stated)
        self.may_retry = self.attempt < self.daemon_config.max_attempts
        self.facts: dict[str, Any] = {
            "fullname": post.fullname, "subreddit": post.subreddit, "attempt": self.attempt,
            "stated": stated.medium, "stated_source": stated.source,
        }

    def _log(self, status: str, **more: Any) -> str:
        self.facts.update(more, status=status)
        self.facts["duration_ms"] = round((time.monotonic() - self.started) * 1000, 1)
        log.info("submission", **self.facts)
        return status

    def finish(self, status: str, reason: str | None) -> str:
        """Record a final status (done, skipped, failed) with its reason."""
        self.store.finish(self.post.fullname, status, reason=reason)
        return self._log(status, reason=reason)

    def abandon(self) -> str:
        """Stopped before the post was finished: processed again on the next start."""
        self.store.finish(self.post.fullname, "abandoned", reason="shutdown")
        return self._log("abandoned", reason="shutdown")

    def defer(self, exc: EnvironmentFailure) -> str:
        """The machine failed (disk full): retry after ``[daemon] retry_base_s`` without
        counting this attempt, so a long outage loses no post."""
        now = time.time()
        when = now + self.daemon_config.retry_base_s
        reason = f"{exc.reason}: {exc}"[:300]
        self.store.finish(self.post.fullname, "retry", reason=reason, next_attempt_at=when,
                          refund_attempt=True)
        log.warning("environment_failure", fullname=self.post.fullname, error=str(exc)[:300])
        return self._log("retry", reason=reason, retry_in_s=round(when - now, 1))

    def retry_later(self, reason: str) -> str:
        """A retryable failure: try again after ``[daemon]``'s backoff."""
        now = time.time()
        when = self.daemon_config.next_attempt_at(self.attempt, now)
        self.store.finish(self.post.fullname, "retry", reason=reason, next_attempt_at=when)
        return self._log("retry", reason=reason, retry_in_s=round(when - now, 1))


@dataclass
class RunStats:
    """Counts from one ``Daemon.run``: submissions processed, by final status, and errors."""

    processed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    errors: int = 0


class Daemon:
    """The long-running service around a ``Pipeline``.

    ``reddit`` is a ``praw.Reddit`` (from :func:`modbot.stream.make_reddit`, whose request
    budget the daemon connects to its stop event and watchdog); ``classifier`` classifies every
    post (``modbot run`` passes the learning loop's, whose model a promotion swaps live);
    ``jobs`` (the learning loop, the modmail digest, the mod log reader) are started and stopped
    with the stream; ``notifier`` talks to systemd (a no-op outside it).
    """

    def __init__(self, config: Config, *, reddit: Any, classifier: Classifier,
                 jobs: tuple[BackgroundJobs, ...] = (), store: Store | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config = config
        if config.reposts.enabled:
            single_blas_thread()  # fingerprints on several threads: see its docstring
        self.notifier = notifier or Notifier(env={})
        self._restart_stream = False
        self.reddit = reddit
        self.budget = budget_of(reddit)
        self.store = store or Store(config.storage.database, exclusive=True)
        self.classifier = classifier
        self.jobs = tuple(jobs)
        self.actor = Actor(reddit, self.store, config.actions)
        self.pipeline = Pipeline(
            config=config,
            store=self.store,
            fetcher=ImageFetcher.from_config(config),
            classifier=self.classifier,
            actor=self.actor,
            vocabulary=Vocabulary.default().with_terms(config.medium.vocabulary),
            heartbeat=self.notifier.watchdog,
            reposts=RepostStage(self.store.db),
        )
        self.prefetcher = Prefetcher(
            self.pipeline.fetcher, max_images=lambda: self.config.images.max_images_per_post,
            prepare=self.prepare_ahead)
        self.pipeline.prefetch = self.prefetcher
        self.stats = RunStats()

    #: Compute the perceptual fingerprint on the decode threads too (``FetchedImage.fingerprint``).
    fingerprint_ahead = FINGERPRINT_AHEAD

    def prepare_ahead(self, image: FetchedImage) -> FetchedImage:
        """Work on a downloaded image that the prefetch threads do (:mod:`modbot.prefetch`):
        the model input of the model serving now (its size and crop mode), kept with
        ``image.rgb`` (:func:`modbot.classify.prepare_input`; a model of another input size or
        crop mode later simply resizes again), and, when reposts are on and :attr:`fingerprint_ahead`, the perceptual
        fingerprint (``FetchedImage.fingerprint``; None when the image cannot be
        fingerprinted: the repost stage then logs why). Returns the image to classify.
        Thread-safe: reads only the classifier's input size and the configuration."""
        size = model_input_size(self.classifier)
        if size is not None:
            prepare_input(image.rgb, size, model_crops(self.classifier))
        if self.fingerprint_ahead and self.config.reposts.enabled:
            try:
                image = dataclasses.replace(image, fingerprint=fingerprint(image.rgb))
            except FingerprintError:
                pass
        return image

    def _warm_reposts(self) -> None:
        """Build the repost index (and import faiss) before READY, so that the first post
        after a start does not wait for it (a million stored fingerprints: ~9 s, see
        ``bench/repost.py``); logs ``repost_index_ready`` with the count and seconds."""
        if self.pipeline.reposts is None or not self.config.reposts.enabled:
            return
        t0 = time.monotonic()
        n = len(self.pipeline.reposts.index)
        log.info("repost_index_ready", fingerprints=n, seconds=round(time.monotonic() - t0, 2))

    def process_safely(self, post: Post) -> str | None:
        """Process one post; an unexpected error is logged with its traceback and recorded as a
        retry (bounded by ``[daemon] max_attempts``) instead of ending the daemon. Returns the
        status."""
        try:
            status = self.pipeline.process(post)
        except ModbotError as exc:
            status = self._record_crash(post, exc)
        except Exception as exc:  # a bug must not stop moderation of every later post
            status = self._record_crash(post, exc)
        self.stats.processed += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        return status

    def _record_crash(self, post: Post, exc: Exception) -> str:
        self.stats.errors += 1
        attempts = self.store.attempts_of(post.fullname)
        reason = f"internal_error: {type(exc).__name__}"
        log.error("submission_error", fullname=post.fullname, error_type=type(exc).__name__,
                  error=str(exc)[:300], traceback=traceback.format_exc(limit=8))
        if attempts is None:
            return "failed"
        daemon = self.config.daemon
        if attempts < daemon.max_attempts:
            when = daemon.next_attempt_at(attempts, time.time())
            self.store.finish(post.fullname, "retry", reason=reason, next_attempt_at=when)
            return "retry"
        self.store.finish(post.fullname, "failed", reason=reason)
        return "failed"

    def recover(self, stop: threading.Event | None = None) -> None:
        """Settle what an earlier run left: dangling action intents, then unfinished posts
        (``processing``: a crash; ``abandoned``: a shutdown). Stops early when ``stop`` is set."""
        self.actor.reconcile()
        for fullname in self.store.unfinished():
            if stop is not None and stop.is_set():
                return
            self.notifier.watchdog()
            attempts = self.store.attempts_of(fullname) or 0
            if attempts >= self.config.daemon.max_attempts:
                # begun max_attempts times and never finished (a kill, a hang, a crash of the
                # process itself): set it aside instead of resuming it first on every start
                self.store.finish(fullname, "failed", reason="unfinished_after_max_attempts")
                log.error("submission_set_aside", fullname=fullname, attempts=attempts)
                continue
            data = self.store.stored_data(fullname)
            if data:
                log.info("resume_unfinished", fullname=fullname)
                self.process_safely(post_from_data(data))

    def retry_due(self, stop: threading.Event | None = None) -> None:
        """Process submissions whose retry time has come (until ``stop`` is set)."""
        for fullname in self.store.due_retries():
            if stop is not None and stop.is_set():
                return
            self.notifier.watchdog()
            data = self.store.stored_data(fullname)
            if data:
                self.process_safely(post_from_data(data))

    def run(self, *, stop: threading.Event | None = None,
            until: Callable[[], bool] | None = None,
            on_idle: Callable[[], None] | None = None) -> RunStats:
        """Stream and process until ``stop`` is set or ``until()`` is true (checked when idle).

        Order: connect ``stop`` to the pipeline, the image fetcher (downloads give up between
        chunks) and the request budget (waits end; see :class:`modbot.errors.ShuttingDown`);
        tell systemd READY; settle the previous run (:meth:`recover`); stream. The watchdog is
        pinged on every stream item, every idle poll, between images and during budget waits.
        ``on_idle`` is called after every poll that brought nothing new (reload requests).
        Fatal stream errors (:func:`modbot.stream.is_fatal`) propagate after STOPPING is sent.
        """
        stop = stop or threading.Event()
        self.pipeline.stop = stop
        self.pipeline.fetcher.cancel = stop
        self.pipeline.fetcher.heartbeat = self.notifier.watchdog
        if self.budget is not None:
            self.budget.stop = stop
            self.budget.heartbeat = self.notifier.watchdog
        self._warm_reposts()
        self.notifier.ready(f"streaming r/{self.config.reddit.subreddits}")
        try:
            self.recover(stop)
            for job in self.jobs:
                job.start()
            log.info("stream_start", subreddits=self.config.reddit.subreddits,
                     model_version=self.classifier.version,
                     actions={"report": self.config.actions.report,
                              "comment": self.config.actions.comment})
            finished = False
            while not finished and not stop.is_set():
                self._restart_stream = False
                backoff = ((self.budget.backoff_base_s, self.budget.backoff_max_s)
                           if self.budget is not None else (1.0, 60.0))
                stream = stream_posts(self.reddit, self.config.reddit.subreddits,
                                      poll_interval=self.config.reddit.poll_interval,
                                      stop=stop, backoff_base_s=backoff[0],
                                      backoff_max_s=backoff[1], is_recorded=self.store.is_recorded,
                                      on_backlog_end=self._backlog_end)
                for post in self.prefetcher.ahead(
                        stream, wanted=lambda p: not self.store.is_settled(p.fullname)):
                    self.notifier.watchdog()
                    if post is None:
                        self.retry_due(stop)
                        if on_idle is not None:
                            on_idle()
                        if until is not None and until():
                            finished = True
                            break
                    elif not self.store.is_settled(post.fullname):
                        self.process_safely(post)
                    # else: already recorded (restart overlap or a duplicate listing item)
                    if stop.is_set() or self._restart_stream:
                        break
        finally:
            for job in self.jobs:
                job.shutdown()
            self.notifier.stopping()
            log.info("stream_stop", processed=self.stats.processed, by_status=self.stats.by_status,
                     api_requests=self.budget.sent if self.budget is not None else None)
        return self.stats

    def _backlog_end(self, end: BacklogEnd) -> None:
        """The cold start met no recorded submission: if some of these subreddits were
        recorded before, posts made in between were never listed — log and record the gap."""
        subreddits = self.config.reddit.subreddits
        newest = self.store.newest_recorded_utc(subreddits)
        if newest is None:
            return  # a first start: nothing was expected before the oldest post listed
        log.warning("backlog_gap", subreddits=subreddits, oldest=end.oldest,
                    oldest_created_utc=end.oldest_created_utc, newest_recorded_utc=newest,
                    pages=end.pages, posts=end.posts, reason=end.reason)
        self.store.record_backlog_gap(subreddits, oldest_fullname=end.oldest,
                                      oldest_created_utc=end.oldest_created_utc,
                                      newest_recorded_utc=newest, pages=end.pages,
                                      posts=end.posts, reason=end.reason)

    def reload(self, config: Config) -> None:
        """Apply a new configuration (SIGHUP): thresholds, actions, templates, vocabulary, retry
        and limits take effect for the next submission; a change of subreddits restarts the
        stream. Storage paths and the model need a restart (a warning says so)."""
        if config.storage != self.config.storage:
            log.warning("reload_ignored", keys="storage", hint="restart to change storage paths")
            config = config.replace(storage={f: getattr(self.config.storage, f)
                                             for f in ("database", "image_cache", "model_dir")})
        if config.learning != self.config.learning:
            log.warning("reload_ignored", keys="learning", hint="restart to change [learning]")
            config = dataclasses.replace(config, learning=self.config.learning)
        if config.digest != self.config.digest:
            log.warning("reload_ignored", keys="digest", hint="restart to change [digest]")
            config = dataclasses.replace(config, digest=self.config.digest)
        restart = config.reddit.subreddits != self.config.reddit.subreddits
        self.config = config
        self.actor.config = config.actions
        self.pipeline.config = config
        self.pipeline.vocabulary = Vocabulary.default().with_terms(config.medium.vocabulary)
        if self.budget is not None and 1 <= config.reddit.requests_per_minute <= 100:
            self.budget.per_minute = config.reddit.requests_per_minute
        self._restart_stream = restart
        log.info("config_reloaded", source=config.source, restart_stream=restart)

    def close(self) -> None:
        """Close the image fetcher's HTTP session and the database (checkpointing the WAL)."""
        for job in self.jobs:
            job.shutdown()
        self.prefetcher.close()
        self.pipeline.fetcher.close()
        self.store.close()
