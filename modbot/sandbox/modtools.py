"""The sandbox's moderator-tool endpoints (a mixin of :class:`modbot.sandbox.api.RedditApi`):
mod notes, removal reasons, removal messages, distinguish, lock and new modmail.

Shapes: ``POST /api/mod/conversations`` answers the recorded conversation
(``wire_actions_and_errors.json``, TestSubredditModmail.test_create, 2017); ``POST
/api/v1/modactions/removal_link_message`` answers ``{}`` as recorded (2019) for private types;
``POST /api/mod/notes`` answers ``{"created": note}`` in the shape of Reddit's API documentation
(praw's objector turns it into a ``ModNote``); ``GET /api/v1/{sub}/removal_reasons`` answers
``{"data": {id: reason}, "order": [ids]}`` (what praw's ``SubredditRemovalReasons`` reads).
Every write is recorded as a :class:`~.state.Write` of kind ``note``, ``removal_reason``,
``removal_message``, ``distinguish``, ``lock`` or ``modmail``.
"""

from __future__ import annotations

import copy
import html
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from modbot.sandbox.state import (
    DEFAULT_REMOVAL_REASONS,
    PostState,
    Reply,
    Token,
    Write,
    to_base36,
)

__all__ = ["ModToolsApi"]

#: Reddit's limit on a mod note, in characters.
NOTE_MAX = 250


def _json_field(form: Mapping[str, str]) -> dict[str, Any]:
    """The ``json`` form field praw sends to ``/api/v1/modactions/*`` (400 when malformed)."""
    try:
        data = json.loads(form.get("json", ""))
    except ValueError:
        raise Reply(400, {"message": "Bad Request", "error": 400}) from None
    if not isinstance(data, dict):
        raise Reply(400, {"message": "Bad Request", "error": 400})
    return data


def _first(value: Any) -> str:
    """``item_id``/``item_ids`` are lists of which Reddit uses the first element."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


class ModToolsApi:
    """Endpoint methods for moderator tools; state comes from the server (see ``RedditApi``).
    ``removal_reasons`` (id → ``{"title", "message"}``) may be replaced per server."""

    subreddit: str
    username: str
    removal_reasons: dict[str, dict[str, str]] = DEFAULT_REMOVAL_REASONS
    _lock: threading.RLock
    _comment_seq: Iterator[int]
    _record_write: Callable[[Write], None]
    _find_thing: Callable[[str], tuple[PostState, dict[str, Any] | None] | None]
    _require_user: Callable[[Token], None]
    log_removal_reason: Callable[[Token, str, str | None, str], None]  # modbot.sandbox.modlog

    def handle_mod_note(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/mod/notes`` (``subreddit``, ``user``, ``note``, ``label``, ``reddit_id``)."""
        self._require_user(token)
        note, user = form.get("note", ""), form.get("user", "")
        thing = form.get("reddit_id") or None
        extra = {k: v for k, v in form.items() if k in ("subreddit", "user", "label")}
        now = time.time()
        if not note.strip() or len(note) > NOTE_MAX or not user:
            self._record_write(Write("note", thing, note, now, ok=False, extra=extra))
            # sandbox choice (no recording): the reason/explanation/fields shape of Reddit's
            # newer endpoints, which praw raises as RedditAPIException
            raise Reply(400, {"message": "Bad Request", "reason": "INVALID_NOTE", "fields": ["note"],
                              "explanation": f"note must be 1-{NOTE_MAX} characters, with a user"})
        note_id = "ModNote_sbx" + to_base36(next(self._comment_seq))
        self._record_write(Write("note", thing, note, now, ok=True, result=note_id, extra=extra))
        return {"created": {
            "subreddit_id": "t5_2qh7a", "operator_id": "t2_sbx", "subreddit": form.get("subreddit"),
            "mod_action_data": {"action": None, "reddit_id": thing, "details": None,
                                "description": None},
            "user": user, "operator": token.username, "id": note_id,
            "user_note_data": {"note": note, "reddit_id": thing, "label": form.get("label")},
            "user_id": "t2_sbx" + to_base36(len(user)), "created_at": int(now), "type": "NOTE",
        }}

    def handle_removal_reasons_list(self, sub: str) -> dict[str, Any]:
        """``GET /api/v1/{sub}/removal_reasons``: the subreddit's reasons in order."""
        reasons = dict(self.removal_reasons)
        return {"data": {rid: {"id": rid, **r} for rid, r in reasons.items()},
                "order": list(reasons)}

    def handle_add_removal_reason(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/v1/modactions/removal_reasons`` (``json``: ``item_ids``, ``reason_id``,
        ``mod_note``): attach the reason to a removed thing; ``{}``."""
        self._require_user(token)
        data = _json_field(form)
        fullname, reason_id = _first(data.get("item_ids")), str(data.get("reason_id") or "")
        found = self._find_thing(fullname)
        ok = (found is not None and found[1] is None and found[0].removed
              and (not reason_id or reason_id in self.removal_reasons))
        self._record_write(Write("removal_reason", fullname or None, reason_id or None, time.time(),
                                 ok=ok, extra={"mod_note": str(data.get("mod_note") or "")}))
        if not ok:
            return {"json": {"errors": [["INVALID_ID", "invalid id or reason", "item_ids"]]}}
        with self._lock:
            found[0].removal_reason_id = reason_id or None  # type: ignore[index]
        self.log_removal_reason(token, fullname, reason_id or None, str(data.get("mod_note") or ""))
        return {}

    def handle_removal_message(self, token: Token, form: Mapping[str, str]) -> Any:
        """``POST /api/v1/modactions/removal_link_message`` (``json``: ``item_id``, ``message``,
        ``title``, ``type``): ``{}`` for private types; public types add a distinguished,
        stickied comment and answer it."""
        self._require_user(token)
        data = _json_field(form)
        fullname, message = _first(data.get("item_id")), str(data.get("message") or "")
        kind = str(data.get("type") or "public")
        found = self._find_thing(fullname)
        ok = found is not None and found[0].removed and bool(message.strip())
        extra = {"title": str(data.get("title") or ""), "type": kind}
        self._record_write(Write("removal_message", fullname or None, message, time.time(),
                                 ok=ok, extra=extra))
        if not ok:
            return {"json": {"errors": [["INVALID_ID", "removed thing and message needed", "item_id"]]}}
        if kind.startswith("public") and found is not None:
            comment = self._add_comment(found[0], message, self.username, distinguished=True)
            return copy.deepcopy(comment)
        return {}

    def _add_comment(self, state: PostState, text: str, author: str, *, distinguished: bool
                     ) -> dict[str, Any]:
        """A minimal top-level comment on ``state`` (for public removal messages)."""
        cid = to_base36(next(self._comment_seq))
        comment = {"id": cid, "name": f"t1_{cid}", "body": text, "author": author,
                   "parent_id": state.fullname, "link_id": state.fullname,
                   "subreddit": str(state.data.get("subreddit", self.subreddit)),
                   "distinguished": "moderator" if distinguished else None,
                   "stickied": distinguished, "locked": False, "created_utc": float(int(time.time())),
                   "mod_reports": [], "user_reports": [], "replies": ""}
        with self._lock:
            state.comments.append(comment)
        return comment

    def handle_distinguish(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/distinguish`` (``id``, ``how``, ``sticky``): mark a comment."""
        self._require_user(token)
        fullname, how = form.get("id", ""), form.get("how", "yes")
        sticky = form.get("sticky", "False").lower() == "true"
        found = self._find_thing(fullname)
        ok = found is not None and found[1] is not None and how in ("yes", "no")
        self._record_write(Write("distinguish", fullname or None, None, time.time(), ok=ok,
                                 extra={"how": how, "sticky": str(sticky)}))
        if not ok or found is None or found[1] is None:
            return {"json": {"errors": [["INVALID_ID", "can't distinguish that", "id"]]}}
        comment = found[1]
        with self._lock:
            comment["distinguished"] = "moderator" if how == "yes" else None
            comment["stickied"] = bool(sticky and how == "yes")
            thing = copy.deepcopy(comment)
        return {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": thing}]}}}

    def handle_lock(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/lock`` (``id``): lock a comment or submission; ``{}``."""
        self._require_user(token)
        fullname = form.get("id", "")
        found = self._find_thing(fullname)
        self._record_write(Write("lock", fullname or None, None, time.time(), ok=found is not None))
        if found is not None:
            with self._lock:
                if found[1] is not None:
                    found[1]["locked"] = True
                else:
                    found[0].data["locked"] = True
        return {}

    def handle_modmail_create(self, token: Token, form: Mapping[str, str]) -> dict[str, Any]:
        """``POST /api/mod/conversations`` (``srName``, ``subject``, ``body``, ``to``,
        ``isAuthorHidden``): a new conversation, in the recorded shape."""
        self._require_user(token)
        subject, body, to = form.get("subject", ""), form.get("body", ""), form.get("to", "")
        extra = {k: form.get(k, "") for k in ("srName", "subject", "to", "isAuthorHidden")}
        now = time.time()
        if not subject.strip() or not body.strip():
            self._record_write(Write("modmail", to or None, body, now, ok=False, extra=extra))
            raise Reply(400, {"message": "Bad Request", "error": 400})
        seq = next(self._comment_seq)
        conv_id, msg_id = to_base36(seq), to_base36(seq + 1)
        self._record_write(Write("modmail", to or None, body, now, ok=True, result=conv_id, extra=extra))
        internal = to.lower() == str(token.username).lower()
        stamp = datetime.fromtimestamp(now, UTC).isoformat()
        author = {"isMod": True, "isAdmin": False, "name": token.username, "isOp": True,
                  "isParticipant": False, "isHidden": False, "id": 56923181, "isDeleted": False}
        sr = form.get("srName", self.subreddit)
        return {
            "conversation": {
                "isAuto": False, "objIds": [{"id": msg_id, "key": "messages"}], "isRepliable": True,
                "lastUserUpdate": None, "isInternal": internal, "lastModUpdate": stamp,
                "lastUpdated": stamp, "authors": [author],
                "owner": {"displayName": sr, "type": "subreddit", "id": "t5_2qh7a"},
                "id": conv_id, "isHighlighted": False, "subject": subject, "participant": {},
                "state": 0, "lastUnread": None, "numMessages": 1},
            "messages": {msg_id: {
                "body": f'<!-- SC_OFF --><div class="md"><p>{html.escape(body)}</p>\n</div><!-- SC_ON -->',
                "author": author, "isInternal": internal, "date": stamp, "bodyMarkdown": body,
                "id": msg_id}},
            "modActions": {},
        }
