"""The small typed objects that travel between pipeline stages.

stream → ``Post`` → images → ``ImageRef``/``FetchedImage`` → classify → ``Prediction``
→ judge (with ``StatedMedium``) → ``Verdict`` → record → act → ``ActionOutcome``.

Canonical media (``MEDIA``) are the vocabulary shared by the medium normaliser, the model's
``labels.json`` and the database.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Canonical media, in a fixed order. ``unknown`` means nothing usable was stated.
MEDIA: tuple[str, ...] = (
    "digital",
    "painting",
    "drawing",
    "ink",
    "sculpture",
    "photography",
    "mixed_media",
    "other",
)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Post:
    """One Reddit submission as the pipeline sees it.

    ``data`` is the submission's raw JSON object (the ``data`` of a ``t3`` thing), as returned
    by Reddit; ``fullname`` is ``t3_<id>``; ``created_utc`` is Unix seconds.
    """

    id: str
    fullname: str
    subreddit: str
    title: str
    author: str | None
    permalink: str
    url: str
    created_utc: float
    link_flair_text: str | None
    data: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ImageRef:
    """An image to download: its URL and where in the post it came from.

    ``source`` is one of ``direct``, ``gallery``, ``preview``, ``crosspost`` (a parent's image).
    ``media_id`` is the gallery item id, when there is one.
    """

    url: str
    source: str
    media_id: str | None = None


@dataclass(frozen=True)
class Resolution:
    """What a submission offers to classify: its images, or why there are none.

    Exactly one of ``images`` (non-empty) and ``skip_reason`` is set; ``skipped_items`` counts
    gallery items left out (e.g. still processing, or not images).
    """

    images: tuple[ImageRef, ...] = ()
    skip_reason: str | None = None
    skipped_items: int = 0


@dataclass(frozen=True)
class FetchedImage:
    """A downloaded, validated image.

    ``sha256`` is the hex digest of the original bytes and the cache key; ``path`` the cached
    file; ``size_bytes`` the byte length; ``width``/``height`` in pixels after EXIF orientation;
    ``format`` Pillow's name (``JPEG``, ``PNG``, ``GIF``, ``WEBP`` …). ``rgb`` is the decoded
    image as a Pillow ``Image`` in mode ``RGB`` (first frame of an animation).

    ``fingerprint``: the perceptual fingerprint of ``rgb``
    (:func:`modbot.fingerprint.fingerprint`, a :class:`modbot.fingerprint.Fingerprint`) when it
    was computed ahead on a download thread (:mod:`modbot.prefetch`), else None: the repost
    stage computes it from ``rgb`` then.
    """

    ref: ImageRef
    sha256: str
    path: str
    size_bytes: int
    width: int
    height: int
    format: str
    rgb: Any = field(repr=False, compare=False)
    fingerprint: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Prediction:
    """The classifier's output for one image.

    ``probabilities`` maps each label of the model to a probability (float in [0, 1], summing
    to 1); ``model_version`` names the model that produced it; ``flag_thresholds`` are that
    model's own judge thresholds (``labels.json`` ``judge``: flag a post when the probability of
    its stated medium is below them, fitted on validation data to a false-flag budget), empty
    when the model has none.
    """

    probabilities: Mapping[str, float]
    model_version: str
    flag_thresholds: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def top(self) -> tuple[str, float]:
        """The most probable medium and its probability."""
        label = max(self.probabilities, key=self.probabilities.__getitem__)
        return label, float(self.probabilities[label])


@dataclass(frozen=True)
class StatedMedium:
    """The medium the poster stated, normalised.

    ``medium`` is a canonical medium or ``unknown``; ``source`` is ``flair``, ``title`` or
    ``none``; ``raw`` is the text it was read from; ``matched`` the vocabulary term that decided.
    """

    medium: str
    source: str
    raw: str | None = None
    matched: str | None = None


class VerdictKind(str, enum.Enum):
    """The judge's decision on one submission."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNCERTAIN = "uncertain"
    NOT_JUDGED = "not_judged"


@dataclass(frozen=True)
class Verdict:
    """The judge's decision: ``kind``, the predicted medium and its confidence (0–1), why."""

    kind: VerdictKind
    stated: str
    predicted: str | None
    confidence: float | None
    reason: str
