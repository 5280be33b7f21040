"""The demo sample shipped with modbot: 50 r/Art-style submissions and their images.

Load it with :func:`load_sample`; it reads the packaged files (``modbot/sandbox/sample/``)
through :mod:`importlib.resources`, so it works in a fresh clone or an installed wheel, without
``../shared``. The files are written by ``python -m modbot.sandbox.build_sample`` (developers,
needs ``../shared/data``).

Each post is a Reddit ``t3`` ``data`` object whose URLs contain the placeholder ``{base}``
(the sandbox server substitutes its base URL) and an extra key ``_sandbox_truth`` (never served)::

    {"kind": "image" | "gallery" | "video" | "self" | "deleted" | "broken_image"
             | "html_page" | "crosspost",
     "medium": canonical medium of what the post shows, or None when nothing is classifiable,
     "stated": canonical medium its title/link flair states, or None,
     "wrong_stated": True for the deliberately mis-stated posts,
     "expect": "classify" or "skip:<ImageError reason>" (unsupported_post, decode_failed,
               not_an_image),
     "note": what is special, "images": served file names it uses,
     "source", "licence": only on the Battle for Wesnoth posts ("wesnoth", "GPL-2+")}

A flag (``mismatch`` verdict) on a post is right when its true ``medium`` differs from its
``stated`` one (the post is mis-stated), false when they are equal
(:func:`modbot.sandbox.demo.flag_truth`).

Contents: 32 single-image PACS posts (26 stated correctly, 6 mis-stated), 3 real r/Art images,
8 Battle for Wesnoth digital paintings (GPL-2+; 6 stated digital, 2 mis-stated as oil on canvas
and graphite), 1 gallery (2 valid items + 1 ``unprocessed``), 1 video, 1 self post, 1 deleted
post, 1 truncated JPEG, 1 URL serving HTML, 1 crosspost — see :data:`SAMPLE_SOURCES`. The
licence of every Wesnoth image is recorded in ``sample/licences.json`` (:func:`load_licences`),
beside ``sample/GPL-2.txt`` and ``sample/README.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

__all__ = ["SAMPLE_SOURCES", "load_licences", "load_sample", "sample_summary", "truth_by_fullname"]

#: Where every part of the sample comes from (paths relative to the repository).
SAMPLE_SOURCES: Mapping[str, str] = {
    "post shapes": (
        "Real Reddit API responses recorded by praw-dev/praw integration tests (BSD-2-Clause), "
        "../shared/data/reddit-api/: art_image_flair_1skex88.json (i.redd.it image post, r/Art, "
        "'Digital Art' flair and its template id), gallery_flair_1skft63.json + "
        "gallery_unprocessed_1khu9tf.json (gallery, item with status 'unprocessed'), the "
        "hosted:video post of listing_popular_hot_2026-04-13.json, deleted_image_flair_ah3gqo.json "
        "(author/selftext '[deleted]'), imgur_direct_1ski1ai.json (i.imgur.com domain), "
        "crosspost_flair_c27k6l.json (crosspost_parent_list)."
    ),
    "ids, titles, times": (
        "Real r/Art submissions of April-November 2020, ../shared/data/rart-2020/posts.jsonl "
        "(from MWilliamson96/RedditArtClassifier, data/meta_data_final.json; no licence stated, "
        "used as test data). Titles are chosen so their stated medium matches the image, except "
        "the 6 PACS posts marked wrong_stated. Exceptions: the self post (id sbx0s1), the "
        "crosspost's parent in r/painting (id sbx0p1) and the 8 Battle for Wesnoth posts "
        "(ids sbxw01-sbxw08, titles 'Name, Battle for Wesnoth artists, medium, 2021', 2 of "
        "them mis-stated) are sandbox-made."
    ),
    "images": (
        "PACS (Li, Yang, Song, Hospedales, ICCV 2017; ../shared/data/pacs/) object giraffe "
        "only, which is held out from the model's training; depictions map to media "
        "art_painting->painting, cartoon->digital, sketch->drawing, photo->photography; original "
        "bytes (227x227 JPEG, PNG for sketches). Three real r/Art images "
        "(../shared/data/rart-2020/images/): g71e7t (polymer clay sculpture) and jn7aru (digital) "
        "re-encoded with Pillow to at most 1024 px, JPEG quality 85 (originals ~1 MB); jn8b8n "
        "(digital) original bytes. Eight Battle for Wesnoth digital paintings (6 portraits, 2 "
        "story images; GPL-2+, Debian packages wesnoth-1.16-data, -dw, -dm, -httt, -low, -utbs; "
        "../shared/data/realart/digital/wesnoth__*, at most 320 px), alpha composited on a "
        "plain off-white background and re-encoded as JPEG quality 85 "
        "(modbot.sandbox.build_wesnoth); per-image records in sample/licences.json, licence "
        "text in sample/GPL-2.txt. No other realart image is shipped (they state no licence). "
        "The issue-15 model (model/MODEL_CARD.md) was trained on all wesnoth art and on 100 "
        "PACS images per depiction and object (giraffe included; 15 of the sample's PACS "
        "images among them), so the demo demonstrates the daemon; it does not test the model."
    ),
    "sandbox-made": (
        "Authors (sandbox_artist_NN), link flair on some posts (texts like r/Art's: 'Digital Art', "
        "'Painting', 'Drawing', 'Photography'; only 'Digital Art''s template id is real), preview "
        "resolutions, the truncated JPEG (40% of a PACS cartoon), the HTML error page, the video's "
        "v.redd.it-style URLs (served 404 by the sandbox) and the self post's text."
    ),
}

_PACKAGE = "modbot.sandbox"


def load_sample() -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Load the shipped sample.

    :returns: ``(posts, images)``: posts as a list of ``t3`` data dicts in release order
        (oldest first; 50 of them), images as file name → bytes (what ``/i/{name}`` serves).
    :raises FileNotFoundError: when the package was installed without its sample data.
    """
    root = resources.files(_PACKAGE).joinpath("sample")
    posts = json.loads(root.joinpath("posts.json").read_text(encoding="utf-8"))
    images: dict[str, bytes] = {}
    for entry in root.joinpath("images").iterdir():
        if entry.is_file():
            images[entry.name] = entry.read_bytes()
    return posts, images


def load_licences() -> dict[str, dict[str, Any]]:
    """The licence records of the shipped third-party images (``sample/licences.json``):
    image file name → work, licence (SPDX-like, e.g. ``GPL-2+``), Debian package, source file
    under ``../shared/data`` and the modification made. Covers the Battle for Wesnoth images."""
    root = resources.files(_PACKAGE).joinpath("sample")
    return json.loads(root.joinpath("licences.json").read_text(encoding="utf-8"))


def truth_by_fullname(posts: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"t3_<id>": post["_sandbox_truth"]}`` for posts that carry a truth record."""
    return {f"t3_{p['id']}": dict(p["_sandbox_truth"]) for p in posts if "_sandbox_truth" in p}


def sample_summary(posts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts by kind, by true medium, of wrong-stated posts and by expected outcome."""
    truths = [p.get("_sandbox_truth", {}) for p in posts]
    return {
        "posts": len(posts),
        "by_kind": dict(Counter(t.get("kind") for t in truths)),
        "by_medium": dict(Counter(str(t.get("medium")) for t in truths)),
        "wrong_stated": sum(bool(t.get("wrong_stated")) for t in truths),
        "by_expect": dict(Counter(t.get("expect") for t in truths)),
    }
