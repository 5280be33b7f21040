"""The Reddit-side moderator tools modbot uses besides report and comment: mod notes on the
author, removal with a subreddit removal reason, the removal message, and quiet (distinguished,
stickied, locked) comments. Each function makes the praw calls of one action and nothing else;
:mod:`modbot.act` claims the action row before calling it and records the outcome after, so
each is done at most once.

praw calls (praw 8) and the endpoints they use:

* :func:`create_note` — ``subreddit.mod.notes.create(label=, note=, redditor=, thing=)`` →
  ``POST /api/mod/notes`` (one request: redditor and subreddit are given).
* :func:`remove_submission` — ``subreddit.mod.removal_reasons`` (``GET
  /api/v1/{sub}/removal_reasons``, only when a reason is configured) then
  ``submission.mod.remove(reason_id=)`` → ``POST /api/remove`` (+ ``POST
  /api/v1/modactions/removal_reasons`` with a reason).
* :func:`send_removal_message` — ``submission.mod.send_removal_message(message=, title=, type=)``
  → ``POST /api/v1/modactions/removal_link_message``.
* :func:`quiet_comment` — ``comment.mod.distinguish(how="yes", sticky=)`` → ``POST
  /api/distinguish``; ``comment.mod.lock()`` → ``POST /api/lock``.
"""

from __future__ import annotations

from typing import Any

from modbot.config import ActionsConfig
from modbot.domain import Post, Verdict
from modbot.errors import RedditError

#: Reddit's limit on a mod note, in characters.
NOTE_MAX = 250
#: Authors a note cannot be attached to.
NO_AUTHOR = ("", "[deleted]", "None")


def fill(template: str, post: Post, verdict: Verdict, model_version: str | None, **extra: Any) -> str:
    """Fill a template with ``{predicted} {confidence} {stated} {model_version} {title}
    {subreddit}`` and ``extra`` (e.g. ``action``); ``confidence`` is a float 0–1."""
    return template.format(
        predicted=verdict.predicted or "?", confidence=float(verdict.confidence or 0.0),
        stated=verdict.stated, model_version=model_version or "?", title=post.title,
        subreddit=post.subreddit, **extra)


def note_text(config: ActionsConfig, post: Post, verdict: Verdict, model_version: str | None,
              action: str) -> str:
    """The mod note for ``action`` (report, comment, remove), cut to :data:`NOTE_MAX` chars."""
    text = fill(config.note_template, post, verdict, model_version, action=action)
    return text if len(text) <= NOTE_MAX else text[: NOTE_MAX - 1] + "…"


def comment_text(config: ActionsConfig, post: Post, verdict: Verdict,
                 model_version: str | None) -> str:
    """The comment: ``comment_template``, plus ``comment_footer`` after a blank line when the
    comment is distinguished (``distinguish`` or ``sticky``) and the footer is not empty."""
    text = fill(config.comment_template, post, verdict, model_version)
    if (config.distinguish or config.sticky) and config.comment_footer.strip():
        text += "\n\n" + fill(config.comment_footer, post, verdict, model_version, action="comment")
    return text


def has_author(post: Post) -> bool:
    """True when the post has an author a note can be attached to (not deleted)."""
    return str(post.author or "") not in NO_AUTHOR


def create_note(reddit: Any, post: Post, text: str, label: str) -> str | None:
    """Add a mod note ``text`` (label ``label``, "" = none) on the author of ``post``, linked to
    the post. Returns the note's id. praw/prawcore exceptions propagate.

    ``thing`` is passed as a (lazy) ``Submission``: praw 8.0.3 fails an assertion when it is a
    fullname string together with the redditor and subreddit."""
    note = reddit.subreddit(post.subreddit).mod.notes.create(
        label=label or None, note=text, redditor=post.author,
        thing=reddit.submission(id=post.id))
    return getattr(note, "id", None)


def removal_reason_id(reddit: Any, subreddit: str, wanted: str) -> str:
    """The id of the subreddit's removal reason whose id or title (case-insensitive) is
    ``wanted``. Raises ``RedditError`` when there is none (praw errors propagate)."""
    reasons = list(reddit.subreddit(subreddit).mod.removal_reasons)
    for reason in reasons:
        if reason.id == wanted:
            return str(reason.id)
    for reason in reasons:
        if str(getattr(reason, "title", "")).strip().lower() == wanted.strip().lower():
            return str(reason.id)
    known = ", ".join(f"{r.id} ({getattr(r, 'title', '')})" for r in reasons) or "none"
    raise RedditError(f"r/{subreddit} has no removal reason {wanted!r} (known: {known})")


def remove_submission(reddit: Any, post: Post, config: ActionsConfig) -> str | None:
    """Remove ``post`` (not as spam) with the configured removal reason, if any. Returns the
    reason id used (None without one). Raises ``RedditError`` for an unknown reason (before
    anything is removed); praw/prawcore exceptions propagate."""
    reason_id = (removal_reason_id(reddit, post.subreddit, config.removal_reason)
                 if config.removal_reason.strip() else None)
    submission = reddit.submission(id=post.id)
    if reason_id:
        submission.mod.remove(reason_id=reason_id)
    else:
        submission.mod.remove()
    return reason_id


def send_removal_message(reddit: Any, post: Post, config: ActionsConfig, text: str) -> str | None:
    """Send the removal message ``text`` to the author of the removed ``post`` (type and title
    from ``config``). Returns the public comment's fullname for public types, else None."""
    submission = reddit.submission(id=post.id)
    comment = submission.mod.send_removal_message(
        message=text, title=config.removal_message_title[:50], type=config.removal_message_type)
    return getattr(comment, "fullname", None)


def quiet_comment(comment: Any, config: ActionsConfig) -> list[str]:
    """Distinguish (and sticky) and/or lock modbot's fresh ``comment`` as configured. Returns
    what was done (``distinguish``, ``lock``); praw/prawcore exceptions propagate."""
    done = []
    if config.distinguish or config.sticky:
        comment.mod.distinguish(how="yes", sticky=config.sticky)
        done.append("distinguish")
    if config.lock:
        comment.mod.lock()
        done.append("lock")
    return done
