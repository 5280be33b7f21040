"""The learning wing: labels, retraining runs, the model registry and the live model swap.

What the daemon needs of it is one object, built by :func:`learning_loop` (``modbot run``
wires it; the daemon imports nothing from here) and seen through :class:`LearningLoop`:

- ``classifier``: what the daemon classifies with — a
  :class:`~modbot.learning.serving.SwappableClassifier` serving the champion, into which
  promoted (or rolled back) models are swapped live, one model per post;
- ``start()`` / ``shutdown(wait=True)``: the scheduled jobs (retraining in a child process,
  the champion watcher; :class:`~modbot.learning.scheduler.RetrainScheduler`).

Modules: :mod:`~modbot.learning.labels` (labels, the fixed evaluation split, cached images),
:mod:`~modbot.learning.registry` (model versions, the champion pointer),
:mod:`~modbot.learning.retrain` (one run: gates, evaluation, bookkeeping),
:mod:`~modbot.learning.child` (the run's child process), :mod:`~modbot.learning.scheduler`,
:mod:`~modbot.learning.serving`, :mod:`~modbot.learning.collect` (``modbot collect``),
:mod:`~modbot.learning.modlog` (moderators' actions on Reddit as labels: ``modbot modlog``, and
a background job ``modbot run`` passes to the daemon's ``jobs=``).
Importing the package imports neither TensorFlow nor APScheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from modbot.classify import Classifier, load_classifier
from modbot.config import Config
from modbot.configcheck import validate
from modbot.learning.registry import serving_model_dir
from modbot.learning.scheduler import RetrainScheduler
from modbot.learning.serving import SwappableClassifier

__all__ = ["LearningLoop", "learning_loop", "serving_model_dir"]


class LearningLoop(Protocol):
    """The learning loop as the daemon sees it."""

    @property
    def classifier(self) -> Classifier:
        """The classifier to serve (its model may be swapped live; one model per call)."""
        ...

    def start(self) -> None:
        """Start the background jobs (call when the daemon starts streaming; again after
        :meth:`shutdown` to restart them). Raises ``ConfigError`` for bad ``[learning]``."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Stop the background jobs (``wait``: until running jobs end); a retraining child
        still running is terminated and its run recorded as failed. Idempotent."""
        ...


@dataclass
class _ScheduledLearning:
    """:class:`LearningLoop` of :func:`learning_loop`: a served classifier and its scheduler."""

    config: Config
    classifier: SwappableClassifier
    scheduler: RetrainScheduler = field(default_factory=RetrainScheduler)

    def start(self) -> None:
        self.scheduler.start(self.classifier, self.config)

    def shutdown(self, wait: bool = True) -> None:
        self.scheduler.shutdown(wait=wait)


def learning_loop(config: Config, classifier: Classifier | None = None) -> LearningLoop:
    """The learning loop for ``config``, not started yet.

    ``classifier``: the model to serve first; default the champion of ``[learning]
    models_dir``, else ``[storage] model_dir``, else the shipped model (:func:`serving_model_dir`,
    loaded by :func:`modbot.classify.load_classifier`: LiteRT when a checked export is present,
    else Keras). It is wrapped in a :class:`~modbot.learning.serving.SwappableClassifier`
    unless it is one. Raises ``ConfigError`` for bad ``[learning]`` values (checked first,
    before any model is loaded) and ``ModelError`` for a broken model directory.
    """
    validate(config)
    served = classifier if classifier is not None else load_classifier(serving_model_dir(config))
    swappable = served if isinstance(served, SwappableClassifier) else SwappableClassifier(served)
    return _ScheduledLearning(config, swappable)
