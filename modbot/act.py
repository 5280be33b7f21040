"""Act stage: report, comment, remove and note on a mismatch — at most once per submission, ever.

Action kinds: ``report``, ``comment`` (optionally distinguished, stickied, locked), ``remove``
(mismatches at or above ``[actions] remove_threshold``) and its ``removal_message``, and
``note:<kind>`` — a mod note on the author for each of ``report``, ``comment``, ``remove``
taken (sent, or recorded as ``dry_run``) — and ``repost_report``, the report of a repost
finding (:mod:`modbot.repost`, ``[reposts] report``). The Reddit calls are in :mod:`modbot.modtools`.

Order of operations for each action kind:

1. claim: insert the ``actions`` row (``intent``, or ``dry_run`` when the kind is switched off)
   and commit. The unique index (submission, kind) makes a second claim fail, so a restart, a
   retry or a duplicate stream item can never act again.
2. call Reddit (only for ``intent``).
3. record the outcome: ``sent`` (with the comment's fullname), ``failed`` (Reddit refused),
   or ``unknown`` when the request may have been applied but no answer came (a timeout or 5xx:
   :class:`~modbot.errors.AmbiguousWriteError`, never resent). When the daemon is stopping
   and the API budget would make the request wait (:class:`~modbot.errors.ShuttingDown`),
   nothing was sent: the claim is removed and the outcome is ``abandoned`` (the submission is
   processed again on the next start). A 429 (``TooManyRequests``: refused, not applied) also
   removes the claim, with outcome ``deferred``: the pipeline retries the submission later.

A crash between 1 and 3 leaves ``intent``. On start-up :meth:`Actor.reconcile` settles those:
a comment is looked up among the submission's comments by our account, a removal on the
submission (``banned_by`` our account) — found → ``sent``; anything unverifiable becomes
``unknown`` and is never re-sent. Moderators see both in
``modbot review``. The cost of this order is that a crash can lose an action, never double it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import prawcore
import structlog

from modbot import modtools
from modbot.config import ActionsConfig, RepostsConfig
from modbot.domain import Post, Verdict, VerdictKind
from modbot.errors import AmbiguousWriteError, ShuttingDown
from modbot.record import Store
from modbot.repost import RepostFinding, report_text

#: Reddit's limit on a report reason, in characters.
REPORT_REASON_MAX = 100
#: Action kind of the report of a repost finding.
REPOST_REPORT = "repost_report"

log = structlog.get_logger("modbot.act")


@dataclass(frozen=True)
class _RedditState:
    """What Reddit shows of a submission right before acting: ``removed`` is its
    ``removed_by_category`` (``moderator``, ``automod_filtered``, ``deleted``, …) or None;
    ``my_comment`` modbot's own comment (fullname), if any; ``my_reports`` the reasons of every
    report of modbot's own (mismatch and repost reports alike)."""

    removed: str | None
    my_comment: str | None
    my_reports: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionOutcome:
    """What happened to one action kind for one submission: ``status`` as stored in ``actions``."""

    kind: str
    status: str
    detail: str | None = None


def render(template: str, post: Post, verdict: Verdict, model_version: str | None) -> str:
    """Fill a report/comment template. Placeholders: ``{predicted} {confidence} {stated}
    {model_version} {title}``; ``confidence`` is a float 0–1 (use ``{confidence:.0%}``)."""
    return template.format(
        predicted=verdict.predicted or "?",
        confidence=float(verdict.confidence or 0.0),
        stated=verdict.stated,
        model_version=model_version or "?",
        title=post.title,
    )


def report_reason(template: str, post: Post, verdict: Verdict, model_version: str | None) -> str:
    """The report reason, cut to Reddit's 100-character limit (with an ellipsis if cut)."""
    text = render(template, post, verdict, model_version)
    return text if len(text) <= REPORT_REASON_MAX else text[: REPORT_REASON_MAX - 1] + "…"


class Actor:
    """Performs the configured actions through praw. ``reddit`` is a ``praw.Reddit``."""

    def __init__(self, reddit: Any, store: Store, config: ActionsConfig) -> None:
        self.reddit = reddit
        self.store = store
        self.config = config
        self._username: str | None = None
        self._pending_quiet: Any = None  # the comment just sent, until it is quietened

    def act(self, post: Post, verdict: Verdict, model_version: str | None) -> list[ActionOutcome]:
        """Act on a verdict. Only ``mismatch`` leads to actions; returns one outcome per kind.

        Before anything is sent, the submission is read from Reddit once
        (:meth:`_state_on_reddit`): a post removed meanwhile gets no action (``skipped``), and a
        report or comment of modbot's own already on Reddit is recorded as ``sent`` instead of
        sent again — so "never twice" holds even when the local database was lost.
        """
        if verdict.kind is not VerdictKind.MISMATCH:
            return []
        plans = self._plans(post, verdict, model_version)
        state: _RedditState | ActionOutcome | None = None
        if any(enabled and self.store.action_status(post.fullname, kind) is None
               for kind, enabled, _ in plans):
            state = self._state_on_reddit(post)
        outcomes: list[ActionOutcome] = []
        for kind, enabled, text in plans:
            stopped = next((o for o in outcomes if o.status in ("abandoned", "deferred")), None)
            blocked = state if isinstance(state, ActionOutcome) else stopped
            if enabled and blocked is not None:
                # the budget blocks every request now: do not claim this kind either
                outcomes.append(ActionOutcome(kind, blocked.status, blocked.detail))
                continue
            outcome = self._act_one(post, kind, enabled, text,
                                    state if isinstance(state, _RedditState) else None)
            outcomes.append(outcome)
            if outcome.status not in ("abandoned", "deferred"):
                outcomes.extend(self._follow_ups(post, verdict, model_version, kind, outcome))
        return outcomes

    def report_repost(self, post: Post, finding: RepostFinding | None,
                      config: RepostsConfig) -> list[ActionOutcome]:
        """Report a repost finding (``repost_report``) as ``[reposts] report`` says: ``dry_run``
        records it only; ``on`` claims the row, reads the post on Reddit (removed: skipped;
        the same report of modbot's own already there: recorded as sent) and reports it with
        ``report_template`` (a link to the original) — at most once per submission, ever.
        Nothing for no finding, ``off``, or a kind not in ``report_kinds``."""
        if finding is None or config.report == "off" or finding.kind not in config.report_kinds:
            return []
        text = report_text(config.report_template, post, finding, REPORT_REASON_MAX)
        return [self._act_one(post, REPOST_REPORT, config.report == "on", text, None)]

    def _plans(self, post: Post, verdict: Verdict, model_version: str | None
               ) -> list[tuple[str, bool, str]]:
        """(kind, send it?, text) of each action for a mismatch: report and comment always
        (recorded as ``dry_run`` when off), ``remove`` when ``[actions] remove`` is not off
        and the confidence reaches ``remove_threshold``."""
        c = self.config
        plans = [
            ("report", c.report, report_reason(c.report_template, post, verdict, model_version)),
            ("comment", c.comment, modtools.comment_text(c, post, verdict, model_version)),
        ]
        if c.remove != "off" and float(verdict.confidence or 0.0) >= c.remove_threshold:
            plans.append(("remove", c.remove == "on",
                          f"removal reason: {c.removal_reason or '(none)'}"))
        return plans

    def _follow_ups(self, post: Post, verdict: Verdict, model_version: str | None,
                    kind: str, outcome: ActionOutcome) -> list[ActionOutcome]:
        """After ``kind`` was taken (its row ``sent`` or ``dry_run``): the removal message (after
        ``remove``) and the mod note on the author (``note:<kind>``), each claimed like any
        action. The follow-up of a ``dry_run`` action is ``dry_run`` too; nothing follows an
        action that failed, was skipped or was found already on Reddit."""
        parent = self.store.action_status(post.fullname, kind)
        if parent not in ("sent", "dry_run") or outcome.status == "already_on_reddit":
            return []
        c, out = self.config, []
        if kind == "remove" and c.removal_message.strip():
            text = modtools.fill(c.removal_message, post, verdict, model_version, action=kind)
            out.append(self._follow_up(post, "removal_message", parent == "sent", text,
                                       lambda: modtools.send_removal_message(self.reddit, post, c, text)))
        if c.notes != "off" and not any(o.status in ("abandoned", "deferred") for o in out):
            text = modtools.note_text(c, post, verdict, model_version, kind)
            out.append(self._follow_up(post, f"note:{kind}", parent == "sent" and c.notes == "on",
                                       text, lambda: modtools.create_note(self.reddit, post, text,
                                                                          c.note_label)))
        return out

    def _follow_up(self, post: Post, kind: str, enabled: bool, text: str,
                   call: Callable[[], str | None]) -> ActionOutcome:
        """Claim ``kind`` (``intent`` when ``enabled``, else ``dry_run``), then ``call`` it."""
        status = "intent" if enabled else "dry_run"
        if not self.store.claim_action(post.fullname, kind, status=status, text=text):
            return ActionOutcome(kind, "already_recorded", self.store.action_status(post.fullname, kind))
        if not enabled:
            return ActionOutcome(kind, "dry_run")
        if kind.startswith("note:") and not modtools.has_author(post):
            detail = "the author's account is deleted"
            self.store.complete_action(post.fullname, kind, status="skipped", error=detail)
            return ActionOutcome(kind, "skipped", detail)
        return self._send(post, kind, text, call)

    def _act_one(self, post: Post, kind: str, enabled: bool, text: str,
                 state: _RedditState | None) -> ActionOutcome:
        """Claim the action row, then send it — unless Reddit shows it is not needed."""
        status = "intent" if enabled else "dry_run"
        if not self.store.claim_action(post.fullname, kind, status=status, text=text):
            return ActionOutcome(kind, "already_recorded", self.store.action_status(post.fullname, kind))
        if not enabled:
            return ActionOutcome(kind, "dry_run")
        if state is None:  # the row was not there when act() looked, so Reddit was not read
            fetched = self._state_on_reddit(post)
            if isinstance(fetched, ActionOutcome):
                self.store.release_action(post.fullname, kind)
                return ActionOutcome(kind, fetched.status, fetched.detail)
            state = fetched
        if state.removed:
            detail = f"submission removed ({state.removed}) before modbot acted"
            self.store.complete_action(post.fullname, kind, status="skipped", error=detail)
            log.info("action_skipped", fullname=post.fullname, kind=kind, reason=detail)
            return ActionOutcome(kind, "skipped", detail)
        earlier = {"comment": state.my_comment, "report": self._my_mismatch_report(state),
                   REPOST_REPORT: text if text in state.my_reports else None}.get(kind)
        if earlier:
            self.store.complete_action(post.fullname, kind, status="sent", reddit_id=state.my_comment
                                       if kind == "comment" else None, error="found on Reddit")
            log.warning("action_found_on_reddit", fullname=post.fullname, kind=kind)
            return ActionOutcome(kind, "already_on_reddit", earlier)
        return self._send(post, kind, text, self._caller(post, kind, text))

    def _caller(self, post: Post, kind: str, text: str) -> Callable[[], str | None]:
        """The Reddit call of a main action kind (report, comment, remove); returns the id to
        record (the comment's fullname)."""
        if kind in ("report", REPOST_REPORT):
            return lambda: self.reddit.submission(id=post.id).report(text) and None
        if kind == "remove":
            return lambda: modtools.remove_submission(self.reddit, post, self.config) and None

        def comment() -> str | None:
            reply = self.reddit.submission(id=post.id).reply(body=text)
            self._pending_quiet = reply
            return getattr(reply, "fullname", None)
        return comment

    def _quiet(self, post: Post) -> None:
        """Distinguish/sticky/lock the comment just sent, as configured. A failure is logged
        and noted on the (already ``sent``) comment row: the comment is not sent again."""
        reply, self._pending_quiet = self._pending_quiet, None
        if reply is None:
            return
        try:
            done = modtools.quiet_comment(reply, self.config)
        except Exception as exc:  # praw/prawcore raise many types; the comment stays
            detail = f"comment sent, but not quietened: {type(exc).__name__}: {exc}"[:300]
            self.store.complete_action(post.fullname, "comment", status="sent",
                                       reddit_id=getattr(reply, "fullname", None), error=detail)
            log.warning("comment_not_quietened", fullname=post.fullname, error=detail)
            return
        if done:
            log.info("comment_quietened", fullname=post.fullname, done=done)

    def _my_mismatch_report(self, state: _RedditState) -> str | None:
        """modbot's own earlier mismatch report among its reports on Reddit: one that starts
        like ``[actions] report_template`` (its text before the first placeholder), so that a
        repost report is never taken for it; with a template that starts with a placeholder,
        any report of modbot's own."""
        prefix = self.config.report_template.split("{", 1)[0]
        return next((r for r in state.my_reports if r.startswith(prefix)), None)

    def _me(self) -> str:
        if self._username is None:
            self._username = str(self.reddit.user.me()).lower()
        return self._username

    def _state_on_reddit(self, post: Post) -> _RedditState | ActionOutcome:
        """The submission as Reddit has it now (one ``GET /comments/<id>``): removed or not,
        and modbot's own report and comment on it. A failure to read it defers the actions
        (``deferred``: the post is retried later) or abandons them when stopping."""
        try:
            me = self._me()
            submission = self.reddit.submission(id=post.id)
            submission.comments.replace_more(limit=0)
            removed = getattr(submission, "removed_by_category", None)
            reports = getattr(submission, "mod_reports", None) or []
            mine = tuple(str(r[0]) for r in reports if len(r) > 1 and str(r[1]).lower() == me)
            my_comment = next((c.fullname for c in submission.comments
                               if c.author is not None and str(c.author).lower() == me), None)
        except ShuttingDown:
            return ActionOutcome("check", "abandoned", "shutting down before the check was sent")
        except Exception as exc:  # praw/prawcore raise many types; unverifiable = not now
            detail = f"could not read the submission first: {type(exc).__name__}: {exc}"[:300]
            log.warning("action_deferred", fullname=post.fullname, error=detail)
            return ActionOutcome("check", "deferred", detail)
        return _RedditState(str(removed) if removed else None, my_comment, mine)

    def _send(self, post: Post, kind: str, text: str,
              call: Callable[[], str | None]) -> ActionOutcome:
        """Make the claimed action's Reddit ``call`` and record its outcome (module docstring)."""
        try:
            reddit_id = call()
        except ShuttingDown:
            # the request was never sent (the daemon is stopping): undo the claim, so the
            # submission, recorded as abandoned, acts on its next run
            self.store.release_action(post.fullname, kind)
            log.info("action_abandoned", fullname=post.fullname, kind=kind)
            return ActionOutcome(kind, "abandoned", "shutting down before the request was sent")
        except prawcore.TooManyRequests as exc:
            # refused before it was applied: undo the claim; the pipeline retries the post later
            self.store.release_action(post.fullname, kind)
            detail = f"TooManyRequests (retry-after {exc.retry_after})"
            log.warning("action_deferred", fullname=post.fullname, kind=kind, error=detail)
            return ActionOutcome(kind, "deferred", detail)
        except AmbiguousWriteError as exc:
            # the first attempt timed out or got a 5xx: Reddit may have applied it; never resend
            detail = f"{type(exc).__name__}: {exc}"
            self.store.complete_action(post.fullname, kind, status="unknown", error=detail)
            log.warning("action_unknown", fullname=post.fullname, kind=kind, error=detail)
            return ActionOutcome(kind, "unknown", detail)
        except Exception as exc:  # praw/prawcore raise many types; all mean "not done"
            detail = f"{type(exc).__name__}: {exc}"
            self.store.complete_action(post.fullname, kind, status="failed", error=detail)
            log.warning("action_failed", fullname=post.fullname, kind=kind, error=detail)
            return ActionOutcome(kind, "failed", detail)
        self.store.complete_action(post.fullname, kind, status="sent", reddit_id=reddit_id)
        if kind == "comment":
            self._quiet(post)
        return ActionOutcome(kind, "sent", reddit_id)

    def reconcile(self) -> list[ActionOutcome]:
        """Settle actions left in ``intent`` by a crash (see module docstring). Never re-sends:
        a comment found among the submission's comments, or a removal shown on Reddit as
        modbot's, becomes ``sent``; anything else ``unknown``."""
        outcomes = []
        for fullname, kind in self.store.dangling_actions():
            status, detail = "unknown", "process stopped between intent and answer"
            if kind in ("comment", "remove"):
                try:
                    found = self._found_on_reddit(fullname, kind)
                except ShuttingDown:
                    break  # stopping: leave it in intent for the next start
                except Exception as exc:  # unverifiable: stay unknown, never resend
                    found, detail = None, f"could not verify: {type(exc).__name__}"
                if found is not None:
                    status, detail = "sent", found
            self.store.complete_action(fullname, kind, status=status,
                                       reddit_id=detail if status == "sent" and kind == "comment"
                                       else None,
                                       error=None if status == "sent" else detail)
            log.warning("action_reconciled", fullname=fullname, kind=kind, status=status)
            outcomes.append(ActionOutcome(kind, status, detail))
        return outcomes

    def _found_on_reddit(self, fullname: str, kind: str) -> str | None:
        """Whether a ``comment``/``remove`` of modbot's own is on Reddit for the submission
        ``fullname``: the comment's fullname, ``"removed by modbot"``, or None. praw errors
        propagate."""
        me = self._me()
        submission = self.reddit.submission(id=fullname.removeprefix("t3_"))
        if kind == "remove":
            removed = getattr(submission, "removed_by_category", None) == "moderator"
            by = str(getattr(submission, "banned_by", "") or "").lower()
            return "removed by modbot" if removed and by == me else None
        submission.comments.replace_more(limit=0)
        return next((c.fullname for c in submission.comments
                     if c.author is not None and str(c.author).lower() == me), None)
