"""Images stage, ahead of time: download and decode the images of the next posts while the
current one is classified, judged, recorded and acted on.

:meth:`Prefetcher.ahead` wraps the stream: it reads a few posts ahead of the one being processed
(never past an idle point, ``None``, so a quiet stream is not waited on) and starts their
downloads on a small thread pool (:data:`WORKERS`). The pipeline then asks :meth:`Prefetcher.fetch`
for each image in the order it records them, and gets the finished download — or the error it
raised, re-raised unchanged — or, for an image nobody started (a retry, a resumed post), the
download done there and then. Nothing else changes: every row is still written by the
daemon's thread, in the same order, and actions still follow their verdict.

Measured (``bench/pipeline.py``): with 50 ms per download, one-at-a-time downloads kept the
backlog catch-up near the download rate; four workers keep the classifier busy. Memory is bounded
by :data:`MAX_IMAGES_AHEAD` decoded images (each at most ``[images] max_side`` pixels a side,
≤ 3 MB at 1024 px) in flight or waiting.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from modbot.domain import FetchedImage, ImageRef, Post
from modbot.images import ImageFetcher, resolve_images

#: Download threads.
WORKERS = 4
#: Posts read ahead of the one being processed.
DEPTH = 8
#: Images downloaded (or waiting to be used) ahead at most: the bound on decoded images in memory.
MAX_IMAGES_AHEAD = 12

_END = object()


class Prefetcher:
    """Downloads the images of upcoming posts on ``workers`` threads with ``fetcher`` (whose
    ``cancel`` event cuts every download short at shutdown). ``max_images``: the post's image
    limit (``[images] max_images_per_post``; read at each post, so a reload applies).

    Use from one thread (the daemon's); only the downloads run elsewhere. :meth:`close` stops
    the pool (downloads in progress end with the fetcher's cancel event or their timeouts).
    """

    def __init__(self, fetcher: ImageFetcher, *, max_images: Callable[[], int],
                 workers: int = WORKERS, depth: int = DEPTH,
                 max_images_ahead: int = MAX_IMAGES_AHEAD) -> None:
        self.fetcher = fetcher
        self.max_images = max_images
        self.workers, self.depth, self.max_images_ahead = workers, depth, max_images_ahead
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
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
        started = []
        for ref in resolution.images:
            if ref not in self._futures:
                self._futures[ref] = self._pool.submit(self.fetcher.fetch, ref)
                started.append(ref)
        self._refs[post.fullname] = started

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
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
