"""The daemon: stream → images → classify → judge → record → act, one submission at a time.

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
from modbot.config import Config
from modbot.domain import Post, Prediction
from modbot.errors import ImageError, ModbotError
from modbot.images import ImageFetcher, resolve_images
from modbot.judge import judge
from modbot.medium import Vocabulary, stated_medium
from modbot.notify import Notifier
from modbot.learning.registry import resolve_model_dir
from modbot.learning.retrain import RetrainScheduler, SwappableClassifier, check_learning
from modbot.record import Store
from modbot.stream import budget_of, post_from_data, stream_posts

log = structlog.get_logger("modbot.daemon")

#: Default of ``[daemon] max_attempts``: a submission whose images failed retryably (or that
#: hit an internal error) is tried at most this many times in all.
MAX_ATTEMPTS = 4
#: Default of ``[daemon] retry_base_s``: first retry delay in seconds; doubles with each
#: attempt (60 s, 120 s, 240 s).
RETRY_BASE_S = 60.0


def failure_reason(exc: ImageError) -> str:
    """The submission-level reason for an image error: its ``reason`` code, plus the HTTP
    status for ``http_status`` (``"http_status:404"``), so moderators see which failure it was."""
    status = getattr(exc, "status", None)
    return f"{exc.reason}:{status}" if exc.reason == "http_status" and status else exc.reason


class Classifier(Protocol):
    """What the daemon needs of a classifier (see ``modbot.classify.KerasClassifier``)."""

    labels: tuple[str, ...]
    version: str

    def predict(self, images: list[Any]) -> list[Prediction]:
        """One ``Prediction`` per RGB Pillow image, same order."""
        ...


def load_classifier(config: Config) -> Classifier:
    """Load the model to serve: the learning loop's champion (``[learning] models_dir``) when
    there is one, else ``[storage] model_dir`` (empty = the shipped model).

    Served by LiteRT when the model's checked ``model.tflite`` export is present (no TensorFlow
    in the daemon's process: ~100 MB resident instead of ~600 MB), else by Keras.
    Raises ``ModelError`` for a broken model directory.
    """
    from modbot.classify import load_classifier as load_model_dir

    return load_model_dir(resolve_model_dir(config))


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
        started = time.monotonic()
        stated = stated_medium(post.title, post.link_flair_text, vocabulary=self.vocabulary)
        attempt = self.store.begin(post, stated)
        facts: dict[str, Any] = {
            "fullname": post.fullname, "subreddit": post.subreddit, "attempt": attempt,
            "stated": stated.medium, "stated_source": stated.source,
        }

        def done(status: str, **more: Any) -> str:
            facts.update(more)
            facts["status"] = status
            facts["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            log.info("submission", **facts)
            return status

        def abandon() -> str:
            self.store.finish(post.fullname, "abandoned", reason="shutdown")
            return done("abandoned", reason="shutdown")

        def retry_later(reason: str) -> str:
            when = time.time() + self.config.daemon.retry_base_s * 2 ** (attempt - 1)
            self.store.finish(post.fullname, "retry", reason=reason, next_attempt_at=when)
            return done("retry", reason=reason, retry_in_s=round(when - time.time(), 1))

        may_retry = attempt < self.config.daemon.max_attempts

        # images: resolve
        resolution = resolve_images(post.data, max_images=self.config.images.max_images_per_post)
        if resolution.skip_reason:
            self.store.finish(post.fullname, "skipped", reason=resolution.skip_reason)
            return done("skipped", reason=resolution.skip_reason)

        # images: fetch
        fetched, image_ids, errors = [], [], []
        for position, ref in enumerate(resolution.images):
            self.heartbeat()
            if self.stop.is_set():
                return abandon()
            try:
                image = self.fetcher.fetch(ref)
            except ImageError as exc:
                if self.stop.is_set():  # the download was cut short by the shutdown
                    return abandon()
                errors.append(exc)
                self.store.record_image(post.fullname, position, ref, status=exc.reason,
                                        error=str(exc)[:500])
                continue
            fetched.append(image)
            image_ids.append(self.store.record_image(post.fullname, position, ref, fetched=image))
        facts["n_images"] = len(fetched)
        if not fetched:
            reason = failure_reason(errors[0]) if errors else "no_image"
            if any(e.retryable for e in errors) and may_retry:
                return retry_later(reason)
            self.store.finish(post.fullname, "failed", reason=reason)
            return done("failed", reason=reason)

        self.heartbeat()
        if self.stop.is_set():
            return abandon()

        # classify (one model for all images of the post, even if a promotion swaps it now)
        predictions = self.classifier.predict([f.rgb for f in fetched])
        model_version = predictions[0].model_version
        self.store.record_predictions(post.fullname, image_ids, predictions)

        # judge
        verdict = judge(stated.medium, predictions, threshold_for=self.config.judge.threshold_for)
        self.store.record_verdict(post.fullname, verdict, model_version=model_version,
                                  n_images=len(fetched))
        facts.update(verdict=verdict.kind.value, predicted=verdict.predicted,
                     confidence=None if verdict.confidence is None else round(verdict.confidence, 3),
                     model_version=model_version)

        # act
        self.heartbeat()
        outcomes = self.actor.act(post, verdict, model_version)
        if outcomes:
            facts["actions"] = {o.kind: o.status for o in outcomes}
            if any(o.status == "abandoned" for o in outcomes):
                return abandon()
            deferred = [o for o in outcomes if o.status == "deferred"]  # 429 on an action
            if deferred and may_retry:
                return retry_later(f"action_deferred: {deferred[0].detail}")

        reason = None
        if errors:
            reason = (f"{len(errors)} of {len(resolution.images)} images failed: "
                      f"{failure_reason(errors[0])}")
        if any(o.status == "deferred" for o in outcomes):
            reason = "action_gave_up: rate limited on every attempt"
        self.store.finish(post.fullname, "done", reason=reason)
        return done("done", reason=reason)


@dataclass
class RunStats:
    """Counts from one ``Daemon.run``: submissions processed, by final status, and errors."""

    processed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    errors: int = 0


class Daemon:
    """The long-running service around a ``Pipeline``.

    ``reddit`` is a ``praw.Reddit`` (from :func:`modbot.stream.make_reddit`, whose request
    budget the daemon connects to its stop event and watchdog); ``classifier`` defaults to the
    configured model; ``notifier`` talks to systemd (a no-op outside it).
    """

    def __init__(self, config: Config, *, reddit: Any, classifier: Classifier | None = None,
                 store: Store | None = None, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier(env={})
        self._restart_stream = False
        self.reddit = reddit
        self.budget = budget_of(reddit)
        self.store = store or Store(config.storage.database)
        check_learning(config.learning)  # ConfigError at start-up, not at 04:30
        served = classifier or load_classifier(config)
        # Promotion swaps the model inside this wrapper: one post never sees two models.
        self.classifier = (served if isinstance(served, SwappableClassifier)
                           else SwappableClassifier(served))
        self.retrainer = RetrainScheduler()
        self.actor = Actor(reddit, self.store, config.actions)
        self.pipeline = Pipeline(
            config=config,
            store=self.store,
            fetcher=ImageFetcher(
                config.storage.image_cache,
                max_bytes=config.images.max_bytes,
                connect_timeout=config.images.connect_timeout,
                read_timeout=config.images.read_timeout,
                allow_hosts=config.images.allow_hosts,
                user_agent=config.reddit.user_agent,
            ),
            classifier=self.classifier,
            actor=self.actor,
            vocabulary=Vocabulary.default().with_terms(config.medium.vocabulary),
            heartbeat=self.notifier.watchdog,
        )
        self.stats = RunStats()

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
        row = self.store.db.execute(
            "SELECT attempts FROM submissions WHERE fullname = ?", [post.fullname]).fetchone()
        daemon = self.config.daemon
        attempts = row[0] if row else daemon.max_attempts
        reason = f"internal_error: {type(exc).__name__}"
        log.error("submission_error", fullname=post.fullname, error_type=type(exc).__name__,
                  error=str(exc)[:300], traceback=traceback.format_exc(limit=8))
        if row is None:
            return "failed"
        if attempts < daemon.max_attempts:
            when = time.time() + daemon.retry_base_s * 2 ** (attempts - 1)
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
        chunks) and the request budget (waits end; see :class:`modbot.ratelimit.ShuttingDown`);
        tell systemd READY; settle the previous run (:meth:`recover`); stream. The watchdog is
        pinged on every stream item, every idle poll, between images and during budget waits.
        ``on_idle`` is called after every poll that brought nothing new (reload requests).
        Fatal stream errors (:func:`modbot.stream.is_fatal`) propagate after STOPPING is sent.
        """
        stop = stop or threading.Event()
        self.pipeline.stop = stop
        self.pipeline.fetcher.cancel = stop
        if self.budget is not None:
            self.budget.stop = stop
            self.budget.heartbeat = self.notifier.watchdog
        self.notifier.ready(f"streaming r/{self.config.reddit.subreddits}")
        try:
            self.recover(stop)
            self.retrainer.start(self, self.config)
            log.info("stream_start", subreddits=self.config.reddit.subreddits,
                     model_version=self.classifier.version,
                     actions={"report": self.config.actions.report,
                              "comment": self.config.actions.comment})
            finished = False
            while not finished and not stop.is_set():
                self._restart_stream = False
                backoff = ((self.budget.backoff_base_s, self.budget.backoff_max_s)
                           if self.budget is not None else (1.0, 60.0))
                for post in stream_posts(self.reddit, self.config.reddit.subreddits,
                                         poll_interval=self.config.reddit.poll_interval,
                                         stop=stop, backoff_base_s=backoff[0],
                                         backoff_max_s=backoff[1]):
                    self.notifier.watchdog()
                    if post is None:
                        self.retry_due(stop)
                        if on_idle is not None:
                            on_idle()
                        if until is not None and until():
                            finished = True
                            break
                    elif self.store.status_of(post.fullname) not in ("done", "skipped", "failed",
                                                                      "retry"):
                        self.process_safely(post)
                    # else: already recorded (restart overlap or a duplicate listing item)
                    if stop.is_set() or self._restart_stream:
                        break
        finally:
            self.retrainer.shutdown()
            self.notifier.stopping()
            log.info("stream_stop", processed=self.stats.processed, by_status=self.stats.by_status,
                     api_requests=self.budget.sent if self.budget is not None else None)
        return self.stats

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
        self.retrainer.shutdown()
        self.pipeline.fetcher.close()
        self.store.close()
