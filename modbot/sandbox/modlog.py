"""The sandbox's moderation log and the endpoints that write it, plus the ``top`` and ``search``
listings (a mixin of :class:`modbot.sandbox.api.RedditApi`).

* ``GET /r/{sub}/about/log`` (:meth:`ModLogApi.handle_modlog`) — a Listing of ``modaction``
  things, newest first, in Reddit's shape (``id`` ``ModAction_<uuid>``, ``action``, ``mod``,
  ``mod_id36``, ``created_utc``, ``subreddit``, ``sr_id36``, ``details``, ``description``,
  ``target_fullname``, ``target_permalink``, ``target_title``, ``target_author``); query
  ``type`` (one action), ``mod`` (comma-separated names), ``limit`` (default 25, at most 500 as
  on Reddit), ``before``/``after`` (entry ids).
* ``POST /api/approve`` (``id``) — the post is served approved (and no longer removed); entry
  ``approvelink`` (``approvecomment`` for a comment).
* ``POST /api/remove`` writes ``removelink`` (``spamlink`` with ``spam=True``; ``details``
  ``remove``/``confirm_spam``), and attaching a removal reason (``POST
  /api/v1/modactions/removal_reasons``, praw's second call of ``mod.remove(reason_id=…)``)
  writes ``addremovalreason`` with the reason's title as ``description`` (and the mod note, if
  any, as ``details``) — as Reddit does: the reason travels in its own entry
  (:meth:`ModLogApi.log_action`, called from those endpoints).
* ``POST /r/{sub}/api/flair`` (``link``, ``text``, ``css_class``; praw's
  ``submission.mod.flair(text=…)``) and ``POST /r/{sub}/api/selectflair`` (``link``, ``text``,
  ``flair_template_id``; praw's ``flair.select``/``mod.flair(flair_template_id=…)``) — set the
  post's ``link_flair_text``; entry ``editflair`` (which, as on Reddit, does not carry the
  flair text: read the post).
* ``GET /r/{sub}/top?t=hour|day|week|month|year|all`` — by score, then newest;
  ``GET /r/{sub}/search?q=…&restrict_sr=on&sort=new|top|relevance&t=…`` — titles and flairs
  containing every word of ``q`` (case-insensitive; ``flair:X`` / ``flair_name:"X"`` match the
  link flair). Both page with ``after`` like ``/new``.

Moderators other than the server's own account log in with the password grant when listed in
``moderator_accounts`` (username → password), so tests can act as a human moderator.
"""

from __future__ import annotations

import copy
import hmac
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modbot.sandbox.state import (
    DEFAULT_REMOVAL_REASONS,
    KNOWN_SUBREDDIT_IDS,
    PostState,
    Reply,
    Token,
    Write,
    listing,
    to_base36,
)

__all__ = ["ModLogApi"]

#: Seconds of each ``t`` time filter (``all``: no limit).
TIME_WINDOWS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400,
                "year": 366 * 86400}
_FLAIR_TERM = re.compile(r'flair(?:_name|_text)?:(?:"([^"]*)"|(\S+))', re.IGNORECASE)


def _limit(query: Mapping[str, str], default: int, most: int) -> int:
    try:
        value = int(query.get("limit", str(default)))
    except ValueError:
        value = default
    return default if value <= 0 else min(value, most)


def _page(items: Sequence[Any], key: Callable[[Any], str], query: Mapping[str, str],
          limit: int) -> tuple[list[Any], str | None, str | None]:
    """(page, after, before) of ``items`` (already in listing order) with Reddit's paging:
    ``after`` = items past that key, ``before`` = the ``limit`` items just ahead of it; an
    unknown key gives an empty page."""
    keys = [key(i) for i in items]
    before, after = query.get("before") or None, query.get("after") or None
    if before:
        if before not in keys:
            return [], None, None
        newer = list(items[: keys.index(before)])
        page = newer[-limit:]
        return page, None, (key(page[0]) if page and len(newer) > limit else None)
    start = 0
    if after:
        if after not in keys:
            return [], None, None
        start = keys.index(after) + 1
    rest = list(items[start:])
    page = rest[:limit]
    after_out = key(page[-1]) if len(rest) > limit else None
    return page, after_out, (key(page[0]) if page and after else None)


class ModLogApi:
    """Endpoint methods for the mod log, approvals, flair, ``top`` and ``search``; state comes
    from the server (see ``RedditApi``). The log itself is created on first use."""

    subreddit: str
    username: str
    password: str
    #: Other moderator accounts (username → password) accepted by the password grant.
    moderator_accounts: Mapping[str, str] = {}
    removal_reasons: dict[str, dict[str, str]] = DEFAULT_REMOVAL_REASONS
    _lock: threading.RLock
    _record_write: Callable[[Write], None]
    _find_thing: Callable[[str], tuple[PostState, dict[str, Any] | None] | None]
    _require_user: Callable[[Token], None]
    _render_post: Callable[[PostState], dict[str, Any]]
    _visible: Callable[[set[str] | None], list[PostState]]
    _known_subs: Callable[[], set[str]]

    # ---------------------------------------------------------------- accounts and the log

    def password_ok(self, username: str, password: str) -> bool:
        """Whether ``username``/``password`` is the server's account or a moderator account."""
        accounts = {self.username: self.password, **dict(self.moderator_accounts)}
        wanted = accounts.get(username)
        return wanted is not None and hmac.compare_digest(password, wanted)

    def _log_list(self) -> list[dict[str, Any]]:
        with self._lock:
            found = self.__dict__.get("_modlog")
            if found is None:
                found = self.__dict__["_modlog"] = []
            return found

    @property
    def modlog(self) -> list[dict[str, Any]]:
        """Every mod log entry (the ``data`` of each ``modaction``), oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._log_list())

    def log_action(self, action: str, mod: str, state: PostState | None, *,
                   target: str | None = None, details: str | None = None,
                   description: str | None = None, now: float | None = None) -> dict[str, Any]:
        """Append one entry (``target``: a fullname when ``state`` is not a post) and return it."""
        now = time.time() if now is None else now
        sub = str(state.data.get("subreddit", self.subreddit)) if state else self.subreddit
        data = state.data if state is not None else {}
        entry = {
            "id": f"ModAction_{uuid.uuid4()}", "action": action, "mod": mod,
            "mod_id36": to_base36(sum(map(ord, mod))), "created_utc": float(int(now)),
            "subreddit": sub, "subreddit_name_prefixed": f"r/{sub}",
            "sr_id36": KNOWN_SUBREDDIT_IDS.get(sub.lower(), ("2qh7a", 0))[0],
            "details": details, "description": description,
            "target_fullname": target or (state.fullname if state is not None else None),
            "target_permalink": data.get("permalink"), "target_title": data.get("title"),
            "target_author": data.get("author"), "target_body": None,
        }
        with self._lock:
            self._log_list().append(entry)
        return entry

    def handle_modlog(self, sub: str, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /r/{sub}/about/log``: the entries of ``sub`` (``mod``: every subreddit)."""
        names = {s.lower() for s in sub.split("+") if s}
        if not names & ({"mod"} | self._known_subs()):
            raise Reply(403, {"message": "Forbidden", "error": 403})
        kind = query.get("type") or None
        mods = {m.strip().lower() for m in (query.get("mod") or "").split(",") if m.strip()}
        with self._lock:
            entries = [e for e in reversed(self._log_list())
                       if ("mod" in names or e["subreddit"].lower() in names)
                       and (kind is None or e["action"] == kind)
                       and (not mods or e["mod"].lower() in mods)]
        page, after, before = _page(entries, lambda e: e["id"], query, _limit(query, 25, 500))
        return listing([{"kind": "modaction", "data": copy.deepcopy(e)} for e in page],
                       after, before)

    # ---------------------------------------------------------------- moderator actions

    def handle_approve(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/approve`` (``id``): ``{}``; the post is served approved, not removed."""
        self._require_user(token)
        fullname = form.get("id", "")
        found = self._find_thing(fullname)
        mod = str(token.username)
        if found is not None:
            state, comment = found
            with self._lock:
                if comment is None:
                    state.removed, state.approved_by = False, mod
                else:
                    comment["approved_by"] = mod
            self.log_action("approvelink" if comment is None else "approvecomment", mod, state,
                            target=fullname)
        self._record_write(Write("approve", fullname or None, None, time.time(),
                                 ok=found is not None))
        return {}

    def handle_flair(self, token: Token, sub: str, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /r/{sub}/api/flair`` and ``…/selectflair`` with ``link``: set the post's flair;
        Reddit's ``{"json": {"errors": []}}``."""
        self._require_user(token)
        fullname, text = form.get("link", ""), form.get("text", "")
        found = self._find_thing(fullname) if fullname.startswith("t3_") else None
        extra = {k: form.get(k, "") for k in ("css_class", "flair_template_id") if k in form}
        self._record_write(Write("flair", fullname or None, text, time.time(),
                                 ok=found is not None, extra={"subreddit": sub, **extra}))
        if found is None:
            return {"json": {"errors": [["INVALID_ID", "link not found", "link"]]}}
        state = found[0]
        with self._lock:
            state.data["link_flair_text"] = text or None
            if "css_class" in form:
                state.data["link_flair_css_class"] = form.get("css_class") or None
            if form.get("flair_template_id"):
                state.data["link_flair_template_id"] = form["flair_template_id"]
        self.log_action("editflair", str(token.username), state)
        return {"json": {"errors": []}}

    def log_removal(self, token: Token, state: PostState, spam: bool) -> None:
        """The entry of ``POST /api/remove`` on a post (``removelink``/``spamlink``)."""
        with self._lock:
            state.removed_by, state.approved_by = str(token.username), None
        self.log_action("spamlink" if spam else "removelink", str(token.username), state,
                        details="confirm_spam" if spam else "remove")

    def log_removal_reason(self, token: Token, fullname: str, reason_id: str | None,
                           mod_note: str) -> None:
        """The ``addremovalreason`` entry of a reason attached to a removed thing."""
        found = self._find_thing(fullname)
        title = self.removal_reasons.get(reason_id or "", {}).get("title") if reason_id else None
        self.log_action("addremovalreason", str(token.username),
                        found[0] if found is not None and found[1] is None else None,
                        target=fullname, description=title, details=mod_note or None)

    # ---------------------------------------------------------------- top and search

    def backdate(self, fullname: str, seconds_ago: float) -> None:
        """Make a released post look ``seconds_ago`` old (``created_utc``), for time filters.
        Raises ``KeyError`` for an unknown or unreleased post."""
        found = self._find_thing(fullname)
        if found is None:
            raise KeyError(fullname)
        with self._lock:
            found[0].created_utc = float(int(time.time() - seconds_ago))

    def _subs_of(self, sub: str) -> set[str] | None:
        names = {s.lower() for s in sub.split("+") if s}
        if names & {"all", "popular"}:
            return None
        if not names & self._known_subs():
            raise Reply(404, {"message": "Not Found", "error": 404})
        return names

    def _windowed(self, posts: list[PostState], t: str) -> list[PostState]:
        """The posts created within the time filter ``t`` (``all`` or unknown: every post)."""
        window = TIME_WINDOWS.get(t)
        if window is None:
            return posts
        since = time.time() - window
        return [p for p in posts if (p.created_utc or 0.0) >= since]

    def _answer(self, posts: list[PostState], query: Mapping[str, str]) -> dict[str, Any]:
        page, after, before = _page(posts, lambda p: p.fullname, query, _limit(query, 25, 100))
        return listing([{"kind": "t3", "data": self._render_post(p)} for p in page], after, before)

    def handle_top(self, sub: str, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /r/{sub}/top``: released posts in the ``t`` window (default ``day``), by score."""
        posts = self._windowed(self._visible(self._subs_of(sub)), query.get("t", "day"))
        posts.sort(key=lambda p: (-int(p.data.get("score") or 0), -(p.seq or 0)))
        return self._answer(posts, query)

    def handle_search(self, sub: str, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /r/{sub}/search``: posts matching ``q`` (``restrict_sr`` on: only ``sub``)."""
        restrict = (query.get("restrict_sr") or "").lower() in ("on", "1", "true")
        posts = self._visible(self._subs_of(sub) if restrict else None)
        text = query.get("q", "")
        flairs = [(a or b).lower() for a, b in _FLAIR_TERM.findall(text)]
        words = [w.lower() for w in _FLAIR_TERM.sub(" ", text).split()]

        def hit(p: PostState) -> bool:
            flair = str(p.data.get("link_flair_text") or "").lower()
            title = str(p.data.get("title") or "").lower()
            return (all(f == flair for f in flairs)
                    and all(w in title or w in flair for w in words))

        found = [p for p in self._windowed(posts, query.get("t", "all")) if hit(p)]
        if query.get("sort") == "top":
            found.sort(key=lambda p: (-int(p.data.get("score") or 0), -(p.seq or 0)))
        return self._answer(found, query)
