"""Repost stage: has the subreddit seen this picture before, posted by whom?

Every image the daemon fetches (and every image ``modbot collect`` collects) gets a perceptual
fingerprint (:mod:`modbot.fingerprint`), stored in ``repost_fingerprints`` (``migrations/``
``m008``) with its post: submission, author, ``created_utc``, permalink and the title's artist
field (:func:`modbot.medium.artist_field`). :class:`RepostStage` keeps an in-memory index of
them (built from SQLite on first use, then topped up with the rows added since, so rows that
``modbot collect`` writes from another process are picked up too) and, for each new post, looks
up every image: a stored image of an *earlier* post (older ``created_utc``; for equal times,
recorded earlier) within ``[reposts] max_distance`` bits is a match. Galleries: any image can
match. Each earlier submission that matched gives one finding row (``repost_findings``), with
the closest pair of images, its distance (bits of 256) and whether it matched mirrored.

Kinds (:func:`repost_kind`), the most severe first:

* ``known_original`` — the earlier post is by someone else *and* its poster is its artist (its
  title's artist field is a self-reference such as "me"/"OC", or the poster's own name): a
  known original, so this post is likely stolen art (unless its own artist field credits that
  poster: both artist fields are recorded for the moderator).
* ``other_author`` — the earlier post is by someone else and is not known to be the artist's
  own: possible stolen art, or two people sharing a third party's work.
* ``same_author`` — the same author posted it within ``[reposts] window_days`` (an older
  repost by the same author is allowed and not recorded).

A finding is evidence for a moderator, not a verdict (precision 0.995 on the bench: near-twins
such as two photos of one painting can match). :meth:`modbot.act.Actor.report_repost` can
report it on Reddit (``[reposts] report``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlite_utils import Database

from modbot.config import RepostsConfig
from modbot.domain import FetchedImage, Post
from modbot.errors import FingerprintError
from modbot.fingerprint import (
    FINGERPRINT_VERSION,
    NEAR_TWIN_MARGIN,
    Fingerprint,
    Match,
    fingerprint,
)
from modbot.fingerprint_index import FingerprintIndex
from modbot.medium import artist_field, is_self_reference
from modbot.record import write_transaction

log = structlog.get_logger("modbot.repost")

#: Finding kinds, most severe first.
KINDS = ("known_original", "other_author", "same_author")
#: ``repost_fingerprints.source`` values.
SOURCES = ("daemon", "collect")
_DAY_S = 86400.0


@dataclass(frozen=True)
class Earlier:
    """A stored image of an earlier post: a row of ``repost_fingerprints`` (without the blob).
    ``created_utc``: Unix seconds; ``artist``: the title's artist field (None when absent)."""

    fingerprint_id: int
    submission: str
    post_id: str | None
    position: int
    source: str
    author: str | None
    artist: str | None
    created_utc: float | None
    permalink: str | None

    @property
    def link(self) -> str:
        """Reddit's short link to the earlier post (``https://redd.it/<id>``)."""
        return f"https://redd.it/{self.post_id or self.submission.removeprefix('t3_')}"


@dataclass(frozen=True)
class RepostMatch:
    """One earlier submission that matched: this post's image ``position`` (n-th fetched
    image), the closest earlier image, ``distance`` (bits of 256), ``mirrored`` and ``kind``."""

    position: int
    earlier: Earlier
    distance: int
    mirrored: bool
    kind: str


@dataclass(frozen=True)
class RepostFinding:
    """What the repost stage found for one post: ``matches``, most severe kind first, then the
    closest (never empty)."""

    fullname: str
    matches: tuple[RepostMatch, ...]

    @property
    def kind(self) -> str:
        """The most severe kind among the matches."""
        return self.matches[0].kind

    @property
    def original(self) -> RepostMatch:
        """The match a report names: most severe, then closest."""
        return self.matches[0]


# --- kinds ------------------------------------------------------------------------------------
def _name(text: str | None) -> str:
    """A user or artist name compared loosely: lower case, without ``u/``, ``/u/``, ``@``,
    ``by`` and surrounding punctuation."""
    t = (text or "").strip().strip("\"'()[]*:").strip().lower()
    for prefix in ("by ", "/u/", "u/", "@"):
        t = t.removeprefix(prefix)
    return t.strip()


def is_own_work(author: str | None, artist: str | None) -> bool:
    """True when a post's artist field says the poster is the artist: a self-reference ("me",
    "by me", "OC") or the poster's own name (``u/`` and case ignored)."""
    if not artist:
        return False
    return is_self_reference(artist) or (bool(_name(author)) and _name(artist) == _name(author))


def repost_kind(author: str | None, earlier: Earlier, created_utc: float,
                window_days: float) -> str | None:
    """The kind of a match of a post by ``author`` made at ``created_utc`` (Unix seconds) with
    an earlier post (see the module docstring), or None for the same author's repost older than
    ``window_days`` (allowed). A deleted author (None) is never "the same"."""
    same = bool(_name(author)) and _name(author) == _name(earlier.author)
    if same:
        age_s = created_utc - float(earlier.created_utc or 0.0)
        return "same_author" if age_s <= window_days * _DAY_S else None
    return "known_original" if is_own_work(earlier.author, earlier.artist) else "other_author"


# --- storage ----------------------------------------------------------------------------------
def save_fingerprint(db: Database, row: Mapping[str, Any]) -> int:
    """Record one image's fingerprint row (``repost_fingerprints``: ``submission``, ``source``,
    ``position``, ``sha256``, ``fp`` blob and the post's fields; ``version`` and
    ``recorded_at`` are filled in). The same image (sha256) already recorded at (submission,
    source, position) is kept; another image there is replaced (new id). Returns the row id.
    Commits."""
    row = {"version": FINGERPRINT_VERSION, "recorded_at": time.time(), **row}
    with write_transaction(db):
        old = db.execute("SELECT id, sha256 FROM repost_fingerprints WHERE submission = ? "
                         "AND source = ? AND position = ?",
                         [row["submission"], row["source"], row["position"]]).fetchone()
        if old is not None and old[1] == row.get("sha256"):
            return int(old[0])
        if old is not None:
            db.execute("DELETE FROM repost_fingerprints WHERE id = ?", [old[0]])
        cols = list(row)
        cur = db.execute(f"INSERT INTO repost_fingerprints ({', '.join(cols)}) "
                         f"VALUES ({', '.join('?' for _ in cols)})", [row[c] for c in cols])
        return int(cur.lastrowid or 0)


def post_fields(post: Post) -> dict[str, Any]:
    """The post's columns of a ``repost_fingerprints`` row (artist from the title)."""
    return {"submission": post.fullname, "post_id": post.id, "subreddit": post.subreddit,
            "author": post.author, "artist": artist_field(post.title or ""),
            "created_utc": post.created_utc, "permalink": post.permalink}


def fingerprint_image(db: Database, post: Post, image: Any, *, source: str, position: int,
                      sha256: str | None) -> int | None:
    """Fingerprint a decoded Pillow ``image`` of ``post`` and record it (:func:`save_fingerprint`);
    returns the row id, or None when the image cannot be fingerprinted (logged)."""
    try:
        fp = fingerprint(image)
    except FingerprintError as exc:
        log.warning("fingerprint_failed", fullname=post.fullname, position=position, error=str(exc))
        return None
    return save_fingerprint(db, {**post_fields(post), "source": source, "position": position,
                                 "sha256": sha256, "fp": fp.to_blob()})


def _earlier_rows(db: Database, ids: Iterable[int]) -> dict[int, Earlier]:
    """``repost_fingerprints`` rows by id (rows deleted since are left out)."""
    ids = list(dict.fromkeys(int(i) for i in ids))
    out: dict[int, Earlier] = {}
    for k in range(0, len(ids), 500):
        chunk = ids[k:k + 500]
        for r in db.execute(
                "SELECT id, submission, post_id, position, source, author, artist, created_utc, "
                f"permalink FROM repost_fingerprints WHERE id IN ({', '.join('?' for _ in chunk)})",
                chunk):
            out[int(r[0])] = Earlier(int(r[0]), r[1], r[2], int(r[3]), r[4], r[5], r[6], r[7], r[8])
    return out


def record_findings(db: Database, post: Post, finding: RepostFinding | None) -> None:
    """Replace the submission's ``repost_findings`` rows with ``finding``'s (none: deleted).
    Commits."""
    now, fields = time.time(), post_fields(post)
    with write_transaction(db):
        db.execute("DELETE FROM repost_findings WHERE submission = ?", [post.fullname])
        for m in (finding.matches if finding else ()):
            e = m.earlier
            db.execute(
                "INSERT INTO repost_findings (submission, position, kind, author, artist, "
                "match_fingerprint, match_submission, match_post_id, match_author, match_artist, "
                "match_created_utc, match_permalink, match_source, distance, mirrored, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [post.fullname, m.position, m.kind, fields["author"], fields["artist"],
                 e.fingerprint_id, e.submission, e.post_id, e.author, e.artist, e.created_utc,
                 e.permalink, e.source, m.distance, int(m.mirrored), now])


def load_fingerprints(db: Database, after_id: int = 0) -> list[tuple[int, bytes]]:
    """(id, blob) of the current recipe's ``repost_fingerprints`` rows with id > ``after_id``."""
    return [(int(i), bytes(b)) for i, b in db.execute(
        "SELECT id, fp FROM repost_fingerprints WHERE id > ? AND version = ? ORDER BY id",
        [after_id, FINGERPRINT_VERSION])]


# --- the stage --------------------------------------------------------------------------------
def _best_matches(candidates: list[RepostMatch]) -> tuple[RepostMatch, ...]:
    """One match per earlier submission (the closest, non-mirrored first), most severe kind
    first, then the closest, then the oldest."""
    best: dict[str, RepostMatch] = {}
    for m in candidates:
        cur = best.get(m.earlier.submission)
        if cur is None or (m.mirrored, m.distance) < (cur.mirrored, cur.distance):
            best[m.earlier.submission] = m
    return tuple(sorted(best.values(), key=lambda m: (KINDS.index(m.kind), m.distance,
                                                      m.earlier.created_utc or 0.0)))


class RepostStage:
    """The daemon's repost step over one database (``db``: the daemon's ``Store.db``).

    Not thread-safe: one pipeline calls :meth:`check` at a time.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._index: FingerprintIndex | None = None
        self._last_id = 0

    @property
    def index(self) -> FingerprintIndex:
        """The index, built from SQLite on first use and topped up with newer rows."""
        if self._index is None:
            self._index = FingerprintIndex()
        rows = [(i, b) for i, b in load_fingerprints(self.db, self._last_id) if i not in self._index]
        if rows:
            self._index.add_blobs(rows)
            self._last_id = max(i for i, _ in rows)
        return self._index

    def check(self, post: Post, images: Sequence[FetchedImage],
              config: RepostsConfig) -> RepostFinding | None:
        """Fingerprint and record ``post``'s fetched ``images`` (their ``fingerprint`` when a
        download thread computed it, else of their ``rgb``), look each up
        among earlier posts and record the finding (``repost_findings``; replaced on a retry).
        Returns it, or None when nothing earlier matched or ``config.enabled`` is false."""
        if not config.enabled or not images:
            return None
        fps: list[tuple[int, Fingerprint]] = []
        for position, image in enumerate(images):
            ahead = getattr(image, "fingerprint", None)  # computed on a download thread
            if isinstance(ahead, Fingerprint) and ahead.version == FINGERPRINT_VERSION:
                fps.append((position, ahead))
                continue
            try:
                fps.append((position, fingerprint(image.rgb)))
            except FingerprintError as exc:
                log.warning("fingerprint_failed", fullname=post.fullname, position=position,
                            error=str(exc))
        if not fps:
            return None
        fields = post_fields(post)
        try:
            with write_transaction(self.db):  # one commit for the post's rows
                # other writers' rows (``modbot collect``) up to now; none can come between
                # this and the post's own rows: the write lock is held
                index = self.index
                own = [save_fingerprint(self.db, {**fields, "source": "daemon", "position": p,
                                                  "sha256": images[p].sha256, "fp": fp.to_blob()})
                       for p, fp in fps]
                finding = self._find(post, index, fps, min(own), config)
                record_findings(self.db, post, finding)
        except BaseException:
            self._index, self._last_id = None, 0  # it may hold rows rolled back: rebuild
            raise
        # the post's own rows go into the index from memory once committed (not read back)
        for row_id, (_, fp) in zip(own, fps, strict=True):
            if row_id not in index:
                index.add(row_id, fp)
        self._last_id = max(self._last_id, *own)
        return finding

    def _find(self, post: Post, index: FingerprintIndex, fps: list[tuple[int, Fingerprint]],
              first_own_id: int, config: RepostsConfig) -> RepostFinding | None:
        """Matches of the post's fingerprints among earlier posts in ``index`` (see the
        module docstring)."""
        # no near-twin margin yet: a retried post's own rows may be in the index
        hits = [(position, m) for position, fp in fps
                for m in index.query(fp, max_distance=config.max_distance, margin=None)]
        rows = _earlier_rows(self.db, (m.item_id for _, m in hits))
        earlier: list[tuple[int, Earlier, Match]] = []
        for position, m in hits:
            e = rows.get(m.item_id)
            if e is None or e.submission == post.fullname:
                continue
            t = float(e.created_utc or 0.0)
            if t > post.created_utc or (t == post.created_utc and e.fingerprint_id > first_own_id):
                continue  # a later post: it is the repost, not this one
            earlier.append((position, e, m))
        closest: dict[int, int] = {}
        for position, _, m in earlier:
            closest[position] = min(closest.get(position, m.distance), m.distance)
        candidates = []
        for position, e, m in earlier:
            if m.distance > closest[position] + NEAR_TWIN_MARGIN:
                continue  # a near-twin of a much closer earlier image
            kind = repost_kind(post.author, e, post.created_utc, config.window_days)
            if kind is not None:
                candidates.append(RepostMatch(position, e, m.distance, m.mirrored, kind))
        if not candidates:
            return None
        return RepostFinding(post.fullname, _best_matches(candidates))


# --- a moderator's look-up -------------------------------------------------------------------
def similar_posts(db: Database, image: Any, *, max_distance: int, limit: int = 20) -> list[dict[str, Any]]:
    """Stored images (every post fingerprinted so far) that show the same picture as the
    decoded Pillow ``image``: closest first, at most ``limit``. Only reads ``db``. Each dict:
    ``submission``, ``post_id``, ``link`` (https://redd.it/<id>), ``source``, ``position``,
    ``author``, ``artist``, ``created_utc`` (Unix seconds), ``distance`` (bits of 256),
    ``similarity`` (0-1), ``mirrored``. Raises ``FingerprintError`` for an unusable image."""
    fp = fingerprint(image)
    index = FingerprintIndex()
    index.add_blobs(load_fingerprints(db))
    matches = index.query(fp, max_distance=max_distance)[:limit]
    rows = _earlier_rows(db, (m.item_id for m in matches))
    out = []
    for m in matches:
        e = rows.get(m.item_id)
        if e is None:
            continue
        out.append({"submission": e.submission, "post_id": e.post_id, "link": e.link,
                    "source": e.source, "position": e.position, "author": e.author,
                    "artist": e.artist, "created_utc": e.created_utc, "distance": m.distance,
                    "similarity": round(m.similarity, 3), "mirrored": m.mirrored})
    return out


# --- report text ------------------------------------------------------------------------------
def template_values(post: Post, finding: RepostFinding) -> dict[str, Any]:
    """Placeholders of ``[reposts] report_template`` for ``finding`` (the original match)."""
    m = finding.original
    e = m.earlier
    when = (datetime.fromtimestamp(float(e.created_utc), UTC).strftime("%Y-%m-%d")
            if e.created_utc is not None else "?")
    return {"kind": m.kind, "original_link": e.link, "original_author": e.author or "[deleted]",
            "original_date": when, "distance": m.distance,
            "similarity": round(1.0 - m.distance / 256, 3), "mirrored": m.mirrored,
            "title": post.title}


def report_text(template: str, post: Post, finding: RepostFinding, limit: int = 100) -> str:
    """The report reason for ``finding``, cut to ``limit`` characters (Reddit's 100) with an
    ellipsis when longer."""
    text = template.format(**template_values(post, finding))
    return text if len(text) <= limit else text[: limit - 1] + "…"
