"""Record stage: every submission, image, prediction, verdict and action in SQLite.

The database is opened in WAL mode and migrated on open (``migrations/``). Each public method
commits before it returns, so a crash loses at most the submission in progress, which stays in
status ``processing`` and is processed again on restart. Inside :meth:`Store.transaction`
several calls share one commit (each still all-or-nothing, as a savepoint): the daemon writes a
post's images, predictions and verdict in one transaction, after :meth:`Store.begin`'s own and
before any action is claimed.

Submission statuses: ``processing`` (started, not finished), ``done`` (judged),
``skipped`` (nothing to classify: ``reason`` says why), ``retry`` (a retryable failure;
``next_attempt_at`` says when), ``failed`` (gave up; ``reason``), ``abandoned`` (shutdown
interrupted it; processed again on the next start).

Action statuses: ``dry_run`` (actions off: what would have been done), ``intent`` (about to call
Reddit: written *before* the call), ``sent``, ``failed`` (Reddit refused; not retried),
``unknown`` (the process died between intent and answer; never re-sent).
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from modbot.domain import (
    FetchedImage,
    ImageRef,
    Post,
    Prediction,
    StatedMedium,
    Verdict,
)
from modbot.errors import StoreError

#: Final statuses: a submission in one of these is never processed again.
FINAL_STATUSES = ("done", "skipped", "failed")
#: Statuses the stream does not process again when it lists the submission once more: the
#: final ones and ``retry`` (the retry timer brings it back).
SETTLED_STATUSES = (*FINAL_STATUSES, "retry")


def open_database(path: str | Path) -> Database:
    """Open (creating if needed) the SQLite file at ``path`` in WAL mode and apply migrations.

    Raises ``StoreError`` if the file cannot be opened or a migration fails.
    """
    from modbot.migrations import migrations

    try:
        p = Path(path)
        if str(p) != ":memory:":
            p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(p), timeout=30, check_same_thread=False, isolation_level=None)
        db = Database(conn)
        db.execute("PRAGMA foreign_keys = ON")
        if str(p) != ":memory:":
            db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        migrations.apply(db)
    except (sqlite3.Error, OSError, ValueError) as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    return db




@contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """A write transaction that takes SQLite's write lock first (``BEGIN IMMEDIATE``).

    The daemon, a retraining child process and moderators' commands write to the same WAL
    database. A deferred ``BEGIN`` (sqlite-utils' ``atomic()``) whose first statement reads —
    sqlite-utils' ``insert``/``update`` read the table's schema first — fails at once with
    "database is locked" (``SQLITE_BUSY_SNAPSHOT``) when another connection commits in between,
    without waiting for the busy timeout. ``BEGIN IMMEDIATE`` waits (up to the connection's
    timeout, 30 s in :func:`modbot.record.open_database`) instead. Inside an open transaction it
    nests as a savepoint. Commits on success, rolls back on any exception.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def post_json(data: Mapping[str, Any]) -> str:
    """Serialise a submission's raw data for ``submissions.data_json``.

    praw objects (``author``, ``subreddit``) become their names; private attributes (leading
    ``_``, e.g. praw's ``_reddit``) are dropped, so nothing but Reddit's public fields is stored.
    """
    clean = {k: v for k, v in data.items() if not k.startswith("_")}
    return json.dumps(clean, default=str, sort_keys=True)


def _lock(path: str) -> Any:
    """Take an exclusive ``flock`` on ``<path>.lock`` (created if needed); the open file is
    the lock. Raises ``StoreError`` when another process holds it."""
    lock_path = Path(f"{path}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+b")  # noqa: SIM115 - held for the Store's lifetime
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {lock_path}: {exc}") from exc
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise StoreError(f"another modbot daemon is using {path} (lock {lock_path} is held); "
                         "two daemons on one database would act twice") from exc
    return handle


def _quick_check(db: Database, path: str) -> None:
    """``PRAGMA quick_check``; raises ``StoreError`` with SQLite's first findings."""
    try:
        rows = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as exc:
        raise StoreError(f"database {path} failed its integrity check: {exc}") from exc
    if rows != ["ok"]:
        raise StoreError(f"database {path} failed its integrity check: {'; '.join(rows[:5])}")


def _insert(db: Database, table: str, row: Mapping[str, Any]) -> int:
    """``INSERT`` one row (column names are this module's literals); returns its rowid. Plain
    SQL: sqlite-utils' ``insert`` reads the table's schema on every call (measured: about a
    third of the daemon's SQLite time per post)."""
    cols = list(row)
    cur = db.execute(f"INSERT INTO {table} ({', '.join(cols)}) "
                     f"VALUES ({', '.join('?' for _ in cols)})", [row[c] for c in cols])
    return int(cur.lastrowid or 0)


def _upsert(db: Database, table: str, pk: str, row: Mapping[str, Any]) -> None:
    """Insert ``row``, or update the given columns of the row with the same ``pk`` (what
    sqlite-utils' ``upsert`` does: other columns are kept), in one statement."""
    cols = list(row)
    db.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
               f"ON CONFLICT({pk}) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in cols if c != pk),
               [row[c] for c in cols])


class Store:
    """The modbot database: one instance per process, safe to use from one thread at a time
    (the daemon's retrain thread opens its own)."""

    def __init__(self, path: str | Path, *, exclusive: bool = False) -> None:
        """Open (and migrate) the database at ``path``.

        ``exclusive`` (the daemon): first take the lock file ``<path>.lock`` (``flock``; held
        until :meth:`close` or the process ends, so a crash never leaves it stale) — a second
        daemon on the same database would double every action — then run
        ``PRAGMA quick_check``. Raises ``StoreError`` when the lock is held by another
        process, the database is corrupt, or it cannot be opened or migrated.
        """
        self.path = str(path)
        self._lock_file = _lock(self.path) if exclusive else None
        try:
            self.db = open_database(path)
            if exclusive:
                _quick_check(self.db, self.path)
        except BaseException:
            if self._lock_file is not None:
                self._lock_file.close()
            raise

    def close(self) -> None:
        """Checkpoint the WAL, close the connection and release the lock."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.conn.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with write_transaction(self.db):
            yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the recording calls made inside into one write transaction (one commit).

        Each call stays atomic on its own (a savepoint); an exception leaving the block rolls
        back everything written in it and propagates. Nothing inside is visible to other
        connections before the block ends, so use it only for rows that may appear together —
        never around :meth:`begin` (the attempt must count even if the process dies in the
        post) or an action claim (it must be committed before Reddit is called). Nests.
        """
        with write_transaction(self.db):
            yield

    # --- submissions -------------------------------------------------------------------
    def status_of(self, fullname: str) -> str | None:
        """The submission's status, or None if it was never seen."""
        row = self.db.execute("SELECT status FROM submissions WHERE fullname = ?", [fullname]).fetchone()
        return row[0] if row else None

    def is_recorded(self, fullname: str) -> bool:
        """True if the submission was ever recorded (any status): the stream's cold start pages
        back until it meets one."""
        return self.db.execute("SELECT 1 FROM submissions WHERE fullname = ?",
                               [fullname]).fetchone() is not None

    def newest_recorded_utc(self, subreddits: str) -> float | None:
        """``created_utc`` (Unix seconds) of the newest submission recorded from any of
        ``subreddits`` (``"Art+ArtistLounge"``, case-insensitive), or None if none was."""
        names = [n for n in subreddits.split("+") if n]
        marks = ", ".join("?" for _ in names)
        row = self.db.execute(
            f"SELECT MAX(created_utc), COUNT(*) FROM submissions "
            f"WHERE subreddit COLLATE NOCASE IN ({marks})", names).fetchone()
        return None if not row or not row[1] else float(row[0] or 0.0)

    def record_backlog_gap(self, subreddits: str, *, oldest_fullname: str | None,
                           oldest_created_utc: float | None, newest_recorded_utc: float | None,
                           pages: int, posts: int, reason: str) -> int:
        """Record a cold-start gap (table ``backlog_gaps``, migration 006): submissions made
        between ``newest_recorded_utc`` and ``oldest_created_utc`` (Unix seconds) were never
        listed to modbot. Returns the row id."""
        with self._tx():
            return int(self.db["backlog_gaps"].insert({
                "subreddits": subreddits, "oldest_fullname": oldest_fullname,
                "oldest_created_utc": oldest_created_utc,
                "newest_recorded_utc": newest_recorded_utc, "pages": pages, "posts": posts,
                "reason": reason, "detected_at": time.time()}).last_pk)

    def is_final(self, fullname: str) -> bool:
        """True if the submission needs no more work (done, skipped or failed)."""
        return self.status_of(fullname) in FINAL_STATUSES

    def is_settled(self, fullname: str) -> bool:
        """True if the stream should not process the submission again (:data:`SETTLED_STATUSES`)."""
        return self.status_of(fullname) in SETTLED_STATUSES

    def attempts_of(self, fullname: str) -> int | None:
        """How many times processing of the submission began, or None if it was never seen."""
        row = self.db.execute("SELECT attempts FROM submissions WHERE fullname = ?", [fullname]).fetchone()
        return row[0] if row else None

    def begin(self, post: Post, stated: StatedMedium, *, now: float | None = None) -> int:
        """Record that processing of ``post`` starts; clears results of an earlier, unfinished try.

        Actions are kept: they are the record of what was already sent. Returns the attempt
        number (1 for the first).
        """
        now = time.time() if now is None else now
        with self._tx():
            row = self.db.execute(
                "SELECT attempts, first_seen_at FROM submissions WHERE fullname = ?", [post.fullname]
            ).fetchone()
            attempts = (row[0] if row else 0) + 1
            first_seen = row[1] if row else now
            self.db.execute("DELETE FROM predictions WHERE submission = ?", [post.fullname])
            self.db.execute("DELETE FROM verdicts WHERE submission = ?", [post.fullname])
            self.db.execute("DELETE FROM images WHERE submission = ?", [post.fullname])
            _upsert(self.db, "submissions", "fullname", {
                "fullname": post.fullname,
                "id": post.id,
                "subreddit": post.subreddit,
                "title": post.title,
                "author": post.author,
                "permalink": post.permalink,
                "url": post.url,
                "created_utc": post.created_utc,
                "link_flair_text": post.link_flair_text,
                "stated_medium": stated.medium,
                "stated_source": stated.source,
                "stated_raw": stated.raw,
                "status": "processing",
                "reason": None,
                "attempts": attempts,
                "next_attempt_at": None,
                "first_seen_at": first_seen,
                "updated_at": now,
                "data_json": post_json(post.data),
            })
        return attempts

    def finish(self, fullname: str, status: str, *, reason: str | None = None,
               next_attempt_at: float | None = None, refund_attempt: bool = False) -> None:
        """Set the submission's final (or retry) status and reason. ``refund_attempt``: this
        attempt does not count (the machine failed, not the post; see ``EnvironmentFailure``)."""
        with self._tx():
            self.db.execute(
                "UPDATE submissions SET status = ?, reason = ?, next_attempt_at = ?, updated_at = ?, "
                "attempts = attempts - ? WHERE fullname = ?",
                [status, reason, next_attempt_at, time.time(), int(refund_attempt), fullname],
            )

    def unfinished(self) -> list[str]:
        """Fullnames left in ``processing`` or ``abandoned`` (a crash or shutdown mid-post)."""
        rows = self.db.execute(
            "SELECT fullname FROM submissions WHERE status IN ('processing', 'abandoned') "
            "ORDER BY created_utc"
        ).fetchall()
        return [r[0] for r in rows]

    def due_retries(self, now: float | None = None) -> list[str]:
        """Fullnames in ``retry`` whose ``next_attempt_at`` has passed, oldest first."""
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT fullname FROM submissions WHERE status = 'retry' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at",
            [now],
        ).fetchall()
        return [r[0] for r in rows]

    def stored_data(self, fullname: str) -> dict[str, Any] | None:
        """The raw submission JSON recorded by :meth:`begin`, or None."""
        row = self.db.execute("SELECT data_json FROM submissions WHERE fullname = ?", [fullname]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    # --- images and predictions --------------------------------------------------------
    def record_image(self, fullname: str, position: int, ref: ImageRef, *,
                     fetched: FetchedImage | None = None, status: str = "ok",
                     error: str | None = None) -> int:
        """Record one image of a submission (fetched, or the reason it failed). Returns its id."""
        row: dict[str, Any] = {
            "submission": fullname,
            "position": position,
            "url": ref.url,
            "source": ref.source,
            "media_id": ref.media_id,
            "status": status,
            "error": error,
            "fetched_at": time.time(),
        }
        if fetched is not None:
            row.update(
                sha256=fetched.sha256, path=fetched.path, size_bytes=fetched.size_bytes,
                width=fetched.width, height=fetched.height, format=fetched.format,
            )
        with self._tx():
            return _insert(self.db, "images", row)

    def record_predictions(self, fullname: str, image_ids: Sequence[int],
                           predictions: Sequence[Prediction]) -> None:
        """Record one prediction per image (same order), with model version and probabilities."""
        now = time.time()
        rows = []
        for image_id, pred in zip(image_ids, predictions, strict=True):
            label, conf = pred.top
            rows.append({
                "image_id": image_id, "submission": fullname, "model_version": pred.model_version,
                "predicted": label, "confidence": conf,
                "probabilities": json.dumps({k: round(float(v), 6) for k, v in pred.probabilities.items()}),
                "created_at": now,
            })
        with self._tx():
            for row in rows:
                _insert(self.db, "predictions", row)

    def record_verdict(self, fullname: str, verdict: Verdict, *, model_version: str | None,
                       n_images: int) -> None:
        """Record (or replace) the submission's verdict."""
        with self._tx():
            _upsert(self.db, "verdicts", "submission", {
                "submission": fullname, "kind": verdict.kind.value, "stated": verdict.stated,
                "predicted": verdict.predicted, "confidence": verdict.confidence,
                "reason": verdict.reason, "model_version": model_version, "n_images": n_images,
                "created_at": time.time(),
            })

    # --- actions -----------------------------------------------------------------------
    def action_status(self, fullname: str, kind: str) -> str | None:
        """Status of the submission's action of ``kind`` (report/comment), or None."""
        row = self.db.execute(
            "SELECT status FROM actions WHERE submission = ? AND kind = ?", [fullname, kind]
        ).fetchone()
        return row[0] if row else None

    def claim_action(self, fullname: str, kind: str, *, status: str, text: str) -> bool:
        """Insert the action row (``intent`` or ``dry_run``) if none exists; committed at once.

        Returns False if an action of this kind was already recorded for the submission: the
        caller must then not act. The unique index (submission, kind) makes this the lock that
        keeps a report or comment from ever being sent twice.
        """
        now = time.time()
        try:
            with self._tx():
                self.db.execute(
                    "INSERT INTO actions (submission, kind, status, text, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [fullname, kind, status, text, now, now],
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def complete_action(self, fullname: str, kind: str, *, status: str,
                        reddit_id: str | None = None, error: str | None = None) -> None:
        """Record the outcome (``sent``/``failed``/``unknown``) of a claimed action."""
        with self._tx():
            self.db.execute(
                "UPDATE actions SET status = ?, reddit_id = ?, error = ?, updated_at = ? "
                "WHERE submission = ? AND kind = ?",
                [status, reddit_id, error, time.time(), fullname, kind],
            )

    def release_action(self, fullname: str, kind: str) -> None:
        """Delete a claim still in ``intent`` whose request was certainly never sent (the
        daemon was stopping), so that a later run may act. Rows in any other status stay."""
        with self._tx():
            self.db.execute(
                "DELETE FROM actions WHERE submission = ? AND kind = ? AND status = 'intent'",
                [fullname, kind],
            )

    def dangling_actions(self) -> list[tuple[str, str]]:
        """(fullname, kind) of actions left in ``intent``: the process died mid-call."""
        return [tuple(r) for r in self.db.execute(
            "SELECT submission, kind FROM actions WHERE status = 'intent'").fetchall()]

    # --- digests -----------------------------------------------------------------------
    def claim_digest(self, day: str, *, status: str, subreddit: str, recipient: str,
                     subject: str, body: str, n_flags: int) -> bool:
        """Insert the digest row of ``day`` (``YYYY-MM-DD``, UTC) in ``status`` (``intent`` or
        ``dry_run``), committed at once. Returns False when that day's digest was already
        recorded: the caller must then not send it (the primary key is the lock)."""
        now = time.time()
        try:
            with self._tx():
                self.db.execute(
                    "INSERT INTO digests (day, status, subreddit, recipient, subject, body, "
                    "n_flags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [day, status, subreddit, recipient, subject, body, n_flags, now, now])
        except sqlite3.IntegrityError:
            return False
        return True

    def complete_digest(self, day: str, *, status: str, reddit_id: str | None = None,
                        error: str | None = None) -> None:
        """Record the outcome (``sent``/``failed``/``unknown``) of a claimed digest."""
        with self._tx():
            self.db.execute(
                "UPDATE digests SET status = ?, reddit_id = ?, error = ?, updated_at = ? "
                "WHERE day = ?", [status, reddit_id, error, time.time(), day])

    def release_digest(self, day: str) -> None:
        """Delete a digest claim still in ``intent`` whose request was certainly never sent."""
        with self._tx():
            self.db.execute("DELETE FROM digests WHERE day = ? AND status = 'intent'", [day])

    def digest_status(self, day: str) -> str | None:
        """Status of ``day``'s digest, or None when none was recorded."""
        row = self.db.execute("SELECT status FROM digests WHERE day = ?", [day]).fetchone()
        return row[0] if row else None

    def settle_dangling_digests(self) -> list[str]:
        """Mark digests left in ``intent`` (the process died mid-send) ``unknown``: never
        re-sent. Returns their days."""
        days = [r[0] for r in self.db.execute("SELECT day FROM digests WHERE status = 'intent'")]
        for day in days:
            self.complete_digest(day, status="unknown",
                                 error="process stopped between intent and answer")
        return days

    # --- reading -----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Row counts per verdict kind plus submission statuses, for summaries."""
        out: dict[str, int] = {}
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM submissions GROUP BY status"):
            out[f"status:{status}"] = n
        for kind, n in self.db.execute("SELECT kind, COUNT(*) FROM verdicts GROUP BY kind"):
            out[f"verdict:{kind}"] = n
        return out
