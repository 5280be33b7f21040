"""The Reddit-compatible sandbox server, driven over real HTTP by unmodified praw, and the
shipped demo sample."""

from __future__ import annotations

import io
import json
import os
import time

# prawcore reads its request timeout once, at import; keep stalls short in this module.
os.environ.setdefault("PRAWCORE_TIMEOUT", "5")

import praw  # noqa: E402
import prawcore  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402
from PIL import Image  # noqa: E402

from modbot.sandbox.sample import load_sample, sample_summary, truth_by_fullname  # noqa: E402
from modbot.sandbox.server import SandboxServer, sniff_content_type  # noqa: E402
from support import REPO  # noqa: E402

SAMPLE_DIR = REPO / "modbot" / "sandbox" / "sample"


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture
def server(sample):
    posts, images = sample
    with SandboxServer(posts, images, released=10) as srv:
        yield srv


def make_reddit(server: SandboxServer, **overrides) -> praw.Reddit:
    kwargs = server.praw_kwargs(user_agent="python:modbot-tests:0.1 (by /u/modbot-sandbox)")
    kwargs.update(overrides)
    return praw.Reddit(**kwargs)


def token(server: SandboxServer) -> str:
    resp = requests.post(
        server.url + "/api/v1/access_token",
        auth=(server.client_id, server.client_secret),
        data={"grant_type": "password", "username": server.username, "password": server.password},
        timeout=5,
    )
    resp.raise_for_status()
    return resp.json()["access_token"]


def api_get(server: SandboxServer, path: str, tok: str, **params) -> requests.Response:
    return requests.get(server.url + path, params={"raw_json": 1, **params},
                        headers={"Authorization": f"bearer {tok}"}, timeout=5,
                        allow_redirects=False)


def drain(stream, max_nones: int = 3) -> list:
    """Items of a praw stream (``pause_after=0``) until it paused ``max_nones`` times in a row."""
    out, nones = [], 0
    for item in stream:
        if item is None:
            nones += 1
            if nones >= max_nones:
                break
            continue
        nones = 0
        out.append(item)
    return out


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

    reddit = make_reddit(server)
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
    reddit = make_reddit(server, password="wrong")
    with pytest.raises(prawcore.OAuthException) as info:
        reddit.user.me()
    assert info.value.error == "invalid_grant"


def test_bad_client_secret_is_401(server):
    reddit = make_reddit(server, client_secret="nope")
    with pytest.raises(prawcore.ResponseException) as info:
        reddit.user.me()
    assert info.value.response.status_code == 401


def test_bearer_token_checked_and_praw_refreshes_after_expiry(server):
    resp = api_get(server, "/r/Art/new", "not-a-token")
    assert resp.status_code == 401
    assert resp.json() == {"error": 401}
    assert "invalid_token" in resp.headers["www-authenticate"]
    assert requests.get(server.url + "/r/Art/new", timeout=5).status_code == 401  # no header

    reddit = make_reddit(server)
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
        tok = token(srv)
        seen = []
        for _ in range(3):
            resp = api_get(srv, "/r/Art/new", tok)
            assert resp.status_code == 200
            seen.append((float(resp.headers["x-ratelimit-remaining"]),
                         int(resp.headers["x-ratelimit-used"])))
            assert 1 <= int(resp.headers["x-ratelimit-reset"]) <= 600
        assert seen == [(2.0, 1), (1.0, 2), (0.0, 3)]
        resp = api_get(srv, "/r/Art/new", tok)
        assert resp.status_code == 429
        assert "retry-after" in resp.headers and "whoa there" in resp.text


# --------------------------------------------------------------------------- listings


def test_new_listing_limit_after_before_and_end(server):
    tok = token(server)
    released = server.released  # oldest first
    newest_first = ["t3_" + p.split("_", 1)[1] for p in reversed(released)]

    body = api_get(server, "/r/Art/new", tok, limit=4).json()
    assert body["kind"] == "Listing"
    names = [c["data"]["name"] for c in body["data"]["children"]]
    assert names == newest_first[:4]
    assert body["data"]["after"] == names[-1] and body["data"]["before"] is None
    assert all(c["kind"] == "t3" for c in body["data"]["children"])

    page2 = api_get(server, "/r/Art/new/", tok, limit=4, after=names[-1]).json()["data"]
    assert [c["data"]["name"] for c in page2["children"]] == newest_first[4:8]

    last = api_get(server, "/r/Art/new", tok, limit=4, after=newest_first[7]).json()["data"]
    assert [c["data"]["name"] for c in last["children"]] == newest_first[8:10]
    assert last["after"] is None  # end of the data: praw must not page on

    default = api_get(server, "/r/Art/new", tok).json()["data"]
    assert default["dist"] == 10 and default["after"] is None  # default limit 25 > 10 posts

    # before=X: the items newer than X, closest to X first in line, newest first
    newer = api_get(server, "/r/Art/new", tok, limit=3, before=newest_first[5]).json()["data"]
    assert [c["data"]["name"] for c in newer["children"]] == newest_first[2:5]
    assert newer["before"] == newest_first[2] and newer["after"] is None
    nothing = api_get(server, "/r/Art/new", tok, before=newest_first[0]).json()["data"]
    assert nothing["children"] == [] and nothing["after"] is None

    server.release_all()
    capped = api_get(server, "/r/Art/new", tok, limit=1000).json()["data"]
    assert capped["dist"] == len(server.released) == 42  # fewer than the cap of 100


def test_new_listing_multireddit_and_unknown_subreddit(server):
    tok = token(server)
    multi = api_get(server, "/r/Art+ArtPorn/new", tok).json()["data"]
    assert multi["dist"] == 10
    unknown = api_get(server, "/r/NoSuchSubredditHere/new", tok)
    assert unknown.status_code == 302  # Reddit redirects to a subreddit search
    assert "/subreddits/search" in unknown.headers["location"]
    reddit = make_reddit(server)
    with pytest.raises(prawcore.Redirect):
        list(reddit.subreddit("NoSuchSubredditHere").new(limit=5))


def test_praw_listing_pages_to_the_end(server):
    server.release(20)
    reddit = make_reddit(server)
    got = list(reddit.subreddit("Art").new(limit=None))
    assert [s.fullname for s in got] == list(reversed(server.released))
    new_paths = [r for r in server.requests if r.path == "/r/Art/new"]
    assert len(new_paths) == 1  # one page of up to 100, after null → no further request


def test_stream_yields_each_post_once_then_picks_up_releases(server):
    reddit = make_reddit(server)
    stream = reddit.subreddit("Art").stream.submissions(pause_after=0)
    first = drain(stream)
    assert [s.fullname for s in first] == server.released  # oldest first, each once
    assert len(first) == 10

    new = server.release(3)
    second = drain(stream)
    assert [s.fullname for s in second] == new
    more = server.release(2)
    third = drain(stream)
    assert [s.fullname for s in third] == more
    all_seen = [s.fullname for s in first + second + third]
    assert len(all_seen) == len(set(all_seen)) == 15

    queries = [r.query for r in server.requests if r.path == "/r/Art/new"]
    assert any("before" in q for q in queries)  # praw polled with before=<newest>
    assert any(q.get("limit") not in (None, "100") for q in queries)  # and varied limit


def test_about_comments_and_info(server):
    reddit = make_reddit(server)
    art = reddit.subreddit("Art")
    assert art.subscribers == 22396857 and art.name == "t5_2qh7a"

    first_id = server.released[0].split("_", 1)[1]
    submission = reddit.submission(first_id)
    assert submission.title  # fetched through GET /comments/{id}
    assert list(submission.comments) == []
    tok = token(server)
    pair = api_get(server, f"/comments/{first_id}/some_slug", tok).json()
    assert [x["kind"] for x in pair] == ["Listing", "Listing"]
    assert pair[0]["data"]["children"][0]["data"]["id"] == first_id

    pending_id = "jzxlnw"  # in the sample, not released yet
    assert api_get(server, f"/comments/{pending_id}", tok).status_code == 404
    info = list(reddit.info(fullnames=[server.released[1], "t3_" + pending_id, server.released[2]]))
    assert [s.fullname for s in info] == [server.released[1], server.released[2]]


def test_special_posts_parse_in_praw(server, sample):
    server.release_all()
    reddit = make_reddit(server)
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


# --------------------------------------------------------------------------- writes


def test_comment_report_remove_recorded(server):
    reddit = make_reddit(server)
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


# --------------------------------------------------------------------------- images, rendering


def test_images_served_with_sniffed_content_type(server, sample):
    _, images = sample
    jpg = next(n for n in images if n.startswith("pacs_photo"))
    resp = requests.get(f"{server.url}/i/{jpg}?auto=webp&s=abc", timeout=5)
    assert resp.status_code == 200 and resp.content == images[jpg]
    assert resp.headers["content-type"] == "image/jpeg"
    png = next(n for n in images if n.endswith(".png"))
    assert requests.get(f"{server.url}/i/{png}", timeout=5).headers["content-type"] == "image/png"

    html = next(n for n in images if n.startswith("imgur_"))
    resp = requests.get(f"{server.url}/i/{html}", timeout=5)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")

    broken = next(n for n in images if n.startswith("truncated_"))
    resp = requests.get(f"{server.url}/i/{broken}", timeout=5)
    assert resp.headers["content-type"] == "image/jpeg"
    with pytest.raises(OSError):
        Image.open(io.BytesIO(resp.content)).load()
    assert requests.get(f"{server.url}/i/missing.jpg", timeout=5).status_code == 404
    assert sniff_content_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"


def test_base_substituted_and_sandbox_keys_stripped(server):
    tok = token(server)
    server.release_all()
    text = api_get(server, "/r/Art/new", tok, limit=100).text
    assert "{base}" not in text and "_sandbox" not in text
    assert server.url + "/i/" in text
    reddit = make_reddit(server)
    for submission in reddit.subreddit("Art").new(limit=100):
        assert not any(k.startswith("_sandbox") for k in vars(submission))
        assert "{base}" not in submission.url


def test_unknown_path_is_reddit_404_json(server):
    tok = token(server)
    resp = api_get(server, "/api/v1/nothing_here", tok)
    assert resp.status_code == 404
    assert resp.json() == {"message": "Not Found", "error": 404}


# --------------------------------------------------------------------------- faults, control


def test_fault_429_with_retry_after_reaches_praw(server):
    fault = server.add_fault(r"^/r/Art/new", 429, headers={"retry-after": "4"})
    reddit = make_reddit(server)
    with pytest.raises(prawcore.TooManyRequests) as info:
        list(reddit.subreddit("Art").new(limit=5))
    assert float(info.value.retry_after) == 4.0  # prawcore keeps the header text
    assert "whoa there" in info.value.response.text
    assert fault.hits == 1
    assert len(list(reddit.subreddit("Art").new(limit=5))) == 5  # used up: normal again
    assert [r.status for r in server.requests if r.path == "/r/Art/new"] == [429, 200]
    assert server.requests[-2].fault is True


def test_fault_503_is_retried_by_prawcore(server):
    server.add_fault(r"^/r/Art/new", 503, times=1)
    reddit = make_reddit(server)
    assert len(list(reddit.subreddit("Art").new(limit=3))) == 3
    assert [r.status for r in server.requests if r.path == "/r/Art/new"] == [503, 200]


def test_fault_truncated_body_and_stall(server):
    tok = token(server)
    server.add_fault(r"^/r/Art/new", 200, body={"kind": "Listing", "data": {"children": []}},
                     truncate_to=10)
    with pytest.raises(requests.exceptions.RequestException):
        api_get(server, "/r/Art/new", tok).json()
    server.add_fault(r"^/i/", 200, body=b"\xff\xd8\xff", delay_s=1.0)
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.url + "/i/anything.jpg", timeout=0.3)
    assert time.monotonic() - start < 1.0


def test_release_control_and_auto_release(server):
    assert server.pending == 32 and len(server.released) == 10
    resp = requests.post(server.url + "/_sandbox/release?n=2", timeout=5).json()
    assert len(resp["released"]) == 2 and resp["pending"] == 30
    state = requests.get(server.url + "/_sandbox/state", timeout=5).json()
    assert state["released"] == 12 and state["released_fullnames"] == server.released
    server.auto_release(0.05, n=5)
    deadline = time.monotonic() + 5
    while server.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.pending == 0 and len(server.released) == 42
    assert server.release() == []  # nothing left


def test_constructor_rejects_duplicate_ids():
    with pytest.raises(ValueError):
        SandboxServer([{"id": "a"}, {"id": "a"}], {})


# --------------------------------------------------------------------------- sample


def test_sample_contents(sample):
    posts, images = sample
    summary = sample_summary(posts)
    assert summary["posts"] == 42
    assert summary["by_kind"] == {"image": 35, "gallery": 1, "video": 1, "self": 1, "deleted": 1,
                                  "broken_image": 1, "html_page": 1, "crosspost": 1}
    assert summary["wrong_stated"] == 6
    ids = [p["id"] for p in posts]
    assert len(ids) == len(set(ids))
    times = [p["created_utc"] for p in posts]
    assert times == sorted(times)  # release order, oldest first
    for post in posts:
        truth = post["_sandbox_truth"]
        assert truth["medium"] in (None, "digital", "painting", "drawing", "photography", "sculpture")
        assert truth["wrong_stated"] == (truth["medium"] is not None and truth["stated"] is not None
                                         and truth["medium"] != truth["stated"])
        for name in truth["images"]:
            assert name in images
            assert f"{{base}}/i/{name}" in json.dumps(post)
    pacs = [n for n in images if n.startswith("pacs_")]
    assert len(pacs) >= 30
    assert pacs and all("_giraffe_" in n for n in pacs)  # the held-out object only
    media = {p["_sandbox_truth"]["medium"] for p in posts if p["_sandbox_truth"]["kind"] == "image"}
    assert media == {"digital", "painting", "drawing", "photography", "sculpture"}
    size = sum(f.stat().st_size for f in SAMPLE_DIR.rglob("*") if f.is_file())
    assert size < 2_000_000
