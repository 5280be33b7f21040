"""Stated medium: normalise what the poster said to one canonical medium.

Pure text processing (no TensorFlow, no I/O except reading the packaged vocabulary).

Sources, in order of precedence (:func:`stated_medium`):

1. **Link flair** (``link_flair_text``) when it names a specific medium: ``Digital Art`` →
   ``digital``, ``Painting`` → ``painting``, ``Mixed Media`` → ``mixed_media``. One refinement:
   a ``drawing`` flair with an ink medium in the title gives ``ink`` (r/Art has no ink flair, and
   pen-and-ink work is flaired "Drawing"; the title is the finer statement).
2. **The title** "Title, Artist, Medium, Year" (r/Art's rule). :func:`medium_field` finds the
   medium field by anchoring on the year from the right, so commas inside the title do not
   matter; an artist field such as "Me" is stepped over ("Marahan, Ink, Me, 2020").
   If that field names no medium, the fields after the year, the field before the medium
   field (artist and medium swapped) and bracketed text in the title are tried, in that order.
3. A flair that only names ``other`` (e.g. "Print"), used when the title states nothing.
4. Otherwise ``unknown`` (source ``none``). Generic flairs ("Artwork", "OC", "Featured") state
   nothing and fall through to the title.

Text is mapped to a medium by a :class:`Vocabulary` of phrases (``modbot/vocabulary.toml``, which
documents the matching rules, plus the ``[medium] vocabulary`` config table). Two different
media stated side by side ("Watercolor and ink", "Pencil, digital") give ``mixed_media``: the
judge does not judge it, which is the safe reading of a mixed statement.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, TextIO

from modbot.domain import MEDIA, UNKNOWN, StatedMedium
from modbot.errors import ConfigError, InputError

__all__ = ["Vocabulary", "annotate_jsonl", "medium_field", "normalise_text", "stated_medium"]

#: Values a vocabulary phrase may map to: a canonical medium, or ``unknown`` (states nothing).
VOCABULARY_VALUES: tuple[str, ...] = (*MEDIA, UNKNOWN)

#: Flair media that win over the title. ``other`` is too vague to override a stated title.
_SPECIFIC_FLAIR = frozenset(MEDIA) - {"other"}
#: flair medium → title media that refine it (the title's medium is then used).
_REFINES: dict[str, frozenset[str]] = {"drawing": frozenset({"ink"})}

_JOIN = r"[\s\-_]*"  # between the words of a phrase: "water color", "water-color", "watercolor"
_ADJACENT = re.compile(r"[\s\-_]*")  # what may separate two matches of one compound
# A match preceded by "on"/"onto"/"for" (+ up to two other words) names a support or a purpose
# ("acrylic on wood", "clay for bronze"), not the medium.
_SUPPORT_BEFORE = re.compile(r"(?:^|[\s(])(?:on|onto|for)\s+(?:(?!(?:and|with|plus)\b)\S+\s+){0,2}$")


def normalise_text(text: str) -> str:
    """Lower-case ``text``, drop accents, read ``&``, ``+``, ``/``, ``|`` as " and ", ``w/`` as
    " with ", and collapse whitespace. Used on both vocabulary phrases and posted text."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"(?<![a-z0-9])w/", " with ", text)
    text = re.sub(r"\s*[&+/\\|]\s*", " and ", text)
    return re.sub(r"\s+", " ", text).strip()


def _normalise_phrase(phrase: str) -> str:
    prefix = phrase.strip().endswith("*")
    core = normalise_text(phrase.strip().rstrip("*"))
    core = re.sub(r"[\s\-_]+", " ", core).strip()
    return f"{core}*" if prefix and core else core


def _phrase_pattern(phrase: str) -> str:
    prefix = phrase.endswith("*")
    words = phrase.rstrip("*").split()
    body = _JOIN.join(re.escape(w) for w in words)
    tail = r"[a-z0-9]*" if prefix else r"(?:s|es)?(?![a-z0-9])"
    return rf"(?<![a-z0-9]){body}{tail}"


@dataclass(frozen=True)
class _Term:
    medium: str
    generic: bool


@dataclass(frozen=True)
class _Group:
    """Adjacent matches read as one compound ("oil pastel", "digital watercolor")."""

    medium: str
    term: str | None
    generic: bool
    support: bool


class Vocabulary:
    """An immutable phrase → medium table and the matcher built from it.

    ``specific`` phrases decide the medium; ``generic`` phrases ("paint", "drawing", "photo")
    count only when no specific phrase is stated. Values are canonical media (``MEDIA``) or
    ``unknown`` (the phrase is consumed and states nothing, e.g. "watercolor paper"). Phrases
    are normalised with :func:`normalise_text`; a trailing ``*`` matches any word ending.
    Build it with :meth:`default` (the packaged ``modbot/vocabulary.toml``) and extend it with
    :meth:`with_terms` (the ``[medium] vocabulary`` config table).

    Raises ``ConfigError`` for an empty phrase or a value that is not a medium.
    """

    __slots__ = ("_terms", "_pattern", "_group_terms")

    def __init__(self, specific: Mapping[str, str], generic: Mapping[str, str] | None = None) -> None:
        terms: dict[str, _Term] = {}
        for table, is_generic in ((generic or {}, True), (specific, False)):
            for phrase, medium in table.items():
                key, value = _validate_term(phrase, medium, origin="vocabulary")
                terms[key] = _Term(value, is_generic)
        self._terms: Mapping[str, _Term] = MappingProxyType(terms)
        # Longest phrase first: at one position the longest phrase wins.
        ordered = sorted(terms, key=lambda p: (-len(p.rstrip("*")), p))
        self._group_terms: tuple[str, ...] = tuple(ordered)
        alternatives = "|".join(f"({_phrase_pattern(p)})" for p in ordered)
        self._pattern = re.compile(alternatives) if ordered else None

    @classmethod
    def default(cls) -> Vocabulary:
        """The built-in vocabulary from ``modbot/vocabulary.toml`` (loaded once, cached)."""
        return _default_vocabulary()

    def with_terms(self, extra: Mapping[str, str]) -> Vocabulary:
        """A new vocabulary with ``extra`` phrases added as specific terms; they override any
        built-in phrase of the same spelling (after normalisation).

        ``extra`` maps a phrase to a medium in ``MEDIA`` or ``unknown`` (case and spaces in the
        value are forgiven: "Mixed Media" → ``mixed_media``).
        Raises ``ConfigError`` if ``extra`` is not a table, a phrase is empty, or a value is not
        one of those media.
        """
        if not isinstance(extra, Mapping):
            raise ConfigError(f"medium.vocabulary must be a table of phrase = medium, got {extra!r}")
        if not extra:
            return self
        checked = dict(_validate_term(p, m, origin="medium.vocabulary") for p, m in extra.items())
        specific = {p: t.medium for p, t in self._terms.items() if not t.generic and p not in checked}
        generic = {p: t.medium for p, t in self._terms.items() if t.generic and p not in checked}
        specific.update(checked)
        return Vocabulary(specific, generic)

    @property
    def terms(self) -> Mapping[str, str]:
        """Every phrase (normalised) → its medium, specific and generic together."""
        return MappingProxyType({p: t.medium for p, t in self._terms.items()})

    def is_generic(self, phrase: str) -> bool:
        """Whether ``phrase`` is a generic term. Raises ``KeyError`` if it is not in the table."""
        return self._terms[_normalise_phrase(phrase)].generic

    def resolve(self, text: str) -> tuple[str, str | None]:
        """The medium ``text`` states and the term(s) that decided, or ``("unknown", None)``.

        ``text`` is one free-text statement (a flair, a title field). When two different media
        are stated the result is ``mixed_media`` and the terms are joined with " + ".
        """
        if self._pattern is None or not text:
            return UNKNOWN, None
        norm = normalise_text(text)
        groups = self._groups(norm)
        stages = (
            [g for g in groups if not g.generic and not g.support],
            [g for g in groups if g.generic and not g.support and g.medium != "other"],
            [g for g in groups if g.generic and not g.support and g.medium == "other"],
            [g for g in groups if not g.generic and g.support],
            [g for g in groups if g.generic and g.support],
        )
        for stage in stages:
            stated = [g for g in stage if g.medium != UNKNOWN]
            if not stated:
                continue
            first: dict[str, str] = {}
            for g in stated:
                first.setdefault(g.medium, g.term or "")
            if len(first) == 1:
                return next(iter(first.items()))
            return "mixed_media", " + ".join(first.values())
        return UNKNOWN, None

    def _groups(self, norm: str) -> list[_Group]:
        assert self._pattern is not None
        runs: list[list[tuple[int, int, str]]] = []
        plural_before = False
        for m in self._pattern.finditer(norm):
            phrase = self._group_terms[m.lastindex - 1]  # type: ignore[operator]
            if runs and not plural_before and _ADJACENT.fullmatch(norm, runs[-1][-1][1], m.start()):
                runs[-1].append((m.start(), m.end(), phrase))
            else:
                runs.append([(m.start(), m.end(), phrase)])
            # "colored pencils highlighter": a plural ends a compound (English modifiers are
            # singular), so what follows is the next item of a list.
            plural_before = m.group().endswith("s") and not phrase.rstrip("*").endswith("s")
        groups = []
        for run in runs:
            members = [(phrase, self._terms[phrase]) for _, _, phrase in run]
            medium, term, generic = _compound(members)
            support = medium != "digital" and bool(_SUPPORT_BEFORE.search(norm, 0, run[0][0]))
            groups.append(_Group(medium, term, generic, support))
        return groups

    def __len__(self) -> int:
        return len(self._terms)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self._terms)} phrases)"


def _compound(members: list[tuple[str, _Term]]) -> tuple[str, str | None, bool]:
    """Medium of adjacent terms: digital dominates, else the last specific term (the head
    noun: "oil pastel" → drawing), else the last generic one."""
    specific = [(p, t) for p, t in members if not t.generic and t.medium != UNKNOWN]
    for p, t in specific:
        if t.medium == "digital":
            return "digital", p, False
    if specific:
        p, t = specific[-1]
        return t.medium, p, False
    generic = [(p, t) for p, t in members if t.generic and t.medium != UNKNOWN]
    if generic:
        p, t = generic[-1]
        return t.medium, p, True
    return UNKNOWN, None, False


def _validate_term(phrase: Any, medium: Any, *, origin: str) -> tuple[str, str]:
    if not isinstance(phrase, str) or not isinstance(medium, str):
        raise ConfigError(f"{origin}: {phrase!r} = {medium!r}: phrase and medium must be strings")
    key = _normalise_phrase(phrase)
    if not re.search(r"[a-z0-9]", key) or "*" in key[:-1]:
        raise ConfigError(f"{origin}: {phrase!r} is not a usable phrase "
                          "(needs a letter or digit; '*' only at the end)")
    value = re.sub(r"[\s\-]+", "_", medium.strip().lower())
    if value not in VOCABULARY_VALUES:
        raise ConfigError(f"{origin}: {phrase!r} = {medium!r}: not a medium "
                          f"(one of {', '.join(VOCABULARY_VALUES)})")
    return key, value


@functools.cache
def _default_vocabulary() -> Vocabulary:
    text = resources.files("modbot").joinpath("vocabulary.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    tables: dict[str, dict[str, str]] = {"specific": {}, "generic": {}}
    for kind, table in tables.items():
        for medium, phrases in data.get(kind, {}).items():
            for phrase in phrases:
                table[phrase] = medium
    return Vocabulary(tables["specific"], tables["generic"])


# ---------------------------------------------------------------------------------------------
# Titles: "Title, Artist, Medium, Year"

_TAG = re.compile(r"[\[(]\s*(?:oc|o\.c\.?|original content)\s*[\])]", re.IGNORECASE)
_YEAR = re.compile(r"^(?:(?:c\.?|ca\.?|circa)?\s*(?:1[5-9]|20)\d\d(?!\d)"  # 2020, c. 1990, 2019-2020
                   r"|\d{1,2}[/.]\d{1,2}[/.](?:\d{2}|\d{4})(?!\d))",  # a date: 21/11/20, 7/4/2020
                   re.IGNORECASE)
_ARTIST = re.compile(r"^(?:(?:made|drawn|painted|done)\s+)?(?:by\s+)?(?:me|myself|mine|i|self|oc|moi)\b",
                     re.IGNORECASE)
_SIZE = r"\d+(?:[.,]\d+)?\s*(?:cm|mm|m|in|inch|inches|ft|\"|”|'')?"
_DIMENSIONS = re.compile(rf"[\[(]?\s*{_SIZE}(?:\s*(?:x|×|\*|by)\s*{_SIZE}){{1,2}}\s*[\])]?",
                         re.IGNORECASE)
_LOOSE_SEPARATORS = re.compile(r",|\s[-\u2013\u2014|]\s|\s*[|;]\s*")
_BRACKETED = re.compile(r"[\[(]([^\[\]()]+)[\])]")


def _fields(title: str) -> list[str]:
    text = _TAG.sub(" ", title)
    parts = text.split(",")
    if len(parts) < 3:  # not comma-separated: try " - ", " | ", ";"
        parts = _LOOSE_SEPARATORS.split(text)
    return [p.strip() for p in parts if p.strip()]


def _is_artist(field: str) -> bool:
    return bool(_ARTIST.match(field.strip(" \t\"'“”‘’()[]-*:")))


def _is_dimensions(field: str) -> bool:
    return bool(_DIMENSIONS.fullmatch(field.strip()))


def _year_index(fields: list[str]) -> int | None:
    years = [i for i in range(1, len(fields)) if _YEAR.match(fields[i].strip(" \"'“”()[]"))]
    return years[-1] if years else None


def _medium_index(fields: list[str]) -> int | None:
    if len(fields) < 2:
        return None
    year = _year_index(fields)
    index = year - 1 if year is not None else len(fields) - 1
    while index >= 1 and (_is_artist(fields[index]) or _is_dimensions(fields[index])):
        index -= 1
    return index if index >= 1 else None


def medium_field(title: str) -> str | None:
    """The "Medium" field of an r/Art title "Title, Artist, Medium, Year", or ``None``.

    The year (a field starting with a 4-digit year or a date: "2020", "2019-2020", "c. 1990",
    "21/11/20") anchors the parse from the right, so commas inside the title are harmless; the
    field before it is the medium, unless it is the artist written as "Me"/"by me"/"myself" or a
    size such as "60x80cm": such fields are stepped over. Without a year the last field is taken
    (same rule). Titles with fewer than three comma fields are split on " - ", " | " or ";"
    instead. "(OC)"/"[OC]" tags are ignored. The first field (the artwork's own title) is never
    returned.

    >>> medium_field("Sunset, the sea, and me, Me, Oil on canvas, 2020")
    'Oil on canvas'
    >>> medium_field("Marahan, Ink, Me, 2020")
    'Ink'
    """
    fields = _fields(title)
    index = _medium_index(fields)
    return fields[index] if index is not None else None


def artist_field(title: str) -> str | None:
    """The "Artist" field of an r/Art title "Title, Artist, Medium, Year", or ``None``.

    Found from the medium field (:func:`medium_field`): a self-reference such as "Me"/"by me"
    stepped over after it ("Marahan, Ink, Me, 2020" → ``"Me"``), else the field before it when
    that is not the artwork's own title (the first field). Used by :mod:`modbot.repost`.

    >>> artist_field("Dusk, Jane Doe, oil on canvas, 2020")
    'Jane Doe'
    >>> artist_field("Marahan, Ink, Me, 2020")
    'Me'
    """
    fields = _fields(title)
    index = _medium_index(fields)
    if index is None:
        return None
    year = _year_index(fields)
    for i in range(index + 1, year if year is not None else len(fields)):
        if _is_artist(fields[i]):
            return fields[i]
    return fields[index - 1] if index - 1 >= 1 else None


def is_self_reference(artist: str) -> bool:
    """True when an artist field names the poster themself ("me", "by me", "myself", "OC")."""
    return _is_artist(artist)


def _title_candidates(title: str) -> tuple[str | None, list[str]]:
    fields = _fields(title)
    index = _medium_index(fields)
    candidates: list[str] = []
    if index is not None:
        candidates.append(fields[index])
    year = _year_index(fields)
    if year is not None:
        candidates.extend(fields[year + 1:])
        candidates.append(fields[year])  # "2020 (oil on canvas)"
    if index is not None and index - 1 >= 1 and not _is_artist(fields[index - 1]) \
            and not _is_dimensions(fields[index - 1]):
        candidates.append(fields[index - 1])
    candidates.extend(_BRACKETED.findall(title))
    unique = list(dict.fromkeys(candidates))
    return (fields[index] if index is not None else None), unique


def _from_title(title: str, vocabulary: Vocabulary) -> tuple[StatedMedium | None, str | None]:
    field, candidates = _title_candidates(title)
    for text in candidates:
        medium, term = vocabulary.resolve(text)
        if medium != UNKNOWN:
            return StatedMedium(medium, "title", raw=text.strip(), matched=term), field
    return None, field


def stated_medium(title: str, link_flair_text: str | None = None, *,
                  vocabulary: Vocabulary | None = None) -> StatedMedium:
    """The medium the poster stated, from the link flair and the title.

    - ``title``: the submission title (r/Art: "Title, Artist, Medium, Year").
    - ``link_flair_text``: the link flair, or ``None``.
    - ``vocabulary``: phrase table; default :meth:`Vocabulary.default`.

    Returns a :class:`~modbot.domain.StatedMedium`: ``medium`` in ``MEDIA`` or ``unknown``;
    ``source`` ``flair``, ``title`` or ``none``; ``raw`` the flair or title field that was read
    (for ``unknown``, the unrecognised medium field if there was one, so moderators can see what
    to add to the vocabulary); ``matched`` the deciding term(s). Precedence is described in the
    module docstring. Never raises for odd text.
    """
    vocab = vocabulary if vocabulary is not None else Vocabulary.default()
    flair_text = (link_flair_text or "").strip()
    flair: StatedMedium | None = None
    if flair_text:
        medium, term = vocab.resolve(flair_text)
        if medium != UNKNOWN:
            flair = StatedMedium(medium, "flair", raw=flair_text, matched=term)
    from_title, field = _from_title(title or "", vocab)
    if flair is not None and flair.medium in _SPECIFIC_FLAIR:
        if from_title is not None and from_title.medium in _REFINES.get(flair.medium, ()):
            return from_title
        return flair
    if from_title is not None:
        return from_title
    if flair is not None:
        return flair
    return StatedMedium(UNKNOWN, "none", raw=field, matched=None)


def annotate_jsonl(lines: Iterable[str], out: TextIO, *, vocabulary: Vocabulary | None = None) -> int:
    """Add ``stated_medium`` to each JSON object of a JSON Lines stream (``modbot medium``).

    Each non-blank input line is a JSON object with a string ``title`` and an optional
    ``link_flair_text`` (string or null). Each is written to ``out`` as one line, unchanged
    except for added fields: ``"stated_medium"`` (the canonical medium, a string),
    ``"stated_medium_source"`` (flair/title/none) and ``"stated_medium_matched"`` (the
    vocabulary term that decided, or null) (see :func:`stated_medium`). Blank lines are skipped. Returns the number of objects written.

    Raises ``InputError`` (with ``.line``, 1-based) at the first line that is not valid JSON,
    not an object, lacks a string ``title``, or has a non-string ``link_flair_text``; lines
    before it have already been written.
    """
    vocab = vocabulary if vocabulary is not None else Vocabulary.default()
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})",
                             line=number) from exc
        if not isinstance(obj, dict):
            raise InputError(f"line {number}: expected a JSON object, got {type(obj).__name__}",
                             line=number)
        title = obj.get("title")
        if not isinstance(title, str):
            raise InputError(f"line {number}: \"title\" must be a string, got {title!r}", line=number)
        flair = obj.get("link_flair_text")
        if flair is not None and not isinstance(flair, str):
            raise InputError(f"line {number}: \"link_flair_text\" must be a string or null, "
                             f"got {flair!r}", line=number)
        stated = stated_medium(title, flair, vocabulary=vocab)
        obj["stated_medium"] = stated.medium
        obj["stated_medium_source"] = stated.source
        obj["stated_medium_matched"] = stated.matched
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        count += 1
    return count
