"""The Reddit endpoints of the sandbox: what each answers, in Reddit's JSON shapes.

Shapes and headers follow real Reddit responses (recorded by the praw project's integration
tests, see ``../shared/data/reddit-api/SOURCES.md``; the wire facts are in
``wire_actions_and_errors.json``):

* ``POST /api/v1/access_token`` (:meth:`RedditApi.handle_token`) — OAuth2 password (script app)
  and client-credentials grants, HTTP Basic auth with the client id/secret. A bad client
  id/secret is answered ``401``; a bad username/password ``200 {"error": "invalid_grant"}`` as
  Reddit does. Not bearer-checked, so :mod:`modbot.sandbox.handler` routes it itself.
* ``GET /r/{sub}/new`` — a real Listing: newest first, ``limit`` (default 25, at most 100),
  ``before``/``after`` fullnames, ``after`` null at the end so praw does not page on;
  ``{sub}`` may be a multireddit ``A+B`` (or ``all``).
* ``GET /r/{sub}/about``, ``GET /api/v1/me``, ``GET /comments/{id}[/{slug}]`` (the
  ``[submission listing, comment listing]`` pair), ``GET /api/info?id=t3_..,t1_..``.
* ``POST /api/comment`` (``thing_id``, ``text``), ``POST /api/report`` (``id``/``thing_id``,
  ``reason``), ``POST /api/remove`` (``id``, ``spam``) — recorded as :class:`~.state.Write`.
* Moderator tools (:mod:`modbot.sandbox.modtools`): ``POST /api/mod/notes``, ``GET
  /api/v1/{sub}/removal_reasons``, ``POST /api/v1/modactions/removal_reasons`` and
  ``…/removal_link_message``, ``POST /api/distinguish``, ``POST /api/lock``, ``POST
  /api/mod/conversations`` — recorded as :class:`~.state.Write` too.
* Mod log, approvals, flair, ``top`` and ``search`` (:mod:`modbot.sandbox.modlog`): ``GET
  /r/{sub}/about/log``, ``POST /api/approve``, ``POST /r/{sub}/api/flair`` and ``…/selectflair``,
  ``GET /r/{sub}/top``, ``GET /r/{sub}/search``; approve/remove/removal reason/flair writes add
  mod log entries.

Every endpoint but the token grant is an OAuth endpoint, listed in :data:`ROUTES` and answered
by :meth:`RedditApi.answer_oauth`, which checks the bearer token (``401`` with
``www-authenticate`` when it is missing, unknown or expired) and counts the request against the
rate limit (Reddit's ``x-ratelimit-remaining/used/reset`` headers on every answer, 1000 requests
per 600 s window per client, remaining sent as ``"997.0"``; 429 past it).

**Adding an endpoint** = one :class:`Route` line in :data:`ROUTES` (method, path regex, and how
to call the method from the :class:`ApiCall`) + one ``handle_…`` method on :class:`RedditApi`
that returns the JSON-able body, or raises :class:`~.state.Reply` for another status.
"""

from __future__ import annotations

import base64
import copy
import hmac
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from modbot.sandbox.modlog import ModLogApi
from modbot.sandbox.modtools import ModToolsApi
from modbot.sandbox.state import (
    JSON_TYPE,
    KNOWN_SUBREDDIT_IDS,
    TOO_MANY_REQUESTS_HTML,
    PostState,
    Reply,
    Token,
    Write,
    listing,
    slug,
    strip_and_substitute,
    to_base36,
)

__all__ = ["ROUTES", "ApiCall", "RedditApi", "Route"]


@dataclass(frozen=True)
class ApiCall:
    """One authenticated API request as a route sees it: the path ``match`` (named groups),
    the caller's ``token``, the decoded ``query`` and ``form`` (last value wins)."""

    match: re.Match[str]
    token: Token
    query: Mapping[str, str]
    form: Mapping[str, str]


@dataclass(frozen=True)
class Route:
    """An OAuth endpoint: ``method`` and ``pattern`` (matched against the normalised path: no
    trailing slash, no ``.json``) select it; ``call(api, request)`` answers it."""

    method: str
    pattern: re.Pattern[str]
    call: Callable[[RedditApi, ApiCall], Any]

    @classmethod
    def of(cls, method: str, regex: str, call: Callable[[RedditApi, ApiCall], Any]) -> Route:
        """A route from a regex string."""
        return cls(method, re.compile(regex), call)


#: The OAuth endpoints, tried in order (the first whose method and path match answers).
ROUTES: tuple[Route, ...] = (
    Route.of("GET", r"^/r/(?P<sub>[^/]+)/new$", lambda api, c: api.handle_new(c.match["sub"], c.query)),
    Route.of("GET", r"^/r/(?P<sub>[^/]+)/about$", lambda api, c: api.handle_about(c.match["sub"])),
    Route.of("GET", r"^/api/v1/me$", lambda api, c: api.handle_me(c.token)),
    Route.of("GET", r"^/comments/(?P<id>[a-z0-9]+)(?:/[^/]*)?$",
             lambda api, c: api.handle_comments(c.match["id"])),
    Route.of("GET", r"^/r/[^/]+/comments/(?P<id>[a-z0-9]+)(?:/[^/]*)?$",
             lambda api, c: api.handle_comments(c.match["id"])),
    Route.of("GET", r"^/api/info$", lambda api, c: api.handle_info(c.query)),
    Route.of("POST", r"^/api/comment$", lambda api, c: api.handle_comment(c.token, c.form)),
    Route.of("POST", r"^/api/report$", lambda api, c: api.handle_report(c.token, c.form)),
    Route.of("POST", r"^/api/remove$", lambda api, c: api.handle_remove(c.token, c.form)),
    # moderator tools (modbot.sandbox.modtools)
    Route.of("POST", r"^/api/mod/notes$", lambda api, c: api.handle_mod_note(c.token, c.form)),
    Route.of("GET", r"^/api/v1/(?P<sub>[^/]+)/removal_reasons$",
             lambda api, c: api.handle_removal_reasons_list(c.match["sub"])),
    Route.of("POST", r"^/api/v1/modactions/removal_reasons$",
             lambda api, c: api.handle_add_removal_reason(c.token, c.form)),
    Route.of("POST", r"^/api/v1/modactions/removal_link_message$",
             lambda api, c: api.handle_removal_message(c.token, c.form)),
    Route.of("POST", r"^/api/distinguish$", lambda api, c: api.handle_distinguish(c.token, c.form)),
    Route.of("POST", r"^/api/lock$", lambda api, c: api.handle_lock(c.token, c.form)),
    Route.of("POST", r"^/api/mod/conversations$",
             lambda api, c: api.handle_modmail_create(c.token, c.form)),
    # mod log, approvals, flair, top and search (modbot.sandbox.modlog)
    Route.of("GET", r"^/r/(?P<sub>[^/]+)/about/log$",
             lambda api, c: api.handle_modlog(c.match["sub"], c.query)),
    Route.of("POST", r"^/api/approve$", lambda api, c: api.handle_approve(c.token, c.form)),
    Route.of("POST", r"^/r/(?P<sub>[^/]+)/api/(?:select)?flair$",
             lambda api, c: api.handle_flair(c.token, c.match["sub"], c.form)),
    Route.of("GET", r"^/r/(?P<sub>[^/]+)/top$", lambda api, c: api.handle_top(c.match["sub"], c.query)),
    Route.of("GET", r"^/r/(?P<sub>[^/]+)/search$",
             lambda api, c: api.handle_search(c.match["sub"], c.query)),
)


class RedditApi(ModToolsApi, ModLogApi):
    """Mixin with the Reddit endpoints (moderator tools inherited from
    :class:`~modbot.sandbox.modtools.ModToolsApi`), token issuance/checks and the rate limit.

    It holds no state of its own: :class:`~modbot.sandbox.server.SandboxServer` inherits it and
    provides the attributes annotated below (the posts, tokens and counters, guarded by
    ``_lock``; ``url``; ``_record_write``). Endpoint methods (``handle_…``) return JSON-able
    bodies and raise :class:`~.state.Reply` for any other answer.
    """

    subreddit: str
    client_id: str
    client_secret: str
    username: str
    password: str
    token_ttl_s: float
    ratelimit: tuple[int, int] | None
    _lock: threading.RLock
    _posts: list[PostState]
    _by_id: dict[str, PostState]
    _released_count: int
    _comment_seq: Iterator[int]
    _tokens: dict[str, Token]
    _issued_tokens: list[str]
    _rl_window_start: float
    _rl_used: int
    url: str  # a property of SandboxServer (the base URL, substituted for ``{base}``)
    _record_write: Callable[[Write], None]

    def answer_oauth(self, method: str, path: str, authorization: str | None,
                     query: Mapping[str, str], form: Mapping[str, str],
                     ) -> tuple[int, Any, dict[str, str]]:
        """(200, body, rate-limit headers) from the first of :data:`ROUTES` matching ``method``
        and the normalised ``path``, after the bearer-token check (``authorization`` is the
        header) and the rate-limit count.

        :raises Reply: 401/429 from the checks, an endpoint's own answer (with the rate-limit
            headers added), or ``404`` when no route matches.
        """
        for route in ROUTES:
            match = route.pattern.match(path)
            if match is None or route.method != method:
                continue
            token = self._check_token(authorization)
            rl_headers = self._ratelimit_headers()
            try:
                payload = route.call(self, ApiCall(match, token, query, form))
            except Reply as reply:
                raise Reply(reply.status, reply.body, {**rl_headers, **reply.headers}) from None
            return 200, payload, rl_headers
        raise Reply(404, {"message": "Not Found", "error": 404})

    # ---------------------------------------------------------------- auth / rate limit

    def _issue_token(self, username: str | None) -> dict[str, Any]:
        token = "sandbox-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = Token(username=username, expires_at=time.time() + self.token_ttl_s)
            self._issued_tokens.append(token)
        return {"access_token": token, "token_type": "bearer",
                "expires_in": int(self.token_ttl_s), "scope": "*"}

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued so far, expired ones included (tests grep output for
        them to prove that no token leaks)."""
        with self._lock:
            return list(self._issued_tokens)

    def expire_tokens(self) -> None:
        """Make every issued access token invalid (clients then get 401 and refresh)."""
        with self._lock:
            self._tokens.clear()

    def _check_token(self, header: str | None) -> Token:
        invalid = Reply(401, {"error": 401},
                        {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
        if not header or not header.lower().startswith("bearer "):
            raise invalid
        token = header.split(None, 1)[1].strip()
        with self._lock:
            info = self._tokens.get(token)
            if info is None or info.expires_at <= time.time():
                self._tokens.pop(token, None)
                raise invalid
            return info

    def _ratelimit_headers(self) -> dict[str, str]:
        """Count one OAuth request; return Reddit's headers, or raise a 429 past the limit."""
        limit, window = self.ratelimit or (1000, 600)
        now = time.time()
        with self._lock:
            start = now - (now % window)
            if start != self._rl_window_start:
                self._rl_window_start, self._rl_used = start, 0
            self._rl_used += 1
            used = self._rl_used
        reset = max(1, int(start + window - now))
        remaining = max(0, limit - used)
        headers = {"x-ratelimit-remaining": f"{float(remaining):.1f}",
                   "x-ratelimit-used": str(used), "x-ratelimit-reset": str(reset)}
        if self.ratelimit is not None and used > limit:
            raise Reply(429, TOO_MANY_REQUESTS_HTML.format(wait=reset).encode(),
                        {**headers, "content-type": "text/html; charset=UTF-8",
                         "retry-after": str(reset)})
        return headers

    # ---------------------------------------------------------------- rendering

    def _render_post(self, state: PostState) -> dict[str, Any]:
        data = strip_and_substitute(state.data, self.url)
        created = state.created_utc if state.created_utc is not None else data.get("created_utc")
        data["created_utc"] = created
        data["created"] = created
        sub = str(data.get("subreddit", self.subreddit))
        if not data.get("permalink"):
            data["permalink"] = f"/r/{sub}/comments/{data['id']}/{slug(str(data.get('title', '')))}/"
        data["name"] = state.fullname
        data["num_comments"] = int(data.get("num_comments") or 0) + len(state.comments)
        if state.mod_reports:
            data["mod_reports"] = [list(r) for r in state.mod_reports]
            data["num_reports"] = len(state.mod_reports)
        if state.removed:
            data["removed"] = True
            data["spam"] = state.spam
            data["banned_by"] = state.removed_by or self.username
            data["banned_at_utc"] = state.removed_at
            data["removed_by_category"] = "moderator"
        if state.approved_by:
            data["approved_by"], data["approved"] = state.approved_by, True
        return data

    def _visible(self, subs: set[str] | None) -> list[PostState]:
        """Released posts of ``subs`` (lower-case names; None = all), newest first."""
        with self._lock:
            out = [p for p in self._posts[: self._released_count]
                   if subs is None or str(p.data.get("subreddit", "")).lower() in subs]
        out.sort(key=lambda p: p.seq if p.seq is not None else -1, reverse=True)
        return out

    def _known_subs(self) -> set[str]:
        subs = {self.subreddit.lower()}
        subs.update(str(p.data.get("subreddit", "")).lower() for p in self._posts)
        return subs

    def _find_thing(self, fullname: str) -> tuple[PostState, dict[str, Any] | None] | None:
        """(post, comment-or-None) for a released ``t3_``/``t1_`` fullname, else None."""
        with self._lock:
            if fullname.startswith("t3_"):
                state = self._by_id.get(fullname[3:])
                if state is not None and state.seq is not None:
                    return state, None
            elif fullname.startswith("t1_"):
                for state in self._posts[: self._released_count]:
                    for comment in state.comments:
                        if comment["name"] == fullname:
                            return state, comment
        return None

    # ---------------------------------------------------------------- endpoints

    def handle_token(self, auth_header: str | None, form: Mapping[str, str]) -> tuple[int, Any]:
        """``POST /api/v1/access_token``: (status, JSON body)."""
        client_ok = False
        if auth_header and auth_header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth_header.split(None, 1)[1]).decode("utf-8")
                cid, _, secret = decoded.partition(":")
                client_ok = hmac.compare_digest(cid, self.client_id) and hmac.compare_digest(
                    secret, self.client_secret)
            except (ValueError, UnicodeDecodeError):
                client_ok = False
        if not client_ok:
            return 401, {"message": "Unauthorized", "error": 401}
        grant = form.get("grant_type")
        if grant == "password":
            if self.password_ok(form.get("username", ""), form.get("password", "")):
                return 200, self._issue_token(form.get("username", ""))
            return 200, {"error": "invalid_grant"}
        if grant in ("client_credentials", "https://oauth.reddit.com/grants/installed_client"):
            return 200, self._issue_token(None)
        return 200, {"error": "unsupported_grant_type"}

    def handle_new(self, sub: str, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /r/{sub}/new``: a Listing, newest first, with Reddit's before/after paging."""
        names = {s.lower() for s in sub.split("+") if s}
        subs: set[str] | None
        if names & {"all", "popular"}:
            subs = None
        else:
            known = self._known_subs()
            if not names & known:
                raise Reply(302, b"", {"location": f"/subreddits/search?q={quote(sub)}",
                                       "content-type": JSON_TYPE})
            subs = names
        try:
            limit = int(query.get("limit", "25"))
        except ValueError:
            limit = 25
        limit = 25 if limit <= 0 else min(limit, 100)
        visible = self._visible(subs)
        names_list = [p.fullname for p in visible]
        before, after = query.get("before") or None, query.get("after") or None
        if before:
            if before not in names_list:
                return listing([], None, None)
            newer = visible[: names_list.index(before)]
            page = newer[-limit:]
            before_out = page[0].fullname if page and len(newer) > limit else None
            after_out = None
        elif after:
            if after not in names_list:
                return listing([], None, None)
            older = visible[names_list.index(after) + 1:]
            page = older[:limit]
            after_out = page[-1].fullname if len(older) > limit else None
            before_out = page[0].fullname if page else None
        else:
            page = visible[:limit]
            after_out = page[-1].fullname if len(visible) > limit else None
            before_out = None
        children = [{"kind": "t3", "data": self._render_post(p)} for p in page]
        return listing(children, after_out, before_out)

    def handle_about(self, sub: str) -> dict[str, Any]:
        """``GET /r/{sub}/about``: a ``t5`` thing."""
        if sub.lower() not in self._known_subs():
            raise Reply(404, {"message": "Not Found", "error": 404})
        sid, subscribers = KNOWN_SUBREDDIT_IDS.get(
            sub.lower(), (to_base36(zlib.crc32(sub.lower().encode()) % 36**6), 1))
        name = next((str(p.data.get("subreddit")) for p in self._posts
                     if str(p.data.get("subreddit", "")).lower() == sub.lower()), sub)
        return {"kind": "t5", "data": {
            "display_name": name, "display_name_prefixed": f"r/{name}", "id": sid,
            "name": f"t5_{sid}", "title": name, "url": f"/r/{name}/",
            "public_description": f"Sandbox copy of r/{name} served by modbot's sandbox.",
            "subscribers": subscribers, "subreddit_type": "public", "over18": False,
            "created": 1201233135.0, "created_utc": 1201233135.0, "lang": "en",
            "user_is_moderator": True, "user_is_subscriber": True, "user_is_banned": False,
            "link_flair_enabled": True, "submission_type": "any", "quarantine": False,
        }}

    def handle_me(self, token: Token) -> dict[str, Any]:
        """``GET /api/v1/me``: the authenticated account (403 for app-only tokens)."""
        if token.username is None:
            raise Reply(403, {"message": "Forbidden", "error": 403})
        return {
            "name": token.username, "id": "sbx" + to_base36(len(token.username)),
            "created": 1700000000.0, "created_utc": 1700000000.0, "link_karma": 1,
            "comment_karma": 0, "total_karma": 1, "is_mod": True, "is_gold": False,
            "is_employee": False, "has_verified_email": True, "is_suspended": False,
            "over_18": False, "verified": True, "icon_img": "", "inbox_count": 0,
            "has_mail": False, "has_mod_mail": False, "pref_show_snoovatar": False,
        }

    def handle_comments(self, post_id: str) -> list[dict[str, Any]]:
        """``GET /comments/{id}``: ``[submission Listing, comment Listing]``."""
        found = self._find_thing("t3_" + post_id)
        if found is None:
            raise Reply(404, {"message": "Not Found", "error": 404})
        state = found[0]
        with self._lock:
            comments = [{"kind": "t1", "data": strip_and_substitute(c, self.url)} for c in state.comments]
        return [listing([{"kind": "t3", "data": self._render_post(state)}], None, None, dist=1),
                listing(comments, None, None, dist=None)]

    def handle_info(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/info?id=…``: a Listing of the released things among the ids (max 100)."""
        ids = [i for i in query.get("id", "").split(",") if i][:100]
        children = []
        for fullname in ids:
            found = self._find_thing(fullname)
            if found is None:
                continue
            state, comment = found
            if comment is None:
                children.append({"kind": "t3", "data": self._render_post(state)})
            else:
                children.append({"kind": "t1", "data": strip_and_substitute(comment, self.url)})
        return listing(children, None, None)

    def handle_comment(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/comment``: add a reply; Reddit's ``{"json": {"errors", "data"}}`` shape."""
        self._require_user(token)
        parent = form.get("thing_id", "")
        text = form.get("text", "")
        now = time.time()
        extra = {k: v for k, v in form.items() if k not in ("thing_id", "text", "api_type")}
        if not text.strip():
            self._record_write(Write("comment", parent or None, text, now, ok=False, extra=extra))
            return {"json": {"errors": [["NO_TEXT", "we need something here", "text"]]}}
        found = self._find_thing(parent)
        if found is None:
            # Sandbox choice (no recording of this case): an error in Reddit's error shape.
            self._record_write(Write("comment", parent or None, text, now, ok=False, extra=extra))
            return {"json": {"errors": [["NO_THING_ID", "can't find that thing", "thing_id"]]}}
        state, _ = found
        cid = to_base36(next(self._comment_seq))
        sub = str(state.data.get("subreddit", self.subreddit))
        body_html = ('<div class="md"><p>' + text.replace("&", "&amp;").replace("<", "&lt;")
                     .replace(">", "&gt;").replace("\n\n", "</p>\n\n<p>") + "</p>\n</div>")
        sub_id = KNOWN_SUBREDDIT_IDS.get(sub.lower(), ("2t5o6", 0))[0]
        comment = {  # field set of the recorded reply (wire_actions_and_errors.json, 2016)
            "subreddit_id": f"t5_{sub_id}", "banned_by": None, "removal_reason": None,
            "link_id": state.fullname, "likes": True, "replies": "", "user_reports": [],
            "saved": False, "id": cid, "gilded": 0, "archived": False, "report_reasons": [],
            "author": token.username, "parent_id": parent, "score": 1, "approved_by": None,
            "controversiality": 0, "body": text, "edited": False, "author_flair_css_class": None,
            "downs": 0, "body_html": body_html, "stickied": False, "subreddit": sub,
            "score_hidden": False, "name": f"t1_{cid}", "created": float(int(now)),
            "author_flair_text": None, "created_utc": float(int(now)), "ups": 1,
            "mod_reports": [], "num_reports": 0, "distinguished": None,
            "permalink": f"/r/{sub}/comments/{state.data['id']}/"
                         f"{slug(str(state.data.get('title', '')))}/{cid}/",
        }
        with self._lock:
            state.comments.append(comment)
        self._record_write(Write("comment", parent, text, now, ok=True, result=f"t1_{cid}", extra=extra))
        return {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": copy.deepcopy(comment)}]}}}

    def handle_report(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/report``: ``{"json": {"errors": []}}``; reasons over 100 chars are
        refused with ``TOO_LONG`` like Reddit."""
        self._require_user(token)
        fullname = form.get("thing_id") or form.get("id") or ""
        reason = form.get("reason") or form.get("other_reason") or form.get("site_reason") or ""
        extra = {k: v for k, v in form.items() if k not in ("thing_id", "id", "reason", "api_type")}
        now = time.time()
        if len(reason) > 100:
            self._record_write(Write("report", fullname or None, reason, now, ok=False, extra=extra))
            return {"json": {"errors": [["TOO_LONG", "this is too long (max: 100)", "reason"]]}}
        found = self._find_thing(fullname)
        if found is not None:
            state, comment = found
            with self._lock:
                if comment is None:
                    state.mod_reports.append([reason, str(token.username)])
                else:
                    comment.setdefault("mod_reports", []).append([reason, str(token.username)])
        self._record_write(Write("report", fullname or None, reason, now, ok=found is not None, extra=extra))
        return {"json": {"errors": []}}

    def handle_remove(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/remove``: Reddit answers ``{}``; the post is then served removed."""
        self._require_user(token)
        fullname = form.get("id", "")
        spam = form.get("spam", "False").lower() == "true"
        extra = {k: v for k, v in form.items() if k not in ("id", "api_type")}
        found = self._find_thing(fullname)
        now = time.time()
        if found is not None and found[1] is None:
            state = found[0]
            with self._lock:
                state.removed, state.spam, state.removed_at = True, spam, float(int(now))
            self.log_removal(token, state, spam)
        self._record_write(Write("remove", fullname or None, None, now, ok=found is not None, extra=extra))
        return {}

    def _require_user(self, token: Token) -> None:
        if token.username is None:
            raise Reply(403, {"message": "Forbidden", "error": 403})

