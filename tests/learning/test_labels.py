"""Labels and their precedence, the fixed evaluation split, evicted images
(:mod:`modbot.learning.labels`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO, fresh_db

from modbot.errors import ConfigError

PACS_SAMPLE = REPO / "tests" / "data" / "pacs_sample"


def add_submission(db, fullname, stated, *, images, verdict=None, seen_at=100.0):
    """A processed submission with its images (sha256, url) and an optional verdict kind."""
    db["submissions"].insert({"fullname": fullname, "id": fullname[3:], "subreddit": "Art",
                              "status": "done", "attempts": 1, "stated_medium": stated,
                              "first_seen_at": seen_at, "updated_at": seen_at})
    for pos, (sha, url) in enumerate(images):
        db["images"].insert({"submission": fullname, "position": pos, "url": url, "status": "ok",
                             "sha256": sha, "path": f"/cache/{sha}.jpg"})
    if verdict:
        db["verdicts"].insert({"submission": fullname, "kind": verdict, "stated": stated,
                               "predicted": stated if verdict == "match" else "digital",
                               "confidence": 0.9, "created_at": seen_at})


def add_review(db, fullname, true_medium, *, at, decision="confirm"):
    db["reviews"].insert({"submission": fullname, "decision": decision, "true_medium": true_medium,
                          "moderator": "mod", "created_at": at})


def sha(n: int) -> str:
    return f"{n:064x}"



def test_review_outranks_stated_and_policy_decides_the_rest(tmp_path):
    from modbot.learning.labels import LabelPolicy, gather_labels

    db = fresh_db(tmp_path)
    add_submission(db, "t3_a", "painting", images=[(sha(1), "u1")], verdict="mismatch")
    add_review(db, "t3_a", "photography", at=200.0)             # moderator: it is a photo
    add_submission(db, "t3_b", "drawing", images=[(sha(2), "u2")], verdict="match")
    add_submission(db, "t3_c", "digital", images=[(sha(3), "u3")], verdict="mismatch")
    add_submission(db, "t3_d", "drawing", images=[(sha(4), "u4")], verdict="uncertain")
    # the same image posted twice with different stated media: a conflict
    add_submission(db, "t3_e", "painting", images=[(sha(5), "u5")], verdict="match")
    add_submission(db, "t3_f", "digital", images=[(sha(5), "u5")], verdict="match")
    db["collect_runs"].insert({"id": 1, "subreddit": "Art", "listing": "new", "per_medium": 5,
                               "media": "[]", "status": "done", "started_at": 1.0})
    db["collected_posts"].insert({"fullname": "t3_g", "run_id": 1, "subreddit": "Art",
                                  "stated_medium": "ink", "stated_source": "title", "status": "ok",
                                  "sha256": sha(6), "image_url": "u6", "collected_at": 50.0})

    def labels(**policy):
        got = gather_labels(db, LabelPolicy(**policy), cutoff=1000.0)
        return {lb.sha256: (lb.medium, lb.source, lb.detail) for lb in got.labels}, got

    agreed, got = labels(stated="agreed")
    assert agreed == {sha(1): ("photography", "review", "confirm"),   # review beats stated
                      sha(2): ("drawing", "stated", "agreed"),        # model agreed
                      sha(6): ("ink", "collected", "collected")}
    assert got.dropped["conflicting_statements"] == 1
    assert got.dropped["policy:stated"] == 2                          # t3_c, t3_d
    assert got.by_source() == {"review": 1, "stated": 1, "collected": 1}

    trusted, _ = labels(stated="none", trusted_media=("drawing",), collected=False)
    assert trusted == {sha(1): ("photography", "review", "confirm"),
                       sha(2): ("drawing", "stated", "trusted"),
                       sha(4): ("drawing", "stated", "trusted")}       # trusted whatever the verdict
    everything, _ = labels(stated="all")
    assert everything[sha(3)] == ("digital", "stated", "all")
    # unflagged: every statement the judge did not flag (t3_d uncertain counts, t3_c mismatch not)
    unflagged, got = labels(stated="unflagged", collected=False)
    assert unflagged == {sha(1): ("photography", "review", "confirm"),
                         sha(2): ("drawing", "stated", "unflagged"),
                         sha(4): ("drawing", "stated", "unflagged")}
    assert got.dropped["policy:stated"] == 1                          # t3_c only

    # the cut-off: a later review is not used; the latest review before it is
    add_review(db, "t3_a", "digital", at=2000.0)
    assert gather_labels(db, LabelPolicy(), cutoff=1000.0).labels[0].medium == "photography"
    assert gather_labels(db, LabelPolicy(), cutoff=3000.0).labels[0].medium == "digital"
    early = gather_labels(db, LabelPolicy(stated="all"), cutoff=150.0)
    assert sha(1) in {lb.sha256 for lb in early.labels if lb.source == "stated"}

    with pytest.raises(ConfigError):
        LabelPolicy(stated="sometimes")
    with pytest.raises(ConfigError):
        LabelPolicy(trusted_media=("oil",))


def test_evaluation_split_is_fixed_and_stratified(tmp_path):
    from modbot.learning.labels import Label, assign_splits

    db = fresh_db(tmp_path)

    def label(n, medium):
        return Label(sha(n), medium, "review", "confirm", f"t3_{n}", None, None, 1.0)

    first = [label(i, "painting") for i in range(20)] + [label(100 + i, "drawing") for i in range(8)]
    sides = assign_splits(db, first, 0.25, now=1.0)
    assert sum(s == "eval" for k, s in sides.items() if int(k, 16) < 100) == 5     # round(0.25·20)
    assert sum(s == "eval" for k, s in sides.items() if int(k, 16) >= 100) == 2    # round(0.25·8)

    # more labels later: old images keep their side, new ones top each medium up to 25 %
    relabelled = [label(i, "digital") if i == 0 else label(i, "painting") for i in range(20)]
    more = relabelled + [label(100 + i, "drawing") for i in range(8)] + \
        [label(200 + i, "photography") for i in range(12)] + [label(20 + i, "painting") for i in range(20)]
    again = assign_splits(db, more, 0.25, now=2.0)
    assert all(again[k] == v for k, v in sides.items())
    photo = [again[sha(200 + i)] for i in range(12)]
    assert photo.count("eval") == 3
    painting_eval = sum(again[lb.sha256] == "eval" for lb in more if lb.medium == "painting")
    assert painting_eval == round(0.25 * 39)               # 4 kept + 6 new of the 39 paintings
    assert again[sha(0)] == "eval"                          # relabelled, but stays held out
    rows = db.execute("SELECT COUNT(*) FROM label_splits").fetchone()[0]
    assert rows == len({lb.sha256 for lb in more})
    with pytest.raises(ValueError):
        assign_splits(db, more, 1.0)


def test_evaluation_split_holds_out_whole_authors(tmp_path):
    """The gates must measure the model on artists it was not trained on: an author's images
    are all on one side, now and later."""
    from modbot.learning.labels import Label, assign_splits

    db = fresh_db(tmp_path)

    def label(n, medium, author):
        return Label(sha(n), medium, "stated", "unflagged", f"t3_{n}", None, None, 1.0, author=author)

    # painting: one prolific author (30) and six small ones (2 each) → 42 paintings, eval target 8
    labels = [label(i, "painting", "prolific") for i in range(30)]
    labels += [label(100 + 2 * k + j, "painting", f"small{k}") for k in range(6) for j in range(2)]
    # drawing: a single author → no drawing can be held out without holding out all of them
    labels += [label(300 + i, "drawing", "only_drawer") for i in range(10)]
    sides = assign_splits(db, labels, 0.2, now=1.0)
    by_author: dict[str, set[str]] = {}
    for lb in labels:
        by_author.setdefault(lb.author, set()).add(sides[lb.sha256])
    assert all(len(s) == 1 for s in by_author.values())                 # never split
    assert by_author["prolific"] == {"train"}                          # 30 ≫ the target of 8
    assert by_author["only_drawer"] == {"train"}                       # 10 vs target 2: closer at 0
    assert sum(s == {"eval"} for a, s in by_author.items() if a.startswith("small")) == 4  # 8 images
    # later: new images of a held-out author follow it; a new author is dealt like the others
    held = next(a for a, s in by_author.items() if s == {"eval"})
    later = labels + [label(500, "painting", held), label(501, "painting", "prolific")]
    again = assign_splits(db, later, 0.2, now=2.0)
    assert again[sha(500)] == "eval" and again[sha(501)] == "train"
    assert all(again[k] == v for k, v in sides.items())


def test_evicted_images_are_downloaded_again_or_skipped_with_a_reason(tmp_path):
    from modbot.imagecache import find_cached
    from modbot.images import ImageFetcher
    from modbot.learning.labels import Label, locate_images
    from modbot.sandbox.server import SandboxServer

    original = (PACS_SAMPLE / "painting" / "giraffe_pic_003.jpg").read_bytes()
    other = (PACS_SAMPLE / "digital" / "giraffe_pic_003.jpg").read_bytes()
    cache = tmp_path / "cache"
    with SandboxServer([], {"a.jpg": original, "b.jpg": other}) as server:
        with ImageFetcher(cache, allow_hosts=["127.0.0.1"]) as fetcher:
            from modbot.domain import ImageRef

            got = fetcher.fetch(ImageRef(f"{server.url}/i/a.jpg", "direct"))
            digest = got.sha256

            def label(url):
                return Label(digest, "painting", "review", "confirm", "t3_x", got.path, url, 1.0)

            assert locate_images([label(None)], cache)[0].path == Path(got.path)   # cached
            Path(got.path).unlink()                                                 # evicted
            assert locate_images([label(None)], cache)[0].reason == "evicted"
            assert locate_images([label(f"{server.url}/i/a.jpg")], cache)[0].reason == "evicted"
            back = locate_images([label(f"{server.url}/i/a.jpg")], cache, fetcher=fetcher)[0]
            assert back.reason is None and back.path.read_bytes() == original
            assert find_cached(cache, digest) == back.path

            back.path.unlink()
            gone = locate_images([label(f"{server.url}/i/missing.jpg")], cache, fetcher=fetcher)[0]
            assert gone.path is None and gone.reason == "evicted_refetch_failed:http_status"
            changed = locate_images([label(f"{server.url}/i/b.jpg")], cache, fetcher=fetcher)[0]
            assert changed.path is None and changed.reason == "evicted_changed"
