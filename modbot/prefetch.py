"""Images stage, ahead of time: download and decode the images of the next posts while the
current one is classified, judged, recorded and acted on.

:meth:`Prefetcher.ahead` wraps the stream: it reads a few posts ahead of the one being processed
(never past an idle point, ``None``, so a quiet stream is not waited on) and starts their
downloads on a small thread pool (:data:`WORKERS`). The pipeline then asks :meth:`Prefetcher.fetch`
for each image in the order it records them, and gets the finished download — or the error it
raised, re-raised unchanged — or, for an image nobody started (a retry, a resumed post), the
download done there and then. Nothing else changes: every row is still written by the
daemon's thread, in the same order, and actions still follow their verdict.

A ``prepare`` function, when given, runs on a decode thread right after each successful
decode: the daemon's crops and resizes the image to the model's input
(:func:`modbot.classify.prepare_input`) and computes its perceptual fingerprint there, so the
main thread is left with inference, judging and SQLite. It must not raise for a good image; if
it does anyway, the image is used unprepared (the main thread then does that work as before).
An image downloaded on the spot is never prepared: the old path is the fallback.

Measured (``bench/pipeline.py``): with 50 ms per download, one-at-a-time downloads kept the
backlog catch-up near the download rate, and four threads near 60 posts/s; :data:`WORKERS`
threads download, and :data:`CPU_SLOTS` other threads decode and prepare. Memory is
bounded by :data:`MAX_IMAGES_AHEAD` images in flight or waiting (each decoded to at most about
``2 · [images] max_side`` pixels a side, plus its 224 px model input), of which at most
:data:`CPU_SLOTS` are being decoded.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import structlog

from modbot.domain import FetchedImage, ImageRef, Post
from modbot.images import ImageFetcher, resolve_images

#: Download threads. Mostly waiting on the network: with 50 ms per download, 4 of them capped
#: the backlog catch-up near 60 posts/s on the bench (``bench/pipeline.py``), whatever the CPU.
WORKERS = 8
#: Decode threads: they decode and prepare what the download threads fetched (CPU work: one
#: per usable core), which also bounds the transient memory of decoding.
CPU_SLOTS = max(1, len(os.sched_getaffinity(0)))
#: Posts read ahead of the one being processed.
DEPTH = 12
#: Images downloaded (or waiting to be used) ahead at most: the bound on decoded images in memory.
MAX_IMAGES_AHEAD = 8

_END = object()
log = structlog.get_logger("modbot.prefetch")


class Prefetcher:
    """Downloads the images of upcoming posts on ``workers`` threads with ``fetcher`` (whose
    ``cancel`` event cuts every download short at shutdown). ``max_images``: the post's image
    limit (``[images] max_images_per_post``; read at each post, so a reload applies).
    ``cpu_slots``: decode threads (at most ``workers``). ``prepare``: called on a decode thread
    with each decoded image, returns the image to hand out (see the module docstring); None =
    hand out what the fetcher returned.

    Use from one thread (the daemon's); only the downloads and decoding run elsewhere.
    :meth:`close` stops the pools (downloads in progress end with the fetcher's cancel event or
    their timeouts).
    """

    def __init__(self, fetcher: ImageFetcher, *, max_images: Callable[[], int],
                 workers: int = WORKERS, depth: int = DEPTH,
                 max_images_ahead: int = MAX_IMAGES_AHEAD, cpu_slots: int = CPU_SLOTS,
                 prepare: Callable[[FetchedImage], FetchedImage] | None = None) -> None:
        self.fetcher = fetcher
        self.max_images = max_images
        self.prepare = prepare
        self.workers, self.depth, self.max_images_ahead = workers, depth, max_images_ahead
        self.cpu_slots = max(1, min(cpu_slots, workers))
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._cpu_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._futures: dict[ImageRef, concurrent.futures.Future[FetchedImage]] = {}
        self._refs: dict[str, list[ImageRef]] = {}
        #: Images taken from a finished prefetch / downloaded on the spot (counters).
        self.hits = 0
        self.misses = 0

    @property
    def pending(self) -> int:
        """Images started ahead and not used or discarded yet."""
        return len(self._futures)

    def submit(self, post: Post) -> None:
        """Start downloading ``post``'s images (as the pipeline will resolve them), unless it
        has none to classify (removed, video, self post) or is already submitted."""
        if post.fullname in self._refs or post.data.get("removed_by_category"):
            return
        resolution = resolve_images(post.data, max_images=self.max_images())
        if resolution.skip_reason:
            return
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.workers, thread_name_prefix="modbot-prefetch")
            self._cpu_pool = concurrent.futures.ThreadPoolExecutor(
                self.cpu_slots, thread_name_prefix="modbot-decode")
        started = []
        for ref in resolution.images:
            if ref not in self._futures:
                self._futures[ref] = self._pool.submit(self._fetch_ahead, ref, self._cpu_pool)
                started.append(ref)
        self._refs[post.fullname] = started

    def _fetch_ahead(self, ref: ImageRef, decoders: concurrent.futures.Executor) -> FetchedImage:
        """On a download thread: download ``ref``, then have one of the ``decoders`` threads
        decode and ``prepare`` it (a few long-lived threads do all decoding: fewer of them
        hold the allocator's freed image memory). Errors propagate as
        :meth:`ImageFetcher.fetch` raises them (after :meth:`close`, an error nobody reads)."""
        data = self.fetcher.download(ref)
        return decoders.submit(self._decode, ref, data).result()

    def _decode(self, ref: ImageRef, data: bytes) -> FetchedImage:
        image = self.fetcher.decode(ref, data)
        del data
        if self.prepare is None:
            return image
        try:
            return self.prepare(image)
        except Exception:  # noqa: BLE001 - a bug in preparing must not lose a good image
            log.error("prefetch_prepare_failed", url=ref.url,
                      traceback=traceback.format_exc(limit=8))
            return image

    def fetch(self, ref: ImageRef) -> FetchedImage:
        """``ref``'s image: the prefetched result (its exception re-raised as
        :meth:`ImageFetcher.fetch` would raise it), else downloaded now. Same errors as
        :meth:`modbot.images.ImageFetcher.fetch`."""
        future = self._futures.pop(ref, None)
        if future is None or future.cancelled():
            self.misses += 1
            return self.fetcher.fetch(ref)
        self.hits += 1
        return future.result()

    def discard(self, post: Post) -> None:
        """Forget ``post``'s downloads not used (it was skipped, abandoned or failed early)."""
        for ref in self._refs.pop(post.fullname, ()):
            future = self._futures.pop(ref, None)
            if future is not None:
                future.cancel()

    def ahead(self, items: Iterable[Post | None], *,
              wanted: Callable[[Post], bool]) -> Iterator[Post | None]:
        """Yield ``items`` unchanged and in order, reading up to ``depth`` posts ahead (while
        fewer than ``max_images_ahead`` images are pending) and prefetching the ``wanted`` ones.
        Reading ahead stops at ``None`` (the stream's idle point: it would wait there), so no
        post waits for a poll. Closing this generator closes ``items``."""
        source = iter(items)
        buffer: collections.deque[Any] = collections.deque()
        try:
            while True:
                while not buffer or (len(buffer) < self.depth and buffer[-1] is not None
                                     and self.pending < self.max_images_ahead):
                    item = next(source, _END)
                    if item is _END:
                        break
                    buffer.append(item)
                    if item is not None and wanted(item):
                        self.submit(item)
                if not buffer:
                    return
                item = buffer.popleft()
                yield item
                if item is not None:
                    self.discard(item)
        finally:
            for item in buffer:
                if item is not None:
                    self.discard(item)
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        """Cancel what has not started and stop the pool without waiting (idempotent)."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._refs.clear()
        for pool in (self._pool, self._cpu_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._cpu_pool = None
