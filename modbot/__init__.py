"""modbot: medium-mismatch moderation for image subreddits.

A submission's way through the package reads like the data flow — ``stream`` → ``images``
(``decode``) → ``classify`` → ``medium`` → ``judge`` → ``record`` → ``act``, wired by
``daemon`` — with the wings beside it: ``ml`` (training; the only place that imports
TensorFlow), ``learning`` (labels, model registry, retraining), ``queries`` (read-only SQL for
the moderators' tools), ``cli`` (click commands and rendering) and ``sandbox`` (a
Reddit-compatible server on loopback). ``migrations`` and ``model`` are package data.
"""

__version__ = "0.1.0"
