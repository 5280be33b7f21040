"""Labels for the learning loop: which images have a known medium, and from whom.

A *label* is an image (by the sha256 of its original bytes, the key of the content-addressed
cache) whose medium is known. Candidates come from the view ``label_candidates``
(``migrations/`` ``m004_learning``), one row per image and source:

- ``review``: a moderator's decision (``modbot review``; table ``reviews``): its ``true_medium``.
- ``modlog``: a moderator's action on Reddit read from the mod log (``modbot modlog`` and the
  daemon's job, :mod:`modbot.learning.modlog`; rows of ``reviews`` with ``source = 'modlog'``):
  approval, wrong-medium removal, flair change.
- ``stated``: the medium stated by the poster of a submission the daemon processed.
- ``collected``: the medium stated by the poster of a submission ``modbot collect`` gathered.

Precedence, per image (:func:`gather_labels`): the latest moderator decision (``review`` or
``modlog``) recorded up to the cut-off wins over everything; otherwise stated media count only where the policy allows
(:class:`LabelPolicy`: ``[learning] stated_labels``, ``trusted_media``, ``collected_labels``),
and only when every allowed statement about the image names the same medium (the same image
posted twice as "oil" and as "digital" is a conflict and is left out). Every label records its
``source`` (and the ``detail`` that admitted it), which ``modbot retrain`` counts.

The evaluation set is fixed (:func:`assign_splits`): each labelled image is put once, for
ever, on the ``train`` or ``eval`` side (table ``label_splits``), stratified by medium, so a
champion and a challenger are always compared on images neither was trained on.

Images come from the cache (:func:`locate_images`); an evicted one is downloaded again from its
URL when a fetcher is given, and skipped with a reason otherwise or when that fails.
:func:`gather_data` does all of this for one retraining run (its classes, and the training and
evaluation images). No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from modbot.config import Config
from modbot.configcheck import STATED_LABELS
from modbot.domain import MEDIA, ImageRef
from modbot.errors import ConfigError, ImageError
from modbot.imagecache import find_cached
from modbot.images import ImageFetcher
from modbot.record import write_transaction

#: Label sources, in order of precedence (``review`` and ``modlog`` alike: the latest wins).
SOURCES = ("review", "modlog", "stated", "collected")
#: Sources that are moderators' decisions.
MODERATOR_SOURCES = ("review", "modlog")
#: Values of ``[learning] stated_labels``.


@dataclass(frozen=True)
class LabelPolicy:
    """Which non-moderator statements count as labels.

    ``stated``: ``none`` (never), ``agreed`` (only when the model's verdict on the submission
    was ``match``: the model agreed with the poster), ``unflagged`` (unless the verdict was
    ``mismatch``: the judge found the statement improbable and no moderator has decided) or
    ``all``. ``trusted_media``: stated media
    that count whatever the model said. ``collected``: whether the stated media of collected
    history count. Moderator reviews always count. Raises ``ConfigError`` for an unknown
    ``stated`` value or a trusted medium that is not canonical.
    """

    stated: str = "unflagged"
    trusted_media: tuple[str, ...] = ()
    collected: bool = True

    def __post_init__(self) -> None:
        if self.stated not in STATED_LABELS:
            raise ConfigError(f"[learning] stated_labels must be one of {STATED_LABELS}, "
                              f"not {self.stated!r}")
        unknown = [m for m in self.trusted_media if m not in MEDIA]
        if unknown:
            raise ConfigError(f"[learning] trusted_media: unknown media {unknown} (canonical: {list(MEDIA)})")

    @classmethod
    def from_config(cls, learning: Any) -> LabelPolicy:
        """The policy of a ``LearningConfig`` (``[learning]``)."""
        return cls(stated=learning.stated_labels, trusted_media=tuple(learning.trusted_media),
                   collected=bool(learning.collected_labels))

    def admits(self, source: str, medium: str, detail: str | None) -> str | None:
        """Why a non-review candidate counts (``"agreed"``, ``"unflagged"``, ``"trusted"``,
        ``"all"``, ``"collected"``), or None when the policy leaves it out."""
        if source == "collected":
            return "collected" if self.collected else None
        if source != "stated":
            return None
        if medium in self.trusted_media:
            return "trusted"
        if self.stated == "all":
            return "all"
        if self.stated == "agreed" and detail == "match":
            return "agreed"
        if self.stated == "unflagged" and detail != "mismatch":
            return "unflagged"
        return None


@dataclass(frozen=True)
class Label:
    """One labelled image.

    ``sha256``: hex digest of the original bytes (cache key). ``medium``: canonical medium.
    ``source``: ``review`` | ``modlog`` | ``stated`` | ``collected``; ``detail``: the review's decision, or
    why a statement was admitted (``agreed``, ``trusted``, ``all``, ``collected``).
    ``submission``: fullname it came from; ``path``/``url``: where the image was cached and
    downloaded from; ``labelled_at``: Unix seconds when the label was recorded; ``author``: the
    poster (evaluation images and cross-validation folds are grouped by it: see
    :func:`assign_splits`).
    """

    sha256: str
    medium: str
    source: str
    detail: str | None
    submission: str
    path: str | None
    url: str | None
    labelled_at: float
    #: Reddit username of the submission's poster (None: deleted, or not recorded).
    author: str | None = None


@dataclass
class LabelSet:
    """The labels in force at a cut-off and what was left out.

    ``labels``: one :class:`Label` per image, sorted by sha256. ``dropped``: reason → number of
    candidate rows or images left out (``policy:<source>``, ``conflicting_statements``,
    ``unknown_medium``, ``after_cutoff``).
    """

    labels: list[Label]
    dropped: Counter[str] = field(default_factory=Counter)

    def by_source(self) -> dict[str, int]:
        """Number of labels per source (``review``, ``stated``, ``collected``)."""
        return dict(Counter(label.source for label in self.labels))

    def by_medium(self) -> dict[str, int]:
        """Number of labels per medium, in ``MEDIA`` order."""
        counts = Counter(label.medium for label in self.labels)
        return {m: counts[m] for m in MEDIA if counts[m]}


def gather_labels(db: Database, policy: LabelPolicy, *, cutoff: float | None = None) -> LabelSet:
    """The labels in force at ``cutoff`` (Unix seconds; None = now), one per image.

    Reads ``label_candidates``; candidates recorded after ``cutoff`` are ignored (so a run is
    reproducible from its recorded cut-off). Per image: the latest moderator review wins
    (reviews outrank stated media); otherwise the candidates the ``policy`` admits must all
    name the same medium. Candidates whose medium is not canonical are dropped.
    """
    cutoff = time.time() if cutoff is None else float(cutoff)
    dropped: Counter[str] = Counter()
    by_image: dict[str, list[dict[str, Any]]] = {}
    for row in db.query("SELECT * FROM label_candidates ORDER BY sha256, labelled_at, ref"):
        if row["labelled_at"] is not None and row["labelled_at"] > cutoff:
            dropped["after_cutoff"] += 1
            continue
        if row["medium"] not in MEDIA:
            dropped["unknown_medium"] += 1
            continue
        by_image.setdefault(row["sha256"], []).append(row)

    labels: list[Label] = []
    for sha, rows in sorted(by_image.items()):
        reviews = [r for r in rows if r["source"] in MODERATOR_SOURCES]
        if reviews:
            r = max(reviews, key=lambda r: (r["labelled_at"] or 0.0, r["ref"] or 0))
            labels.append(_label(r, r["detail"]))
            continue
        admitted = []
        for r in rows:
            why = policy.admits(r["source"], r["medium"], r["detail"])
            if why is None:
                dropped[f"policy:{r['source']}"] += 1
            else:
                admitted.append((r, why))
        if not admitted:
            continue
        if len({r["medium"] for r, _ in admitted}) > 1:
            dropped["conflicting_statements"] += 1
            continue
        # prefer a daemon statement over collected history, then the earliest
        r, why = min(admitted, key=lambda a: (SOURCES.index(a[0]["source"]), a[0]["labelled_at"] or 0.0))
        labels.append(_label(r, why))
    authors = _authors(db)
    labels = [dataclasses.replace(lb, author=authors.get(lb.submission)) for lb in labels]
    return LabelSet(labels, dropped)


def _authors(db: Database) -> dict[str, str]:
    """Poster of every recorded submission (processed or collected), by fullname."""
    out: dict[str, str] = {}
    for table in ("collected_posts", "submissions"):
        if table in db.table_names():
            out.update((r[0], r[1]) for r in db.execute(
                f"SELECT fullname, author FROM {table} WHERE author IS NOT NULL AND author != ''"))
    return out


def _label(row: Mapping[str, Any], detail: str | None) -> Label:
    return Label(sha256=row["sha256"], medium=row["medium"], source=row["source"], detail=detail,
                 submission=row["submission"], path=row["path"], url=row["url"],
                 labelled_at=float(row["labelled_at"] or 0.0))


# --- the fixed evaluation split ------------------------------------------------------------


def assign_splits(db: Database, labels: Iterable[Label], eval_fraction: float, *,
                  now: float | None = None) -> dict[str, str]:
    """Put every label's image on the ``train`` or ``eval`` side, once; return sha256 → side.

    Images already in ``label_splits`` keep their side (the evaluation set is fixed: nothing
    on the ``eval`` side is ever trained on, even if its label changes later).

    New images are assigned **by author**, so that the gates measure what moderators need —
    how the model does on artists it was not trained on (an artist's images are near-twins in
    style; a random image split lets a model that learned the artists look better than it is):
    a new image of an author who already has images on one side goes to that side; the new
    authors of each medium (an author counts under the medium of most of their new images;
    taken in sha256-of-name order, arbitrary but reproducible) go to ``eval`` while that brings
    the medium's ``eval`` share closer to ``eval_fraction`` (``round(fraction · n)`` of its ``n``
    labels), else to ``train``. So a medium whose labels all come from one prolific author has no
    evaluation images until other authors post it. Images without a known author are assigned
    one by one the same way (sha256 order). Raises ``ValueError`` unless 0 ≤ ``eval_fraction`` < 1.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    now = time.time() if now is None else now
    labels = list(labels)
    existing = {r[0]: r[1] for r in db.execute("SELECT sha256, split FROM label_splits")}
    eval_count: Counter[str] = Counter()
    total: Counter[str] = Counter()
    author_side: dict[str, str] = {}
    for label in labels:
        total[label.medium] += 1
        side = existing.get(label.sha256)
        if side is not None and label.author:
            author_side.setdefault(label.author, side)
        if side == "eval":
            eval_count[label.medium] += 1
    groups: dict[str, list[Label]] = {}
    for label in labels:
        if label.sha256 not in existing:
            key = f"a:{label.author}" if label.author else f"i:{label.sha256}"
            groups.setdefault(key, []).append(label)
    rows = []

    def put(group: list[Label], side: str) -> None:
        for label in group:
            if label.sha256 in existing:  # the same image twice in one group
                continue
            existing[label.sha256] = side
            eval_count[label.medium] += side == "eval"
            rows.append({"sha256": label.sha256, "split": side, "medium": label.medium, "assigned_at": now})

    fresh = []
    for key, group in groups.items():
        known = author_side.get(key[2:]) if key.startswith("a:") else None
        if known is not None:
            put(group, known)
        else:
            fresh.append((hashlib.sha256(key.encode()).hexdigest(), group))
    for _, group in sorted(fresh, key=lambda item: item[0]):
        medium = Counter(lb.medium for lb in group).most_common(1)[0][0]
        target = round(eval_fraction * total[medium])
        n = sum(1 for lb in group if lb.medium == medium)
        closer = abs(eval_count[medium] + n - target) < abs(eval_count[medium] - target)
        put(group, "eval" if closer else "train")
    if rows:
        with write_transaction(db):
            db["label_splits"].insert_all(rows, ignore=True)
    return {label.sha256: existing[label.sha256] for label in labels}


# --- images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocatedImage:
    """A label with the cached file to read (``path``), or the ``reason`` it is skipped."""

    label: Label
    path: Path | None
    reason: str | None = None


def locate_images(labels: Iterable[Label], cache_dir: str | os.PathLike[str], *,
                  fetcher: Any = None) -> list[LocatedImage]:
    """Find each label's image in the content-addressed cache (by sha256).

    An image no longer cached (evicted) is downloaded again from its URL when ``fetcher`` (a
    :class:`modbot.images.ImageFetcher` writing to the same cache) is given; the bytes must
    have the same sha256. Otherwise it is skipped with a reason: ``evicted`` (no fetcher or no
    URL), ``evicted_refetch_failed:<ImageError reason>`` or ``evicted_changed`` (the URL now
    serves other bytes). Never raises for a missing image.
    """
    out = []
    for label in labels:
        path = find_cached(cache_dir, label.sha256)
        if path is not None:
            out.append(LocatedImage(label, path))
            continue
        if fetcher is None or not label.url:
            out.append(LocatedImage(label, None, "evicted"))
            continue
        try:
            fetched = fetcher.fetch(ImageRef(label.url, "direct"))
        except ImageError as exc:
            out.append(LocatedImage(label, None, f"evicted_refetch_failed:{exc.reason}"))
            continue
        if fetched.sha256 != label.sha256:
            out.append(LocatedImage(label, None, "evicted_changed"))
            continue
        out.append(LocatedImage(label, Path(fetched.path)))
    return out


def build_tree(root: str | os.PathLike[str], items: Iterable[tuple[Path, str]]) -> dict[str, int]:
    """A folder-per-medium training tree of symlinks: ``root/<medium>/<file name>`` → file.

    ``items``: (image file, medium) pairs; file names are cache names (``<sha256>.<ext>``), so
    they are unique. Falls back to copying where symlinks are not allowed. Returns the number
    of files per medium. ``root`` is created; it must not hold other files.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    for path, medium in items:
        folder = root / medium
        folder.mkdir(exist_ok=True)
        target = folder / Path(path).name
        try:
            target.symlink_to(Path(path).resolve())
        except OSError:
            shutil.copyfile(path, target)
        counts[medium] += 1
    return dict(counts)


# --- the data of one run ---------------------------------------------------------------------


@dataclass
class RunData:
    """The images of one run: ``classes`` (media, ``MEDIA`` order), ``train``/``eval``
    ((image file, medium) pairs), ``counts`` (the ``data_counts`` column) and
    ``train_authors`` (the poster of each training image, aligned with ``train``; None when
    unknown)."""

    classes: list[str]
    train: list[tuple[Path, str]]
    eval: list[tuple[Path, str]]
    counts: dict[str, Any]
    train_authors: list[str | None] = field(default_factory=list)


def gather_data(config: Config, db: Database, champion_labels: Sequence[str], *, cutoff: float,
                now: float, fetch_evicted: bool = True) -> RunData:
    """Labels at ``cutoff`` (Unix seconds), their fixed split (new images assigned at ``now``),
    the run's classes and the cached images of each side (evicted images downloaded again when
    ``fetch_evicted``). Raises ``ConfigError`` for a bad label policy."""
    learning = config.learning
    label_set = gather_labels(db, LabelPolicy.from_config(learning), cutoff=cutoff)
    sides = assign_splits(db, label_set.labels, learning.eval_fraction, now=now)
    per_medium = Counter(label.medium for label in label_set.labels)
    classes = [m for m in MEDIA if m in champion_labels
               or per_medium[m] >= learning.new_medium_min_labels]
    used = [label for label in label_set.labels if label.medium in classes]
    with contextlib.ExitStack() as stack:
        fetcher = stack.enter_context(ImageFetcher.from_config(config)) if fetch_evicted else None
        located = locate_images(used, config.storage.image_cache, fetcher=fetcher)
    found = [(i.path, i.label.medium, sides[i.label.sha256], i.label.author) for i in located if i.path is not None]
    train = [(p, m) for p, m, side, _ in found if side == "train"]
    evaluation = [(p, m) for p, m, side, _ in found if side == "eval"]
    skipped = Counter(item.reason for item in located if item.path is None)
    excluded = {m: n for m, n in per_medium.items() if m not in classes}
    return RunData(classes, train, evaluation,
                   _data_counts(label_set, excluded, train, evaluation, skipped),
                   train_authors=[a for _, _, side, a in found if side == "train"])


def _data_counts(label_set: LabelSet, excluded: dict[str, int], train: list[tuple[Path, str]],
                 evaluation: list[tuple[Path, str]], skipped: Counter[str]) -> dict[str, Any]:
    labels = label_set.labels
    return {
        "labels": {"total": len(labels), "by_source": label_set.by_source(),
                   "by_medium": label_set.by_medium(),
                   "by_detail": dict(Counter(f"{lb.source}:{lb.detail}" for lb in labels))},
        "dropped_candidates": dict(label_set.dropped),
        "excluded_media": excluded,
        "train": dict(Counter(m for _, m in train)),
        "eval": dict(Counter(m for _, m in evaluation)),
        "skipped_images": dict(skipped),
    }
