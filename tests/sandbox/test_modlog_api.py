"""The sandbox's mod log (``GET /r/{sub}/about/log``) in Reddit's shape, written by approvals,
removals (with their reason), flair changes made through unmodified praw by a second moderator
account, and the ``top``/``search`` listings ``modbot collect`` reads."""

from __future__ import annotations

import pytest
from support import image_post, sandbox_get, sandbox_reddit, sandbox_token

from modbot.sandbox.server import SandboxServer

HUMAN, HUMAN_PW = "human_mod", "pw-human-mod"


@pytest.fixture
def human(server):
    server.moderator_accounts = {HUMAN: HUMAN_PW}
    return sandbox_reddit(server, username=HUMAN, password=HUMAN_PW)


def test_actions_through_praw_are_logged_in_reddits_shape(server, human):
    first, second = server.released[0], server.released[1]
    post = human.submission(id=first[3:])
    post.mod.remove(reason_id="18rbsx2xyccdn", mod_note="checked")
    post.mod.approve()
    human.submission(id=second[3:]).mod.flair(text="Painting")
    human.submission(id=second[3:]).mod.flair(text="Drawing", flair_template_id="tpl-1")

    body = sandbox_get(server, "/r/Art/about/log", sandbox_token(server)).json()
    assert body["kind"] == "Listing" and body["data"]["after"] is None
    things = body["data"]["children"]
    assert {t["kind"] for t in things} == {"modaction"}
    got = [(t["data"]["action"], t["data"]["target_fullname"]) for t in things]
    assert got == [("editflair", second), ("editflair", second), ("approvelink", first),
                   ("addremovalreason", first), ("removelink", first)]      # newest first
    for t in things:
        d = t["data"]
        assert d["id"].startswith("ModAction_") and d["mod"] == HUMAN and d["subreddit"] == "Art"
        assert isinstance(d["created_utc"], float) and d["target_permalink"].startswith("/r/Art/")
    reason = things[3]["data"]
    assert (reason["description"], reason["details"]) == ("Wrong medium", "checked")
    assert things[4]["data"]["details"] == "remove"

    # what the posts look like now
    p1, p2 = human.submission(id=first[3:]), human.submission(id=second[3:])
    assert p1.approved_by == HUMAN and not getattr(p1, "removed", False)
    assert p2.link_flair_text == "Drawing"
    kinds = [w.kind for w in server.writes]
    assert kinds.count("flair") == 2 and "approve" in kinds and "remove" in kinds

    # praw's ModAction objects, filtered by action and moderator
    entries = list(human.subreddit("Art").mod.log(action="editflair", limit=None))
    assert len(entries) == 2 and str(entries[0].mod) == HUMAN
    assert list(human.subreddit("Art").mod.log(mod="someone_else", limit=None)) == []


def test_mod_log_pages_with_after_and_before(server, human):
    for fullname in server.released[:5]:
        human.submission(id=fullname[3:]).mod.approve()
    tok = sandbox_token(server)
    ids = [e["id"] for e in reversed(server.modlog)]            # newest first
    page1 = sandbox_get(server, "/r/Art/about/log", tok, limit=2).json()["data"]
    assert [c["data"]["id"] for c in page1["children"]] == ids[:2] and page1["after"] == ids[1]
    page2 = sandbox_get(server, "/r/Art/about/log", tok, limit=2, after=page1["after"]).json()["data"]
    assert [c["data"]["id"] for c in page2["children"]] == ids[2:4]
    newer = sandbox_get(server, "/r/Art/about/log", tok, before=ids[2]).json()["data"]
    assert [c["data"]["id"] for c in newer["children"]] == ids[:2]
    # praw pages on by itself
    assert [e.id for e in human.subreddit("Art").mod.log(limit=None, request_limit=2)] == ids
    assert sandbox_get(server, "/r/Nope/about/log", tok).status_code == 403


def test_other_accounts_need_their_password(server):
    server.moderator_accounts = {HUMAN: HUMAN_PW}
    import prawcore

    with pytest.raises(prawcore.exceptions.OAuthException):
        sandbox_reddit(server, username=HUMAN, password="wrong").user.me()
    removed = server.released[0]
    sandbox_reddit(server).submission(id=removed[3:]).mod.remove()
    assert sandbox_reddit(server).submission(id=removed[3:]).banned_by == server.username


@pytest.fixture
def scored(sample):
    _, images = sample
    posts = [image_post("s1", "x.jpg", title="Harbour, me, oil on canvas, 2020", score=5,
                        link_flair_text="Painting"),
             image_post("s2", "x.jpg", title="Robot, me, procreate, 2020", score=50,
                        link_flair_text="Digital Art"),
             image_post("s3", "x.jpg", title="Old harbour, me, graphite, 2019", score=20,
                        link_flair_text="Drawing"),
             image_post("s4", "x.jpg", title="Other place, me, oil, 2020", score=1,
                        subreddit="ArtistLounge")]
    with SandboxServer(posts, images, released=4) as srv:
        yield srv


def test_top_by_score_within_the_time_filter(scored):
    reddit = sandbox_reddit(scored)
    scored.backdate("t3_s2", 2 * 86400)                          # two days old
    art = reddit.subreddit("Art")
    assert [s.id for s in art.top(time_filter="all", limit=None)] == ["s2", "s3", "s1"]
    assert [s.id for s in art.top(time_filter="day", limit=None)] == ["s3", "s1"]
    assert [s.id for s in art.top(time_filter="week", limit=None, request_limit=1)] == ["s2", "s3", "s1"]
    req = [r for r in scored.requests if r.path.rstrip("/") == "/r/Art/top"][-1]
    assert req.query["t"] == "week"


def test_search_matches_words_and_flair_restricted_to_the_subreddit(scored):
    reddit = sandbox_reddit(scored)
    art = reddit.subreddit("Art")
    assert sorted(s.id for s in art.search("harbour", limit=None)) == ["s1", "s3"]
    assert [s.id for s in art.search("flair:Painting", limit=None)] == ["s1"]
    assert [s.id for s in art.search('flair_name:"Digital Art"', limit=None)] == ["s2"]
    assert [s.id for s in art.search("harbour oil", sort="new", limit=None)] == ["s1"]
    assert list(art.search("nothing-like-this", limit=None)) == []
    assert sorted(s.id for s in reddit.subreddit("all").search("oil", limit=None)) == ["s1", "s4"]
    req = next(r for r in scored.requests if r.path.rstrip("/") == "/r/Art/search")
    assert req.query["restrict_sr"] in ("on", "1", "True") and req.query["q"] == "harbour"
