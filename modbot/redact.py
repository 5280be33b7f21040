"""Keep Reddit credentials and tokens out of everything modbot writes.

A process-wide set of secret strings — the client secret and password handed to praw, and every
access/refresh token Reddit issues (reported by :class:`modbot.ratelimit.BudgetedRequestor`) —
is replaced by ``[REDACTED]`` in structlog events, stdlib log records (praw, prawcore, urllib3)
and uncaught-exception output. modbot never logs request headers or bodies in the first place;
this is the second line of defence for what libraries put into exception messages.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import urllib.parse
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"
#: Shorter values are not registered: masking e.g. "abc" everywhere would garble logs, and
#: real client secrets (27+ characters) and tokens are far longer.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()


def add_secret(value: Any) -> None:
    """Register a secret string (ignored when not a string or shorter than 6 characters),
    with the forms it takes in other text: its ``repr``/JSON escapes (quotes, backslashes,
    non-ASCII) and its URL encodings (``quote``, ``quote_plus``: a form body or query)."""
    if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.update(_forms(value))


def add_basic_auth(user: Any, password: Any) -> None:
    """Register the HTTP Basic credentials ``base64(user:password)`` of an OAuth client (the
    ``Authorization`` header of a token request) as a secret too."""
    if isinstance(user, str) and isinstance(password, str) and len(password) >= MIN_SECRET_LENGTH:
        add_secret(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))


def _forms(secret: str) -> set[str]:
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1],
             urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def add_secrets(values: Iterable[Any]) -> None:
    """Register several secrets (see :func:`add_secret`)."""
    for value in values:
        add_secret(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[REDACTED]`` (longest first)."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def structlog_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: redact every string value of the event (nested too). Put it
    after ``format_exc_info`` so rendered tracebacks are covered."""
    return {k: _scrub(v) for k, v in event_dict.items()}


class RedactingFilter(logging.Filter):
    """stdlib logging filter: formats the record's message and redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install() -> None:
    """Redact structlog output, stdlib logging and uncaught exceptions from now on.

    Call after logging is configured (``modbot.log.configure_logging``). Idempotent.
    """
    import structlog

    config = structlog.get_config()
    processors = list(config["processors"])
    if structlog_processor not in processors:
        # just before the renderer (the last processor), after exception formatting
        processors.insert(max(0, len(processors) - 1), structlog_processor)
        structlog.configure(processors=processors)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not getattr(sys.excepthook, "_modbot_redacting", False):
        previous = sys.excepthook

        def hook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            sys.stderr.write(redact(text))
            sys.stderr.flush()

        hook._modbot_redacting = True  # type: ignore[attr-defined]
        hook._previous = previous  # type: ignore[attr-defined]
        sys.excepthook = hook
