"""Configuration: packaged defaults < TOML file < environment variables < explicit overrides.

The file is found by ``--config PATH``, else ``$MODBOT_CONFIG``, else none (defaults only).
Every key is documented in ``modbot/default_config.toml`` (the packaged defaults, printed by
``modbot config --defaults``). An environment variable ``MODBOT_<SECTION>_<KEY>`` overrides
``[section] key`` (e.g. ``MODBOT_ACTIONS_REPORT=true``); values are parsed as TOML scalars,
falling back to a plain string.

Reddit credentials are *not* modbot settings: they follow praw's conventions (a ``praw.ini``
site named by ``[reddit] site``, or ``praw_client_id`` / ``praw_client_secret`` /
``praw_username`` / ``praw_password`` environment variables) so they never pass through
this module, the logs or the database.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modbot.cron import cron_trigger
from modbot.domain import MEDIA
from modbot.errors import ConfigError


def default_config_text() -> str:
    """The packaged ``default_config.toml``: every key, its default and what it means.

    It is the one source of the defaults: the dataclasses below take theirs from it.
    """
    return resources.files("modbot").joinpath("default_config.toml").read_text(encoding="utf-8")


_DEFAULTS: dict[str, dict[str, Any]] = tomllib.loads(default_config_text())


def _default(section: str, key: str) -> Any:
    """A dataclass field whose default is ``[section] key`` of ``default_config.toml``
    (lists become tuples, tables dicts, integers given for float keys stay as written)."""
    value = _DEFAULTS[section][key]
    if isinstance(value, list):
        return field(default_factory=lambda: tuple(value))
    if isinstance(value, dict):
        return field(default_factory=lambda: dict(value))
    return field(default=value)


@dataclass(frozen=True)
class RedditConfig:
    """``[reddit]``: which praw site to use, what to watch, and (sandbox only) endpoint URLs."""

    site: str = _default("reddit", "site")
    user_agent: str = _default("reddit", "user_agent")
    subreddits: str = _default("reddit", "subreddits")
    oauth_url: str = _default("reddit", "oauth_url")
    reddit_url: str = _default("reddit", "reddit_url")
    short_url: str = _default("reddit", "short_url")
    request_timeout: float = _default("reddit", "request_timeout")
    poll_interval: float = _default("reddit", "poll_interval")
    requests_per_minute: int = _default("reddit", "requests_per_minute")


@dataclass(frozen=True)
class StorageConfig:
    """``[storage]``: where the database, image cache and model live (paths)."""

    database: str = _default("storage", "database")
    image_cache: str = _default("storage", "image_cache")
    model_dir: str = _default("storage", "model_dir")


@dataclass(frozen=True)
class ImagesConfig:
    """``[images]``: download limits (bytes, seconds) and hosts exempt from the address guard."""

    max_bytes: int = _default("images", "max_bytes")
    connect_timeout: float = _default("images", "connect_timeout")
    read_timeout: float = _default("images", "read_timeout")
    total_timeout: float = _default("images", "total_timeout")
    max_images_per_post: int = _default("images", "max_images_per_post")
    max_pixels: int = _default("images", "max_pixels")
    max_side: int = _default("images", "max_side")
    allow_hosts: tuple[str, ...] = _default("images", "allow_hosts")


@dataclass(frozen=True)
class JudgeConfig:
    """``[judge]``: when a post is flagged — the probability of its stated medium (0–1) below
    which it is a ``mismatch`` — and the false-flag budget thresholds are fitted to."""

    default_threshold: float = _default("judge", "default_threshold")
    thresholds: dict[str, float] = _default("judge", "thresholds")
    false_flag_budget: float = _default("judge", "false_flag_budget")

    def threshold_for(self, medium: str, model_thresholds: Mapping[str, float] | None = None) -> float:
        """The flag threshold for a post stating ``medium``: this config's own entry, else the
        model's fitted one (``model_thresholds``, from its ``labels.json``), else
        ``default_threshold``."""
        if medium in self.thresholds:
            return float(self.thresholds[medium])
        if model_thresholds and medium in model_thresholds:
            return float(model_thresholds[medium])
        return float(self.default_threshold)


@dataclass(frozen=True)
class ActionsConfig:
    """``[actions]``: what to do on a mismatch. Both off = dry-run (intent recorded only)."""

    report: bool = _default("actions", "report")
    comment: bool = _default("actions", "comment")
    report_template: str = _default("actions", "report_template")
    comment_template: str = _default("actions", "comment_template")
    distinguish: bool = _default("actions", "distinguish")
    sticky: bool = _default("actions", "sticky")
    lock: bool = _default("actions", "lock")
    comment_footer: str = _default("actions", "comment_footer")
    notes: str = _default("actions", "notes")
    note_label: str = _default("actions", "note_label")
    note_template: str = _default("actions", "note_template")
    remove: str = _default("actions", "remove")
    remove_threshold: float = _default("actions", "remove_threshold")
    removal_reason: str = _default("actions", "removal_reason")
    removal_message: str = _default("actions", "removal_message")
    removal_message_title: str = _default("actions", "removal_message_title")
    removal_message_type: str = _default("actions", "removal_message_type")


@dataclass(frozen=True)
class DigestConfig:
    """``[digest]``: the daily modmail digest to the moderators (``modbot.digest``)."""

    digest: str = _default("digest", "digest")
    cron: str = _default("digest", "cron")
    recipient: str = _default("digest", "recipient")
    subject: str = _default("digest", "subject")
    max_items: int = _default("digest", "max_items")


@dataclass(frozen=True)
class MediumConfig:
    """``[medium]``: extra vocabulary terms (lower-case phrase → canonical medium)."""

    vocabulary: dict[str, str] = _default("medium", "vocabulary")


@dataclass(frozen=True)
class DaemonConfig:
    """``[daemon]``: retries of submissions whose images failed retryably (seconds, count)."""

    retry_base_s: float = _default("daemon", "retry_base_s")
    max_attempts: int = _default("daemon", "max_attempts")

    def next_attempt_at(self, attempt: int, now: float) -> float:
        """When a submission whose attempt number ``attempt`` (1-based) failed retryably is
        tried again: ``now + retry_base_s · 2^(attempt-1)`` (unix seconds)."""
        return now + self.retry_base_s * 2 ** (max(1, attempt) - 1)


@dataclass(frozen=True)
class LearningConfig:
    """``[learning]``: which media count as labels, the retraining schedule, the training
    settings of challengers and the promotion gates (see ``modbot.learning.retrain``)."""

    enabled: bool = _default("learning", "enabled")
    cron: str = _default("learning", "cron")
    interval_s: float = _default("learning", "interval_s")
    misfire_grace_s: float = _default("learning", "misfire_grace_s")
    watch_interval_s: float = _default("learning", "watch_interval_s")
    models_dir: str = _default("learning", "models_dir")
    stated_labels: str = _default("learning", "stated_labels")
    trusted_media: tuple[str, ...] = _default("learning", "trusted_media")
    collected_labels: bool = _default("learning", "collected_labels")
    eval_fraction: float = _default("learning", "eval_fraction")
    min_train_labels: int = _default("learning", "min_train_labels")
    min_eval_labels: int = _default("learning", "min_eval_labels")
    new_medium_min_labels: int = _default("learning", "new_medium_min_labels")
    margin: float = _default("learning", "margin")
    recall_floor: float = _default("learning", "recall_floor")
    recall_floors: dict[str, float] = _default("learning", "recall_floors")
    arch: str = _default("learning", "arch")
    image_size: int = _default("learning", "image_size")
    epochs: int = _default("learning", "epochs")
    batch_size: int = _default("learning", "batch_size")
    seed: int = _default("learning", "seed")
    threads: int = _default("learning", "threads")
    nice: int = _default("learning", "nice")
    timeout_s: float = _default("learning", "timeout_s")
    modlog_interval_s: float = _default("learning", "modlog_interval_s")
    modlog_removal_reasons: tuple[str, ...] = _default("learning", "modlog_removal_reasons")

    def floor_for(self, medium: str) -> float:
        """The recall floor of ``medium``: its own ``recall_floors`` entry, else ``recall_floor``."""
        return float(self.recall_floors.get(medium, self.recall_floor))


@dataclass(frozen=True)
class RepostsConfig:
    """``[reposts]``: repost / stolen-art findings (``modbot.repost``): on or off, the match
    threshold (bits of 256), the same-author window (days) and the report on Reddit."""

    enabled: bool = _default("reposts", "enabled")
    max_distance: int = _default("reposts", "max_distance")
    window_days: int = _default("reposts", "window_days")
    report: str = _default("reposts", "report")
    report_kinds: tuple[str, ...] = _default("reposts", "report_kinds")
    report_template: str = _default("reposts", "report_template")


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build it with :func:`load_config`."""

    reddit: RedditConfig = field(default_factory=RedditConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    medium: MediumConfig = field(default_factory=MediumConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    reposts: RepostsConfig = field(default_factory=RepostsConfig)
    source: str | None = None

    def replace(self, **sections: dict[str, Any]) -> Config:
        """A copy with keys of some sections replaced, e.g. ``replace(actions={"report": True})``.

        Raises ``ConfigError`` for an unknown section or key.
        """
        return validate(_apply(self, sections, origin="override"))


def load_config(path: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Load the configuration.

    ``path`` (else ``$MODBOT_CONFIG``) names a TOML file; env vars ``MODBOT_<SECTION>_<KEY>``
    override it. Relative storage paths stay relative to the working directory.
    Raises ``ConfigError`` if the file is missing or invalid, or names an unknown key.
    """
    env = dict(os.environ) if env is None else env
    path = path or env.get("MODBOT_CONFIG") or None
    config = Config()
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {p}") from exc
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {p}: {exc}") from exc
        config = _apply(config, data, origin=str(p))
        config = dataclasses.replace(config, source=str(p))
    overrides: dict[str, dict[str, Any]] = {}
    for section in _sections():
        sec_type = type(getattr(config, section))
        for f in dataclasses.fields(sec_type):
            var = f"MODBOT_{section}_{f.name}".upper()
            if var in env:
                overrides.setdefault(section, {})[f.name] = _parse_env(env[var])
    if overrides:
        config = _apply(config, overrides, origin="environment")
    return validate(config)


def _sections() -> list[str]:
    return [f.name for f in dataclasses.fields(Config) if f.name != "source"]


def _parse_env(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply(config: Config, data: dict[str, Any], *, origin: str) -> Config:
    changes: dict[str, Any] = {}
    for section, values in data.items():
        if section not in _sections():
            raise ConfigError(f"{origin}: unknown section [{section}] (known: {', '.join(_sections())})")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        current = getattr(config, section)
        known = {f.name: f for f in dataclasses.fields(current)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{origin}: unknown key {section}.{key} (known: {', '.join(known)})")
            kwargs[key] = _coerce(section, key, getattr(current, key), value, origin)
        changes[section] = dataclasses.replace(current, **kwargs)
    return dataclasses.replace(config, **changes)


def _coerce(section: str, key: str, default: Any, value: Any, origin: str) -> Any:
    where = f"{origin}: {section}.{key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if (section, key) in MODE_KEYS and isinstance(value, bool):
            return "on" if value else "off"  # a mode key written as true/false
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    return value


# --------------------------------------------------------------------------------------------
# Validation: what types alone cannot say. One place, used by load_config and Config.replace,
# so `modbot run`, SIGHUP and `modbot config check` accept and refuse the same configurations.
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
STATED_LABELS = ("none", "agreed", "all")


def validate(config: Config) -> Config:
    """Check the values of every section (ranges, media names, templates); return ``config``.

    Raises ``ConfigError`` naming the key, the value and what is allowed. Probabilities and
    shares are 0–1, seconds > 0 (``interval_s`` ≥ 0), counts ≥ 1; media must be canonical
    (:data:`modbot.domain.MEDIA`); templates must render with :data:`TEMPLATE_SAMPLE`.
    """
    for check in (_check_reddit, _check_images, _check_judge, _check_actions, _check_reddit_tools,
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
