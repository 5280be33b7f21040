"""What each configuration value may be: the checks types alone cannot make, in one place.

:func:`validate` is called by :func:`modbot.config.load_config` and ``Config.replace``, so
``modbot run``, SIGHUP and ``modbot config check`` accept and refuse the same configurations.
Every refusal is a ``ConfigError`` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from modbot.cron import cron_trigger
from modbot.domain import MEDIA
from modbot.errors import ConfigError

if TYPE_CHECKING:
    from modbot.config import Config

# --------------------------------------------------------------------------------------------

#: Placeholders of ``[actions]`` templates with sample values (the real ones come from the
#: verdict: see ``modbot.act.render``); a template is checked by rendering it with these.
TEMPLATE_SAMPLE: dict[str, Any] = {
    "predicted": "painting", "confidence": 0.93, "stated": "digital",
    "model_version": "sample-1", "title": "Sample title, me, digital, 2026",
}
#: Extra placeholders of the note, removal message and footer templates (sample values).
EXTRA_SAMPLE: dict[str, Any] = {"action": "report", "subreddit": "Art"}
#: Modes of ``[actions] notes``/``remove`` and ``[digest] digest``: off, record only, send.
MODES = ("off", "dry_run", "on")
#: Keys whose value is one of :data:`MODES` (``true``/``false`` are read as on/off).
MODE_KEYS = (("actions", "notes"), ("actions", "remove"), ("digest", "digest"),
             ("reposts", "report"))
#: Labels Reddit accepts on a mod note ("" = none).
NOTE_LABELS = ("", "ABUSE_WARNING", "BAN", "BOT_BAN", "HELPFUL_USER", "PERMA_BAN",
               "SOLID_CONTRIBUTOR", "SPAM_WARNING", "SPAM_WATCH")
#: ``type`` values of Reddit's removal message.
REMOVAL_MESSAGE_TYPES = ("private", "private_exposed", "public", "public_as_subreddit")
_SUBREDDITS = re.compile(r"[A-Za-z0-9_]{2,21}(\+[A-Za-z0-9_]{2,21})*")
#: ``[learning] stated_labels`` policies (see ``modbot.learning.labels.LabelPolicy``).
STATED_LABELS = ("none", "agreed", "unflagged", "all")
#: ``[learning] recipe`` values (see ``modbot.learning.retrain``).
RECIPES = ("auto", "head", "train")


def validate(config: Config) -> Config:
    """Check the values of every section (ranges, media names, templates); return ``config``.

    Raises ``ConfigError`` naming the key, the value and what is allowed. Probabilities and
    shares are 0–1, seconds > 0 (``interval_s`` ≥ 0), counts ≥ 1; media must be canonical
    (:data:`modbot.domain.MEDIA`); templates must render with :data:`TEMPLATE_SAMPLE`.
    """
    for check in (_check_reddit, _check_storage, _check_images, _check_judge, _check_actions, _check_reddit_tools,
                  _check_digest, _check_medium, _check_daemon, _check_learning, _check_reposts):
        check(config)
    return config


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def _positive(section: Any, name: str, keys: tuple[str, ...], *, minimum: float = 0.0,
              inclusive: bool = False) -> None:
    for key in keys:
        value = getattr(section, key)
        ok = value >= minimum if inclusive else value > minimum
        _require(ok and value == value and value != float("inf"), f"[{name}] {key}", value,
                 f"a finite number {'>=' if inclusive else '>'} {minimum:g}")


def _share(name: str, key: str, value: Any) -> None:
    _require(isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0,
             f"[{name}] {key}", value, "a probability from 0 to 1")


def _media(name: str, key: str, media: Any, *, extra: tuple[str, ...] = ()) -> None:
    for medium in media:
        _require(medium in (*MEDIA, *extra), f"[{name}] {key}", medium,
                 "one of " + ", ".join((*MEDIA, *extra)))


def _check_reddit(config: Config) -> None:
    r = config.reddit
    _require(bool(_SUBREDDITS.fullmatch(r.subreddits)), "[reddit] subreddits", r.subreddits,
             'subreddit names joined with "+", e.g. "Art+ArtistLounge"')
    _require(bool(r.user_agent.strip()), "[reddit] user_agent", r.user_agent, "a non-empty string")
    _require(1 <= r.requests_per_minute <= 100, "[reddit] requests_per_minute",
             r.requests_per_minute, "1-100 (Reddit allows 100 per minute)")
    _positive(r, "reddit", ("request_timeout",))
    _positive(r, "reddit", ("poll_interval",), inclusive=True)


def _check_storage(config: Config) -> None:
    st = config.storage
    _require(st.image_cache_max_bytes >= 0, "[storage] image_cache_max_bytes",
             st.image_cache_max_bytes, "a whole number of bytes >= 0 (0 = no limit)")
    _positive(st, "storage", ("image_cache_prune_interval_s",), inclusive=True)


def _check_images(config: Config) -> None:
    im = config.images
    _positive(im, "images", ("connect_timeout", "read_timeout", "total_timeout"))
    _positive(im, "images", ("max_bytes", "max_images_per_post", "max_pixels", "max_side"),
              minimum=1, inclusive=True)


def _check_judge(config: Config) -> None:
    j = config.judge
    _share("judge", "default_threshold", j.default_threshold)
    _share("judge", "false_flag_budget", j.false_flag_budget)
    _media("judge", "thresholds", j.thresholds)
    for medium, value in j.thresholds.items():
        _share("judge", f"thresholds.{medium}", value)


def _check_actions(config: Config) -> None:
    for key in ("report_template", "comment_template"):
        template = getattr(config.actions, key)
        try:
            template.format(**TEMPLATE_SAMPLE)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ConfigError(
                f"[actions] {key} cannot be filled in ({type(exc).__name__}: {exc}); placeholders: "
                + " ".join("{" + k + "}" for k in TEMPLATE_SAMPLE) + " (confidence is 0-1, e.g. {confidence:.0%})"
            ) from exc


def _check_reddit_tools(config: Config) -> None:
    """Mod notes, removal and quiet comments: modes, label, threshold, templates."""
    a = config.actions
    for key in ("notes", "remove"):
        _require(getattr(a, key) in MODES, f"[actions] {key}", getattr(a, key), ", ".join(MODES))
    _require(a.note_label in NOTE_LABELS, "[actions] note_label", a.note_label,
             '"" or one of ' + ", ".join(NOTE_LABELS[1:]))
    _share("actions", "remove_threshold", a.remove_threshold)
    _require(a.removal_message_type in REMOVAL_MESSAGE_TYPES, "[actions] removal_message_type",
             a.removal_message_type, ", ".join(REMOVAL_MESSAGE_TYPES))
    for key in ("note_template", "removal_message", "comment_footer"):
        try:
            getattr(a, key).format(**TEMPLATE_SAMPLE, **EXTRA_SAMPLE)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ConfigError(
                f"[actions] {key} cannot be filled in ({type(exc).__name__}: {exc}); placeholders: "
                + " ".join("{" + k + "}" for k in (*TEMPLATE_SAMPLE, *EXTRA_SAMPLE))) from exc
    _require(bool(a.note_template.strip()), "[actions] note_template", a.note_template,
             "a non-empty text")


def _check_digest(config: Config) -> None:
    d = config.digest
    _require(d.digest in MODES, "[digest] digest", d.digest, ", ".join(MODES))
    _positive(d, "digest", ("max_items",), minimum=1, inclusive=True)
    _require(bool(d.subject.strip()), "[digest] subject", d.subject, "a non-empty text")
    try:
        d.subject.format(day="2026-01-01")
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(f"[digest] subject cannot be filled in ({type(exc).__name__}: {exc}); "
                          "placeholder: {day}") from exc
    try:
        cron_trigger(d.cron)
    except ValueError as exc:
        raise ConfigError(f"[digest] cron = {d.cron!r} is not a crontab line "
                          f"(minute hour day month weekday): {exc}") from exc


def _check_medium(config: Config) -> None:
    _media("medium", "vocabulary", config.medium.vocabulary.values(), extra=("unknown",))


def _check_daemon(config: Config) -> None:
    _positive(config.daemon, "daemon", ("retry_base_s",))
    _positive(config.daemon, "daemon", ("max_attempts",), minimum=1, inclusive=True)


def _check_learning(config: Config) -> None:
    lr = config.learning
    _require(lr.stated_labels in STATED_LABELS, "[learning] stated_labels", lr.stated_labels,
             " or ".join(STATED_LABELS))
    _require(lr.recipe in RECIPES, "[learning] recipe", lr.recipe, " or ".join(RECIPES))
    _media("learning", "trusted_media", lr.trusted_media)
    _media("learning", "recall_floors", lr.recall_floors)
    _require(0.0 < lr.eval_fraction < 1.0, "[learning] eval_fraction", lr.eval_fraction,
             "a share between 0 and 1 (exclusive)")
    for key in ("margin", "recall_floor"):
        _share("learning", key, getattr(lr, key))
    for medium, floor in lr.recall_floors.items():
        _share("learning", f"recall_floors.{medium}", floor)
    _positive(lr, "learning", ("min_train_labels", "min_eval_labels", "new_medium_min_labels",
                               "batch_size", "threads"), minimum=1, inclusive=True)
    _positive(lr, "learning", ("epochs",), inclusive=True)
    _require(lr.image_size == 0 or lr.image_size >= 8, "[learning] image_size", lr.image_size,
             "0 (the architecture's default) or at least 8 pixels")
    _require(0 <= lr.nice <= 19, "[learning] nice", lr.nice, "0-19")
    _require(lr.keep_versions >= 0, "[learning] keep_versions", lr.keep_versions,
             "a whole number >= 0 (0 = keep every version)")
    _positive(lr, "learning", ("modlog_interval_s",), inclusive=True)
    _require(all(r.strip() for r in lr.modlog_removal_reasons), "[learning] modlog_removal_reasons",
             lr.modlog_removal_reasons, "removal reason ids or titles (no empty names)")
    _positive(lr, "learning", ("timeout_s", "watch_interval_s", "misfire_grace_s"))
    _positive(lr, "learning", ("interval_s",), inclusive=True)
    if lr.interval_s == 0:
        try:
            cron_trigger(lr.cron)
        except ValueError as exc:
            raise ConfigError(f"[learning] cron = {lr.cron!r} is not a crontab line "
                              f"(minute hour day month weekday): {exc}") from exc


#: Kinds of repost findings (``modbot.repost.KINDS``), for ``[reposts] report_kinds``.
REPOST_KINDS = ("same_author", "other_author", "known_original")
#: Placeholders of ``[reposts] report_template`` with sample values (see ``modbot.repost``).
REPOST_SAMPLE: dict[str, Any] = {
    "kind": "other_author", "original_link": "https://redd.it/abc123",
    "original_author": "sample_artist", "original_date": "2026-01-01", "distance": 12,
    "similarity": 0.95, "mirrored": False, "title": "Sample title, me, digital, 2026",
}


def _check_reposts(config: Config) -> None:
    rp = config.reposts
    _require(0 <= rp.max_distance <= 256, "[reposts] max_distance", rp.max_distance,
             "0-256 bits (44 measured best; see bench/repost.py)")
    _positive(rp, "reposts", ("window_days",), minimum=1, inclusive=True)
    _require(rp.report in MODES, "[reposts] report", rp.report, ", ".join(MODES))
    _require(all(k in REPOST_KINDS for k in rp.report_kinds), "[reposts] report_kinds",
             rp.report_kinds, "a list of " + ", ".join(REPOST_KINDS))
    _require(bool(rp.report_template.strip()), "[reposts] report_template", rp.report_template,
             "a non-empty text")
    try:
        rp.report_template.format(**REPOST_SAMPLE)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(f"[reposts] report_template cannot be filled in ({type(exc).__name__}: "
                          f"{exc}); placeholders: " + " ".join("{" + k + "}" for k in REPOST_SAMPLE)
                          ) from exc