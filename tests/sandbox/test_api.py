"""The Reddit endpoints of the sandbox (``modbot.sandbox.api``), driven over real HTTP by
unmodified praw: token grants, rate limit, listings, things, and the moderation writes."""

from __future__ import annotations

import praw
import prawcore
import pytest
import requests
from support import drain_stream, sandbox_get, sandbox_reddit, sandbox_token

from modbot.sandbox.sample import truth_by_fullname
from modbot.sandbox.server import SandboxServer


# --------------------------------------------------------------------------- auth


def test_password_grant_token_shape_and_me(server):
    resp = requests.post(server.url + "/api/v1/access_token/",
                         auth=(server.client_id, server.client_secret),
                         data={"grant_type": "password", "username": server.username,
                               "password": server.password}, timeout=5)
    body = resp.json()
    assert resp.status_code == 200
    assert set(body) >= {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600

    reddit = sandbox_reddit(server)
    me = reddit.user.me()
    assert me.name == server.username
    assert reddit.auth.limits["remaining"] is not None
    assert reddit.auth.limits["used"] >= 1
    paths = [(r.method, r.path, r.status) for r in server.requests]
    assert ("POST", "/api/v1/access_token", 200) in paths
    assert ("GET", "/api/v1/me", 200) in paths
    # the password is never kept in the request log
    assert all(r.form.get("password") in (None, "<redacted>") for r in server.requests)


def test_bad_password_is_200_invalid_grant_like_reddit(server):
    resp = requests.post(server.url + "/api/v1/access_token",
                         auth=(server.client_id, server.client_secret),
                         data={"grant_type": "password", "username": server.username,
                               "password": "wrong"}, timeout=5)
    assert resp.status_code == 200 and resp.json() == {"error": "invalid_grant"}
    reddit = sandbox_reddit(server, password="wrong")
    with pytest.raises(prawcore.OAuthException) as info:
        reddit.user.me()
    assert info.value.error == "invalid_grant"


def test_bad_client_secret_is_401(server):
    reddit = sandbox_reddit(server, client_secret="nope")
    with pytest.raises(prawcore.ResponseException) as info:
        reddit.user.me()
    assert info.value.response.status_code == 401


def test_bearer_token_checked_and_praw_refreshes_after_expiry(server):
    resp = sandbox_get(server, "/r/Art/new", "not-a-token")
    assert resp.status_code == 401
    assert resp.json() == {"error": 401}
    assert "invalid_token" in resp.headers["www-authenticate"]
    assert requests.get(server.url + "/r/Art/new", timeout=5).status_code == 401  # no header

    reddit = sandbox_reddit(server)
    assert len(list(reddit.subreddit("Art").new(limit=5))) == 5
    grants_before = sum(r.path == "/api/v1/access_token" for r in server.requests)
    server.expire_tokens()
    assert len(list(reddit.subreddit("Art").new(limit=5))) == 5  # 401 → new token → retry
    statuses = [r.status for r in server.requests if r.path == "/r/Art/new"]
    assert 401 in statuses[-3:]
    assert sum(r.path == "/api/v1/access_token" for r in server.requests) == grants_before + 1


def test_ratelimit_headers_count_and_429_past_the_limit(sample):
    posts, images = sample
    with SandboxServer(posts, images, released=3, ratelimit=(3, 600)) as srv:
        tok = sandbox_token(srv)
        seen = []
        for _ in range(3):
            resp = sandbox_get(srv, "/r/Art/new", tok)
            assert resp.status_code == 200
            seen.append((float(resp.headers["x-ratelimit-remaining"]),
                         int(resp.headers["x-ratelimit-used"])))
            assert 1 <= int(resp.headers["x-ratelimit-reset"]) <= 600
        assert seen == [(2.0, 1), (1.0, 2), (0.0, 3)]
        resp = sandbox_get(srv, "/r/Art/new", tok)
        assert resp.status_code == 429
        assert "retry-after" in resp.headers and "whoa there" in resp.text


# --------------------------------------------------------------------------- listings


def test_new_listing_limit_after_before_and_end(server):
    tok = sandbox_token(server)
    released = server.released  # oldest first
    newest_first = ["t3_" + p.split("_", 1)[1] for p in reversed(released)]

    body = sandbox_get(server, "/r/Art/new", tok, limit=4).json()
    assert body["kind"] == "Listing"
    names = [c["data"]["name"] for c in body["data"]["children"]]
    assert names == newest_first[:4]
    assert body["data"]["after"] == names[-1] and body["data"]["before"] is None
    assert all(c["kind"] == "t3" for c in body["data"]["children"])

    page2 = sandbox_get(server, "/r/Art/new/", tok, limit=4, after=names[-1]).json()["data"]
    assert [c["data"]["name"] for c in page2["children"]] == newest_first[4:8]

    last = sandbox_get(server, "/r/Art/new", tok, limit=4, after=newest_first[7]).json()["data"]
    assert [c["data"]["name"] for c in last["children"]] == newest_first[8:10]
    assert last["after"] is None  # end of the data: praw must not page on

    default = sandbox_get(server, "/r/Art/new", tok).json()["data"]
    assert default["dist"] == 10 and default["after"] is None  # default limit 25 > 10 posts

    # before=X: the items newer than X, closest to X first in line, newest first
    newer = sandbox_get(server, "/r/Art/new", tok, limit=3, before=newest_first[5]).json()["data"]
    assert [c["data"]["name"] for c in newer["children"]] == newest_first[2:5]
    assert newer["before"] == newest_first[2] and newer["after"] is None
    nothing = sandbox_get(server, "/r/Art/new", tok, before=newest_first[0]).json()["data"]
    assert nothing["children"] == [] and nothing["after"] is None

    server.release_all()
    capped = sandbox_get(server, "/r/Art/new", tok, limit=1000).json()["data"]
    assert capped["dist"] == len(server.released) == 50  # fewer than the cap of 100


def test_new_listing_multireddit_and_unknown_subreddit(server):
    tok = sandbox_token(server)
    multi = sandbox_get(server, "/r/Art+ArtPorn/new", tok).json()["data"]
    assert multi["dist"] == 10
    unknown = sandbox_get(server, "/r/NoSuchSubredditHere/new", tok)
    assert unknown.status_code == 302  # Reddit redirects to a subreddit search
    assert "/subreddits/search" in unknown.headers["location"]
    reddit = sandbox_reddit(server)
    with pytest.raises(prawcore.Redirect):
        list(reddit.subreddit("NoSuchSubredditHere").new(limit=5))


def test_praw_listing_pages_to_the_end(server):
    server.release(20)
    reddit = sandbox_reddit(server)
    got = list(reddit.subreddit("Art").new(limit=None))
    assert [s.fullname for s in got] == list(reversed(server.released))
    new_paths = [r for r in server.requests if r.path == "/r/Art/new"]
    assert len(new_paths) == 1  # one page of up to 100, after null → no further request


def test_stream_yields_each_post_once_then_picks_up_releases(server):
    reddit = sandbox_reddit(server)
    stream = reddit.subreddit("Art").stream.submissions(pause_after=0)
    first = drain_stream(stream)
    assert [s.fullname for s in first] == server.released  # oldest first, each once
    assert len(first) == 10

    new = server.release(3)
    second = drain_stream(stream)
    assert [s.fullname for s in second] == new
    more = server.release(2)
    third = drain_stream(stream)
    assert [s.fullname for s in third] == more
    all_seen = [s.fullname for s in first + second + third]
    assert len(all_seen) == len(set(all_seen)) == 15

    queries = [r.query for r in server.requests if r.path == "/r/Art/new"]
    assert any("before" in q for q in queries)  # praw polled with before=<newest>
    assert any(q.get("limit") not in (None, "100") for q in queries)  # and varied limit


def test_about_comments_and_info(server):
    reddit = sandbox_reddit(server)
    art = reddit.subreddit("Art")
    assert art.subscribers == 22396857 and art.name == "t5_2qh7a"

    first_id = server.released[0].split("_", 1)[1]
    submission = reddit.submission(first_id)
    assert submission.title  # fetched through GET /comments/{id}
    assert list(submission.comments) == []
    tok = sandbox_token(server)
    pair = sandbox_get(server, f"/comments/{first_id}/some_slug", tok).json()
    assert [x["kind"] for x in pair] == ["Listing", "Listing"]
    assert pair[0]["data"]["children"][0]["data"]["id"] == first_id

    pending_id = "jzxlnw"  # in the sample, not released yet
    assert sandbox_get(server, f"/comments/{pending_id}", tok).status_code == 404
    info = list(reddit.info(fullnames=[server.released[1], "t3_" + pending_id, server.released[2]]))
    assert [s.fullname for s in info] == [server.released[1], server.released[2]]


def test_special_posts_parse_in_praw(server, sample):
    server.release_all()
    reddit = sandbox_reddit(server)
    by_id = {s.id: s for s in reddit.subreddit("Art").new(limit=100)}
    truths = truth_by_fullname(sample[0])
    kinds = {t["kind"]: fn.split("_", 1)[1] for fn, t in truths.items()}
    assert by_id[kinds["deleted"]].author is None  # "[deleted]" → None in praw
    assert by_id[kinds["deleted"]].url.startswith(server.url + "/i/")
    gallery = by_id[kinds["gallery"]]
    assert gallery.is_gallery and len(gallery.gallery_data["items"]) == 3
    statuses = sorted(m["status"] for m in gallery.media_metadata.values())
    assert statuses == ["unprocessed", "valid", "valid"]
    assert by_id[kinds["video"]].is_video
    assert by_id[kinds["self"]].is_self
    parent = by_id[kinds["crosspost"]].crosspost_parent_list[0]
    assert parent["url"].startswith(server.url + "/i/")


def test_base_substituted_and_sandbox_keys_stripped(server):
    tok = sandbox_token(server)
    server.release_all()
    text = sandbox_get(server, "/r/Art/new", tok, limit=100).text
    assert "{base}" not in text and "_sandbox" not in text
    assert server.url + "/i/" in text
    reddit = sandbox_reddit(server)
    for submission in reddit.subreddit("Art").new(limit=100):
        assert not any(k.startswith("_sandbox") for k in vars(submission))
        assert "{base}" not in submission.url


# --------------------------------------------------------------------------- writes


def test_comment_report_remove_recorded(server):
    reddit = sandbox_reddit(server)
    target = server.released[0]
    submission = reddit.submission(target.split("_", 1)[1])
    comment = submission.reply("modbot thinks this is a photograph")
    assert comment.fullname.startswith("t1_") and comment.body.startswith("modbot thinks")
    submission.report("modbot: looks like photography (91%), stated digital")
    submission.mod.remove()

    writes = server.writes
    assert [(w.kind, w.fullname) for w in writes] == [
        ("comment", target), ("report", target), ("remove", target)]
    assert writes[0].text == "modbot thinks this is a photograph" and writes[0].result == comment.fullname
    assert writes[1].text.startswith("modbot: looks like photography")
    assert all(w.ok for w in writes) and all(w.time > 0 for w in writes)

    refetched = reddit.submission(target.split("_", 1)[1])
    assert [c.fullname for c in refetched.comments] == [comment.fullname]
    assert refetched.removed is True and refetched.mod_reports[0][0].startswith("modbot:")
    assert list(reddit.info(fullnames=[comment.fullname]))[0].body == comment.body

    with pytest.raises(praw.exceptions.RedditAPIException) as info:
        submission.report("x" * 101)  # Reddit caps report reasons at 100 characters
    assert info.value.items[0].error_type == "TOO_LONG"
    assert server.writes[-1].kind == "report" and server.writes[-1].ok is False

    state = requests.get(server.url + "/_sandbox/state", timeout=5).json()
    assert [w["kind"] for w in state["writes"]] == ["comment", "report", "remove", "report"]
