"""Text from the database or Reddit, made safe to print: control characters shown escaped,
rich markup neutralised.

A submission title, an author or moderator name, an error message or a file path is data: it
must neither move the cursor, recolour or retitle the moderator's terminal (escape sequences),
nor be read as rich markup (``[/bold]`` would raise ``MarkupError``). Cheap to import (rich's
markup module only when :func:`plain` is called).
"""

from __future__ import annotations

import re

#: C0 controls, DEL, C1 controls, and the Unicode bidirectional overrides/isolates (which can
#: make a title read differently from what it is).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f"
                                   "\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = False) -> str:
    """``text`` (``None`` → ``""``, anything else ``str()``) with every control character shown
    as its Python escape (ESC → ``\\x1b``, U+202E → ``\\u202e``); with ``multiline`` a plain
    newline is kept."""
    if text is None:
        return ""
    pattern = _CONTROL_KEEP_NEWLINE if multiline else _CONTROL
    return pattern.sub(_escaped, str(text))


def plain(text: object, *, multiline: bool = False) -> str:
    """:func:`printable`, then escaped for rich markup: safe inside ``console.print`` and in a
    table cell, shown exactly as stored (apart from the escaped controls)."""
    from rich.markup import escape

    return escape(printable(text, multiline=multiline))
