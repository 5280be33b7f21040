"""The serving wrapper of the learning loop: one model per post, and the live swap.

:class:`SwappableClassifier` is what the daemon classifies with when the learning loop runs:
it forwards to the current model, which a promotion (or a rollback) replaces atomically while
the daemon keeps streaming. No TensorFlow here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import structlog
from PIL import Image

from modbot.domain import Prediction
from modbot.errors import ModelError

log = structlog.get_logger("modbot.learning.serving")


class SwappableClassifier:
    """A classifier that forwards to the current model, which :meth:`swap` replaces atomically.

    Implements the daemon's ``Classifier`` protocol (``predict``, ``labels``, ``version``).
    :meth:`predict` takes one reference to the current model, under a lock, for the whole call:
    the images of one post are all classified by the same, fully loaded model even if a swap
    happens meanwhile (the old model finishes the call; its predictions carry its version, and
    the daemon records ``predictions[0].model_version``). ``version``/``labels`` are those of
    the model that served *this thread's* last :meth:`predict`, else of the current model.
    Thread-safe.
    """

    def __init__(self, classifier: Any) -> None:
        self._lock = threading.Lock()
        self._current = classifier
        self._local = threading.local()
        #: Number of swaps done.
        self.swaps = 0

    @property
    def current(self) -> Any:
        """The model new :meth:`predict` calls will use."""
        with self._lock:
            return self._current

    def _served(self) -> Any:
        used = getattr(self._local, "model", None)
        return used if used is not None else self.current

    @property
    def version(self) -> str:
        """Version of the model of this thread's last prediction, else of the current model."""
        return self._served().version

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the model of this thread's last prediction, else of the current model."""
        return tuple(self._served().labels)

    def predict(self, images: Sequence[Any]) -> list[Prediction]:
        """One :class:`~modbot.domain.Prediction` per image (RGB Pillow images), all by the
        same model; raises what that model's ``predict`` raises."""
        with self._lock:
            model = self._current
        predictions = model.predict(images)
        self._local.model = model
        return predictions

    def swap(self, new: Any, *, warm_up: bool = True) -> Any:
        """Serve ``new`` from the next :meth:`predict` on; return the previous model.

        With ``warm_up`` (default), ``new`` first classifies a grey 64×64 image and must return
        one prediction whose probabilities cover its labels and sum to 1 (±1e-3), with its own
        version — else ``ModelError`` is raised and nothing changes. ``new`` must already be
        fully loaded (e.g. ``KerasClassifier.load``, which also traces its serving function).
        """
        if warm_up:
            probe = new.predict([Image.new("RGB", (64, 64), (127, 127, 127))])
            if (len(probe) != 1 or set(probe[0].probabilities) != set(new.labels)
                    or abs(sum(probe[0].probabilities.values()) - 1.0) > 1e-3
                    or probe[0].model_version != new.version):
                raise ModelError(f"model {getattr(new, 'version', '?')} failed its warm-up prediction")
        with self._lock:
            old, self._current = self._current, new
            self.swaps += 1
        log.info("model_swapped", old=getattr(old, "version", None), new=new.version)
        return old
