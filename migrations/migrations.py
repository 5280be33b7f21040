"""modbot's schema, as sqlite-utils migrations (applied in order, each in its own transaction).

Applied on daemon start and by ``modbot db migrate``; also usable from the shell:
``sqlite-utils migrate modbot.db migrations/migrations.py --list``.
Never edit an applied migration: add a new function below.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("modbot")


@migrations()
def m001_initial(db: Database) -> None:
    """Tables submissions, images, predictions, verdicts, actions (see README "Database")."""
    db["submissions"].create(
        {
            "fullname": str,  # t3_<id>
            "id": str,
            "subreddit": str,
            "title": str,
            "author": str,  # NULL for deleted accounts
            "permalink": str,
            "url": str,
            "created_utc": float,  # Unix seconds, from Reddit
            "link_flair_text": str,
            "stated_medium": str,  # canonical medium or "unknown"
            "stated_source": str,  # flair | title | none
            "stated_raw": str,
            "status": str,  # processing | done | skipped | failed | retry | abandoned
            "reason": str,  # why skipped/failed (e.g. video, not_an_image)
            "attempts": int,
            "next_attempt_at": float,  # Unix seconds; set when status = retry
            "first_seen_at": float,
            "updated_at": float,
            "data_json": str,  # the submission's raw JSON (public data only)
        },
        pk="fullname",
        not_null={"id", "subreddit", "status", "attempts", "first_seen_at", "updated_at"},
        defaults={"attempts": 0},
    )
    db["submissions"].create_index(["status"])
    db["submissions"].create_index(["created_utc"])

    db["images"].create(
        {
            "id": int,
            "submission": str,
            "position": int,  # order within the post (gallery order), from 0
            "url": str,
            "source": str,  # direct | gallery | preview | crosspost
            "media_id": str,
            "status": str,  # ok, or the ImageError reason (http_status, not_an_image, ...)
            "error": str,
            "sha256": str,
            "path": str,
            "size_bytes": int,
            "width": int,
            "height": int,
            "format": str,
            "fetched_at": float,
        },
        pk="id",
        foreign_keys=[("submission", "submissions", "fullname")],
        not_null={"submission", "position", "url", "status"},
    )
    db["images"].create_index(["submission", "position"], unique=True)
    db["images"].create_index(["sha256"])

    db["predictions"].create(
        {
            "id": int,
            "image_id": int,
            "submission": str,
            "model_version": str,
            "predicted": str,  # top medium
            "confidence": float,  # its probability, 0-1
            "probabilities": str,  # JSON object medium -> probability
            "created_at": float,
        },
        pk="id",
        foreign_keys=[("image_id", "images", "id"), ("submission", "submissions", "fullname")],
        not_null={"image_id", "submission", "model_version", "predicted", "confidence"},
    )
    db["predictions"].create_index(["submission"])

    db["verdicts"].create(
        {
            "submission": str,
            "kind": str,  # match | mismatch | uncertain | not_judged
            "stated": str,
            "predicted": str,
            "confidence": float,
            "reason": str,
            "model_version": str,
            "n_images": int,
            "created_at": float,
        },
        pk="submission",
        foreign_keys=[("submission", "submissions", "fullname")],
        not_null={"kind", "stated", "created_at"},
    )
    db["verdicts"].create_index(["kind"])

    db["actions"].create(
        {
            "id": int,
            "submission": str,
            "kind": str,  # report | comment
            "status": str,  # intent | dry_run | sent | failed | unknown
            "text": str,
            "reddit_id": str,  # the comment's fullname, when sent
            "error": str,
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        foreign_keys=[("submission", "submissions", "fullname")],
        not_null={"submission", "kind", "status", "created_at"},
    )
    # At most one action of each kind per submission, whatever happens: the row is the lock.
    db["actions"].create_index(["submission", "kind"], unique=True)


@migrations()
def m002_views(db: Database) -> None:
    """Views for moderators and Datasette: one row per decided submission, and flagged posts."""
    db.create_view(
        "decisions",
        """
        SELECT s.fullname, s.subreddit, s.title, s.author, s.permalink, s.created_utc,
               s.link_flair_text, s.stated_medium, s.status, s.reason,
               v.kind AS verdict, v.predicted, v.confidence, v.model_version, v.n_images
        FROM submissions s LEFT JOIN verdicts v ON v.submission = s.fullname
        """,
    )
    db.create_view(
        "flagged",
        """
        SELECT s.fullname, s.title, s.author, s.permalink, s.created_utc, v.stated,
               v.predicted, v.confidence, v.model_version, v.kind AS verdict
        FROM verdicts v JOIN submissions s ON s.fullname = v.submission
        WHERE v.kind IN ('mismatch', 'uncertain')
        """,
    )


@migrations()
def m003_reviews(db: Database) -> None:
    """Moderators' review decisions (table ``reviews``, full history) and views over them.

    ``reviews``: one row per decision a moderator recorded with ``modbot review``; nothing is
    ever updated or deleted, so the table is the history. Columns:

    - ``submission``: fullname (``t3_<id>``) of the reviewed submission.
    - ``decision``: ``confirm`` (the flag was right: the stated medium is wrong) or ``dismiss``
      (the stated medium is right).
    - ``true_medium``: the medium the moderator says the artwork is — a canonical medium
      (``modbot.domain.MEDIA``). A confirmation's defaults to the model's prediction; a
      dismissal's is the stated medium. This is the training label for the learning loop.
    - ``stated``, ``predicted``, ``confidence``, ``verdict``, ``model_version``: the verdict
      the moderator saw when deciding (copied, because a reprocessed post gets a new verdict).
    - ``moderator``: who decided (``--moderator``, else ``$MODBOT_MODERATOR``, else the OS user).
    - ``note``: free text, may be NULL.
    - ``created_at``: when, Unix seconds (UTC).

    Views: ``latest_reviews`` (the decision in force per submission: the last one recorded),
    ``review_labels`` (one row per successfully fetched image of a reviewed submission with its
    true medium: what retraining reads) and ``flag_reviews`` (flagged submissions with the
    decision in force, NULL when not reviewed yet).
    """
    db.execute(
        """
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            submission TEXT NOT NULL REFERENCES submissions(fullname),
            decision TEXT NOT NULL CHECK (decision IN ('confirm', 'dismiss')),
            true_medium TEXT NOT NULL,
            stated TEXT,
            predicted TEXT,
            confidence FLOAT,
            verdict TEXT,
            model_version TEXT,
            moderator TEXT NOT NULL,
            note TEXT,
            created_at FLOAT NOT NULL
        )
        """
    )
    db["reviews"].create_index(["submission", "id"])
    db["reviews"].create_index(["created_at"])
    db.create_view(
        "latest_reviews",
        """
        SELECT r.*
        FROM reviews r
        JOIN (SELECT submission, MAX(id) AS id FROM reviews GROUP BY submission) last
          ON last.id = r.id
        """,
    )
    db.create_view(
        "review_labels",
        """
        SELECT r.submission, i.id AS image_id, i.position, i.sha256, i.path, r.true_medium,
               r.decision, r.moderator, r.created_at AS reviewed_at
        FROM latest_reviews r
        JOIN images i ON i.submission = r.submission AND i.status = 'ok'
        """,
    )
    db.create_view(
        "flag_reviews",
        """
        SELECT s.fullname, s.subreddit, s.title, s.author, s.permalink, s.created_utc,
               v.kind AS verdict, v.stated, v.predicted, v.confidence, v.model_version,
               r.decision, r.true_medium, r.moderator, r.note, r.created_at AS reviewed_at
        FROM verdicts v
        JOIN submissions s ON s.fullname = v.submission
        LEFT JOIN latest_reviews r ON r.submission = v.submission
        WHERE v.kind IN ('mismatch', 'uncertain')
        """,
    )


@migrations()
def m004_learning(db: Database) -> None:
    """The learning loop: collected history, the fixed evaluation split, model runs and the
    champion's history, and a view of every label candidate (see ``modbot.learning.labels``).

    ``collect_runs``: one row per ``modbot collect`` run (what was asked, where the listing
    cursor is, counts, status ``running`` | ``done`` | ``exhausted`` | ``stopped`` | ``failed``).

    ``collected_posts``: one row per submission ``modbot collect`` kept or tried to keep: its
    stated medium (``stated_medium``/``stated_source``, as the daemon reads it), the first image
    (``image_url``; ``sha256``/``path`` in the content-addressed cache) and ``status`` (``ok``, or
    the ``ImageError`` reason / skip reason). Separate from ``submissions``: collected history
    is never judged or acted on.

    ``label_splits``: which side of the fixed evaluation split an image (by ``sha256``, so a
    re-posted image cannot be on both sides) is on: ``train`` or ``eval``, assigned once,
    stratified by the medium it had then (``medium``), never changed.

    ``models``: one row per retraining run and per adopted baseline: ``version`` (the challenger;
    NULL when no model was trained), ``status`` (``running`` | ``promoted`` | ``refused`` |
    ``skipped`` | ``failed`` | ``baseline``), ``reason``, ``trigger`` (``schedule`` | ``cli`` |
    ...), ``champion_version`` it was compared with, ``labels`` (JSON list of its classes),
    ``cutoff`` (labels recorded up to this Unix time were used), timestamps (Unix seconds) and
    ``duration_s``, ``n_train``/``n_eval``, ``data_counts`` (JSON: per split and medium, per
    label source, skipped images by reason), both models' ``*_metrics`` (JSON
    ``classification_report`` on the evaluation set) and macro-F1, ``params`` (JSON training
    settings), ``path`` of the model directory, ``error``.

    ``champion_history``: every change of the champion (``promoted``, ``rollback``), with who
    and when (Unix seconds).

    View ``label_candidates``: one row per (image, source of a medium for it): moderator
    reviews (``review``: every decision, ``detail`` = decision), stated media of processed
    submissions (``stated``: ``detail`` = the verdict kind, ``match`` = the model agreed) and
    of collected posts (``collected``: ``detail`` = stated source). ``modbot.learning.labels`` applies
    the precedence and the configured policy.
    """
    db["collect_runs"].create(
        {
            "id": int,
            "subreddit": str,
            "listing": str,  # new | top | search
            "query": str,  # search query (listing = search)
            "time_filter": str,  # top/search: hour day week month year all
            "per_medium": int,
            "media": str,  # JSON list of target media
            "status": str,
            "cursor": str,  # fullname of the last submission read (Reddit's `after`)
            "scanned": int,  # submissions read from the listing
            "kept": int,  # submissions kept by this run (image cached)
            "error": str,
            "started_at": float,
            "updated_at": float,
            "finished_at": float,
        },
        pk="id",
        not_null={"subreddit", "listing", "per_medium", "media", "status", "started_at"},
        defaults={"scanned": 0, "kept": 0},
    )
    db["collected_posts"].create(
        {
            "fullname": str,
            "run_id": int,
            "subreddit": str,
            "id": str,
            "title": str,
            "author": str,
            "permalink": str,
            "link_flair_text": str,
            "created_utc": float,
            "stated_medium": str,
            "stated_source": str,
            "image_url": str,
            "status": str,  # ok | <ImageError reason> | <resolve skip reason>
            "error": str,
            "sha256": str,
            "path": str,
            "width": int,
            "height": int,
            "collected_at": float,
        },
        pk="fullname",
        foreign_keys=[("run_id", "collect_runs", "id")],
        not_null={"run_id", "subreddit", "stated_medium", "status", "collected_at"},
    )
    db["collected_posts"].create_index(["subreddit", "stated_medium", "status"])
    db["collected_posts"].create_index(["sha256"])

    db.execute(
        """
        CREATE TABLE label_splits (
            sha256 TEXT PRIMARY KEY,
            split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
            medium TEXT NOT NULL,
            assigned_at FLOAT NOT NULL
        )
        """
    )
    db["models"].create(
        {
            "id": int,
            "version": str,
            "status": str,
            "reason": str,
            "trigger": str,
            "champion_version": str,
            "labels": str,
            "cutoff": float,
            "started_at": float,
            "train_started_at": float,
            "train_finished_at": float,
            "finished_at": float,
            "duration_s": float,
            "n_train": int,
            "n_eval": int,
            "data_counts": str,
            "champion_metrics": str,
            "challenger_metrics": str,
            "champion_macro_f1": float,
            "challenger_macro_f1": float,
            "params": str,
            "path": str,
            "error": str,
        },
        pk="id",
        not_null={"status", "trigger", "started_at"},
    )
    db["models"].create_index(["version"])
    db["models"].create_index(["status"])
    db["champion_history"].create(
        {"id": int, "version": str, "event": str, "run_id": int, "by": str, "note": str, "at": float},
        pk="id",
        not_null={"version", "event", "at"},
    )
    db.create_view(
        "label_candidates",
        """
        SELECT i.sha256, i.path, i.url, r.true_medium AS medium, 'review' AS source,
               r.submission, r.created_at AS labelled_at, r.decision AS detail, r.id AS ref
        FROM reviews r
        JOIN images i ON i.submission = r.submission AND i.status = 'ok'
        WHERE i.sha256 IS NOT NULL
        UNION ALL
        SELECT i.sha256, i.path, i.url, s.stated_medium, 'stated', s.fullname, s.first_seen_at,
               v.kind, NULL
        FROM submissions s
        JOIN images i ON i.submission = s.fullname AND i.status = 'ok'
        LEFT JOIN verdicts v ON v.submission = s.fullname
        WHERE i.sha256 IS NOT NULL AND s.stated_medium IS NOT NULL AND s.stated_medium != 'unknown'
        UNION ALL
        SELECT c.sha256, c.path, c.image_url, c.stated_medium, 'collected', c.fullname,
               c.collected_at, c.stated_source, c.run_id
        FROM collected_posts c
        WHERE c.status = 'ok' AND c.sha256 IS NOT NULL AND c.stated_medium != 'unknown'
        """,
    )


@migrations()
def m005_modmail_digests(db: Database) -> None:
    """Table digests: one row per day's modmail digest (``modbot.digest``), claimed before it
    is sent, like ``actions``: the primary key (day) keeps it from ever being sent twice.
    Action kinds added with it (no schema change): ``remove``, ``removal_message`` and
    ``note:<action>`` (a mod note on the author for that action)."""
    db["digests"].create(
        {
            "day": str,  # YYYY-MM-DD (UTC), the day reported
            "status": str,  # intent | dry_run | sent | failed | unknown
            "subreddit": str,
            "recipient": str,
            "subject": str,
            "body": str,
            "n_flags": int,
            "reddit_id": str,  # the modmail conversation's id, when sent
            "error": str,
            "created_at": float,
            "updated_at": float,
        },
        pk="day",
        not_null={"status", "created_at"},
    )


@migrations()
def m006_backlog_gaps_and_report_indexes(db: Database) -> None:
    """Stream backlog gaps, and the indexes that keep ``modbot report``/``review`` fast on
    millions of submissions (issue 14).

    ``backlog_gaps``: one row per cold start that could not reach back to a recorded submission
    (Reddit lists at most ~1,000 posts): ``subreddits`` watched, ``oldest_fullname`` /
    ``oldest_created_utc`` (Unix seconds) of the oldest submission Reddit still listed,
    ``newest_recorded_utc`` (Unix seconds) of the newest one recorded before — posts between
    the two were never seen — ``pages`` and ``posts`` read, ``reason`` (``listing_end`` or
    ``page_limit``), ``detected_at`` (Unix seconds).

    Indexes: ``idx_submissions_report`` covers every column the report's pass over
    submissions reads (period filter first), so that pass never reads the rows (with their
    raw JSON); ``idx_submissions_author`` counts an author's posts; ``idx_submissions_subreddit``
    answers "anything recorded of this subreddit" (gap detection). View ``latest_reviews`` is
    redefined with a correlated ``MAX(id)`` on ``reviews(submission, id)`` (same rows), so
    joining it no longer re-runs a ``GROUP BY`` over all reviews per row.
    """
    db["backlog_gaps"].create(
        {
            "id": int,
            "subreddits": str,
            "oldest_fullname": str,
            "oldest_created_utc": float,
            "newest_recorded_utc": float,
            "pages": int,
            "posts": int,
            "reason": str,  # listing_end | page_limit
            "detected_at": float,
        },
        pk="id",
        not_null={"subreddits", "pages", "posts", "reason", "detected_at"},
    )
    db.execute(
        "CREATE INDEX idx_submissions_report ON submissions (created_utc, subreddit, status, "
        "stated_medium, stated_source, author, fullname, stated_raw)")
    db.execute("CREATE INDEX idx_submissions_author ON submissions (author, created_utc)")
    db.execute("CREATE INDEX idx_submissions_subreddit ON submissions (subreddit COLLATE NOCASE)")
    db.execute("DROP VIEW IF EXISTS latest_reviews")
    db.execute(
        """
        CREATE VIEW latest_reviews AS
        SELECT r.*
        FROM reviews r
        WHERE r.id = (SELECT MAX(r2.id) FROM reviews r2 WHERE r2.submission = r.submission)
        """
    )


@migrations()
def m007_modlog_labels(db: Database) -> None:
    """Moderators' actions on Reddit as labels (``modbot.learning.modlog``, issue 11).

    ``reviews`` gains ``source`` (``cli``: ``modbot review``, the default for every row so far;
    ``modlog``: a moderator's action read from the subreddit's moderation log) and
    ``modlog_id`` (the mod log entry's id, ``ModAction_…``; unique, so an entry never becomes
    two labels). Flag precision (``modbot report``) counts both sources alike: the latest
    decision per submission is in force.

    ``modlog_entries``: every mod log entry read (primary key ``id``, the entry's id: read once,
    ever), its fields (``subreddit``, ``action``, ``mod``, ``target_fullname``, ``created_utc``
    Unix seconds, ``details``, ``description``), the ``flair`` read for an ``editflair``,
    ``outcome`` (``label``: a ``reviews`` row ``review_id`` was written; ``ignored``), ``reason``
    (why ignored, or the decision) and ``read_at`` (Unix seconds). ``modlog_cursors``: per
    subreddit and action, the newest entry read (``newest_id``, ``newest_created_utc``), where
    the next read stops.

    View ``label_candidates`` is redefined: reviews from the mod log have source ``modlog``
    (moderator decisions both; ``modbot.learning.labels`` ranks them alike, latest wins).
    """
    db.execute("ALTER TABLE reviews ADD COLUMN source TEXT NOT NULL DEFAULT 'cli'")
    db.execute("ALTER TABLE reviews ADD COLUMN modlog_id TEXT")
    db.execute("CREATE UNIQUE INDEX idx_reviews_modlog_id ON reviews (modlog_id)")
    db["modlog_entries"].create(
        {
            "id": str, "subreddit": str, "action": str, "mod": str, "target_fullname": str,
            "created_utc": float, "details": str, "description": str, "flair": str,
            "outcome": str, "reason": str, "review_id": int, "read_at": float,
        },
        pk="id",
        not_null={"subreddit", "action", "outcome", "read_at"},
    )
    db["modlog_entries"].create_index(["target_fullname"])
    db["modlog_cursors"].create(
        {"subreddit": str, "action": str, "newest_id": str, "newest_created_utc": float,
         "updated_at": float},
        pk=("subreddit", "action"),
        not_null={"newest_id", "updated_at"},
    )
    db.execute("DROP VIEW IF EXISTS label_candidates")
    db.create_view(
        "label_candidates",
        """
        SELECT i.sha256, i.path, i.url, r.true_medium AS medium,
               CASE WHEN r.source = 'modlog' THEN 'modlog' ELSE 'review' END AS source,
               r.submission, r.created_at AS labelled_at, r.decision AS detail, r.id AS ref
        FROM reviews r
        JOIN images i ON i.submission = r.submission AND i.status = 'ok'
        WHERE i.sha256 IS NOT NULL
        UNION ALL
        SELECT i.sha256, i.path, i.url, s.stated_medium, 'stated', s.fullname, s.first_seen_at,
               v.kind, NULL
        FROM submissions s
        JOIN images i ON i.submission = s.fullname AND i.status = 'ok'
        LEFT JOIN verdicts v ON v.submission = s.fullname
        WHERE i.sha256 IS NOT NULL AND s.stated_medium IS NOT NULL AND s.stated_medium != 'unknown'
        UNION ALL
        SELECT c.sha256, c.path, c.image_url, c.stated_medium, 'collected', c.fullname,
               c.collected_at, c.stated_source, c.run_id
        FROM collected_posts c
        WHERE c.status = 'ok' AND c.sha256 IS NOT NULL AND c.stated_medium != 'unknown'
        """,
    )


@migrations()
def m008_repost_fingerprints(db: Database) -> None:
    """Reposts and stolen art (``modbot.repost``, issue 16).

    ``repost_fingerprints``: the perceptual fingerprint of every image the daemon fetched
    (``source`` ``daemon``) or ``modbot collect`` collected (``collect``): ``id`` (the item id
    of the in-memory index), the post (``submission`` fullname, ``post_id``, ``subreddit``,
    ``author``, ``artist`` = the title's artist field, ``created_utc`` Unix seconds,
    ``permalink``), ``position`` (the n-th fetched image of the post), ``sha256``, ``version``
    (``modbot.fingerprint.FINGERPRINT_VERSION``), ``fp`` (802-byte blob:
    ``Fingerprint.to_blob``) and ``recorded_at``. One row per (submission, source, position).

    ``repost_findings``: one row per (submission, earlier submission) that matched: ``kind``
    (``same_author`` | ``other_author`` | ``known_original``), this post's image ``position``,
    the earlier post (``match_fingerprint`` row, ``match_submission``, ``match_post_id``,
    ``match_author``, ``match_artist``, ``match_created_utc``, ``match_permalink``,
    ``match_source``), this post's ``author``/``artist``, ``distance`` (bits of 256),
    ``mirrored`` (0/1) and ``created_at``.
    """
    db["repost_fingerprints"].create(
        {
            "id": int, "submission": str, "source": str, "position": int, "post_id": str,
            "subreddit": str, "author": str, "artist": str, "created_utc": float,
            "permalink": str, "sha256": str, "version": int, "fp": bytes, "recorded_at": float,
        },
        pk="id",
        not_null={"submission", "source", "position", "version", "fp", "recorded_at"},
    )
    db["repost_fingerprints"].create_index(["submission", "source", "position"], unique=True)
    db["repost_findings"].create(
        {
            "id": int, "submission": str, "position": int, "kind": str, "author": str,
            "artist": str, "match_fingerprint": int, "match_submission": str,
            "match_post_id": str, "match_author": str, "match_artist": str,
            "match_created_utc": float, "match_permalink": str, "match_source": str,
            "distance": int, "mirrored": int, "created_at": float,
        },
        pk="id",
        foreign_keys=[("submission", "submissions", "fullname")],
        not_null={"submission", "kind", "match_submission", "distance", "mirrored", "created_at"},
    )
    db["repost_findings"].create_index(["submission", "match_submission"], unique=True)
    db["repost_findings"].create_index(["kind"])
