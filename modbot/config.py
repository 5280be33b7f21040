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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modbot.configcheck import MODE_KEYS, validate
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
    """``[storage]``: where the database, image cache and model live (paths); the image
    cache's limit (bytes, 0 = none) and how often the daemon prunes it (seconds, 0 = never)."""

    database: str = _default("storage", "database")
    image_cache: str = _default("storage", "image_cache")
    image_cache_max_bytes: int = _default("storage", "image_cache_max_bytes")
    image_cache_prune_interval_s: float = _default("storage", "image_cache_prune_interval_s")
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
    keep_versions: int = _default("learning", "keep_versions")
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
    recipe: str = _default("learning", "recipe")
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
