"""Logging setup: structlog to stdout (or another stream, e.g. stderr for ``modbot demo``) —
JSON lines when that stream is not a terminal (journald, files, pipes), coloured key=value lines
in a terminal. One canonical ``submission`` event per post.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


#: Libraries whose INFO lines are routine (APScheduler announces every job run): shown only
#: when the level is DEBUG.
CHATTY = ("apscheduler",)


def configure_logging(*, json: bool | None = None, level: str = "INFO",
                      stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger.

    ``json``: force JSON (True) or console (False) output; None = JSON unless ``stream`` is a
    TTY. ``level``: minimum level name (``DEBUG``, ``INFO``, ``WARNING`` …). praw/prawcore/
    urllib3 debug output is kept at WARNING so request details (which can include tokens) never
    reach the log; :data:`CHATTY` loggers log below WARNING only at DEBUG. ``stream``: where
    log lines go (default: ``sys.stdout`` at the time of the call).
    """
    stream = sys.stdout if stream is None else stream
    if json is None:
        json = not stream.isatty()
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    # Tracebacks are rendered to plain text *before* secrets are redacted, in both formats:
    # the console renderer's own (rich) tracebacks would show local variables — a client
    # secret among them — after redaction.
    renderer = (structlog.processors.JSONRenderer() if json else
                structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback))
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # stdlib records (praw, prawcore, APScheduler …) go through the same renderer, so the
    # output stays one JSON object per line; secrets are scrubbed here too (modbot.redact).
    from modbot.redact import structlog_processor as redact_processor

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact_processor, renderer],
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_modbot", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler._modbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(lvl)
    for noisy in ("praw", "prawcore", "urllib3", "requests", "PIL", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.NOTSET if lvl <= logging.DEBUG else logging.WARNING)
