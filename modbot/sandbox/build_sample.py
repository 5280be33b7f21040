"""Build the sandbox's demo sample from ``../shared/data`` (developers only).

Writes ``modbot/sandbox/sample/posts.json`` (Reddit ``t3`` ``data`` objects in release order,
oldest first) and ``modbot/sandbox/sample/images/*``. Run from the repository root::

    python -m modbot.sandbox.build_sample            # uses ../shared/data
    python -m modbot.sandbox.build_sample --shared /path/to/shared/data

Sources (see :data:`modbot.sandbox.sample.SAMPLE_SOURCES`):

* post shapes — real Reddit responses in ``../shared/data/reddit-api/`` (praw-dev/praw
  cassettes, BSD-2-Clause): ``art_image_flair_1skex88.json`` (i.redd.it image post),
  ``gallery_flair_1skft63.json`` + ``gallery_unprocessed_1khu9tf.json`` (gallery, a media item
  still processing), the ``hosted:video`` and self posts of
  ``listing_popular_hot_2026-04-13.json``, ``deleted_image_flair_ah3gqo.json``,
  ``imgur_direct_1ski1ai.json`` and ``crosspost_flair_c27k6l.json``;
* ids, titles and times — real r/Art submissions of 2020 in ``../shared/data/rart-2020/posts.jsonl``;
* images — PACS (Li et al., ICCV 2017) object ``giraffe`` only (:data:`HELD_OUT`; held out by
  the PACS-only model of issue 14 — the issue-15 model trained on 100 PACS images per
  depiction×object, giraffe included), the 3 real r/Art images of
  ``../shared/data/rart-2020/images/``, and 8 Battle for Wesnoth digital paintings (GPL-2+,
  ``../shared/data/realart/digital/wesnoth__*``; :mod:`modbot.sandbox.build_wesnoth`, whose
  licence records go to ``sample/licences.json``).

Everything the build chooses is listed in the tables below, so the output is reproducible
(``sample/GPL-2.txt`` and ``sample/README.md`` are kept as they are). Needs Pillow (to read
sizes, re-encode the two ~1 MB r/Art images to at most 1024 px, JPEG quality 85, and composite
the wesnoth cut-outs).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from modbot.sandbox.build_wesnoth import wesnoth_posts

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
OUT_DIR = Path(__file__).resolve().parent / "sample"

#: PACS objects held out from the PACS-only model of issue 14 (its test object); the only ones
#: the sample may show. The issue-15 model (model/MODEL_CARD.md) trained on a 100-per-cell PACS
#: subset of every object, giraffe included: PACS posts here are a demonstration, not a test.
HELD_OUT = ("giraffe",)

#: PACS depiction → canonical medium (the stand-in mapping of ../shared/README.md).
DEPICTION_MEDIUM = {"art_painting": "painting", "cartoon": "digital", "sketch": "drawing",
                    "photo": "photography"}

#: r/Art link flair texts used in the sample. "Digital Art" and its template id are real
#: (art_image_flair_1skex88.json); the other template ids are sandbox-made (uuid5).
FLAIRS = {"Digital Art": "58925882-d7bb-11f0-a38d-36aad52912e3", "Painting": None,
          "Drawing": None, "Photography": None, "Sculpture": None}

# (r/Art id from posts.jsonl, PACS depiction, object, link flair text or None)
CORRECT = [
    # paintings: titles stating oil / acrylic / watercolour
    ("jzo0wn", "art_painting", "giraffe", "Painting"),
    ("k0p3gy", "art_painting", "giraffe", None),
    ("k0qts1", "art_painting", "giraffe", None),
    ("jyrzut", "art_painting", "giraffe", "Painting"),
    ("jz47dd", "art_painting", "giraffe", None),
    ("jyqmwa", "art_painting", "giraffe", None),
    ("jzjev4", "art_painting", "giraffe", None),
    # digital: titles stating digital / Procreate / Illustrator
    ("jpm6m3", "cartoon", "giraffe", "Digital Art"),
    ("jy2hkq", "cartoon", "giraffe", None),
    ("jtrjf1", "cartoon", "giraffe", None),
    ("jw1k6b", "cartoon", "giraffe", "Digital Art"),
    ("k0l2d0", "cartoon", "giraffe", None),
    ("jnb2nc", "cartoon", "giraffe", None),
    ("jwuklg", "cartoon", "giraffe", "Digital Art"),
    # drawings: titles stating pencil / graphite / charcoal
    ("jpmt0c", "sketch", "giraffe", "Drawing"),
    ("jwd74k", "sketch", "giraffe", None),
    ("jr9ndp", "sketch", "giraffe", None),
    ("jxinec", "sketch", "giraffe", "Drawing"),
    ("jpa3sh", "sketch", "giraffe", None),
    ("js95ux", "sketch", "giraffe", None),
    ("jnm2qw", "sketch", "giraffe", "Drawing"),
    # photography: titles stating (digital) photography / photograph
    ("jqduj6", "photo", "giraffe", "Photography"),
    ("jnepje", "photo", "giraffe", None),
    ("jv22sq", "photo", "giraffe", None),
    ("jzn5l4", "photo", "giraffe", "Photography"),
    ("jrpcnq", "photo", "giraffe", None),
]

# Deliberately wrong stated medium: (id, depiction, object, flair, stated medium, note)
WRONG = [
    ("jn73cb", "photo", "giraffe", "Digital Art", "digital",
     "a photograph posted as Digital (flair and title)"),
    ("jvwulx", "sketch", "giraffe", None, "painting", "a pencil sketch under 'oil on canvas'"),
    ("jtt3f8", "cartoon", "giraffe", "Drawing", "drawing",
     "clip-art style digital image under 'graphite' with Drawing flair"),
    ("jkyp2v", "art_painting", "giraffe", None, "drawing", "a painting under 'graphite'"),
    ("jyojaf", "photo", "giraffe", "Painting", "painting",
     "a photograph under 'acrylic' with Painting flair"),
    ("jvgf9a", "sketch", "giraffe", None, "digital", "a line sketch under 'Digital'"),
]

# The three real r/Art images: (id, medium, flair)
REAL = [("g71e7t", "sculpture", None), ("jn7aru", "digital", "Digital Art"), ("jn8b8n", "digital", None)]

# Special kinds: r/Art ids whose real titles are reused.
GALLERY_ID = "jwelex"       # "Cool Art, Me, Watercolor, 2020"
VIDEO_ID = "jypi5u"         # "A Definite Shift, Me, Digital, 2020"
DELETED_ID = "jzxlnw"       # "Arctic Sunrise, me, digital, 2020"
BROKEN_ID = "jwhimv"        # "Bedroom, me, digital, 2020"
HTML_ID = "jxpo53"          # "Innocence lost, Me, digital, 2018"
CROSSPOST_ID = "jz8lit"     # "The Feels, me, oil on canvas, 2020"
SELF_ID = "sbx0s1"          # sandbox-made (r/Art has no recorded self post in ../shared)
CROSSPOST_PARENT_ID = "sbx0p1"  # sandbox-made parent in r/painting

PREVIEW_WIDTHS = (108, 216, 320, 640, 960, 1080)
REAL_MAX_SIDE = 1024
REAL_QUALITY = 85


class Builder:
    """Collects images and post dicts; see module docstring."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.api = shared / "reddit-api"
        self.rows = {}
        for line in (shared / "rart-2020" / "posts.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                self.rows[row["id"]] = row
        self.template = self._load("art_image_flair_1skex88.json")
        self.images: dict[str, bytes] = {}
        self.licences: dict[str, dict[str, Any]] = {}
        self._pacs_next: dict[tuple[str, str], int] = {}
        self._author_n = 0

    def _load(self, name: str) -> dict[str, Any]:
        return json.loads((self.api / name).read_text(encoding="utf-8"))

    # ----------------------------------------------------------------- images
    def pacs(self, depiction: str, obj: str) -> tuple[str, int, int]:
        """Next unused PACS image of (depiction, obj): (file name, width, height).

        The original bytes are kept (JPEG, or PNG for PACS sketches); the sandbox name is
        ``pacs_<depiction>_<object>_<original stem>.<ext>``.
        """
        if obj not in HELD_OUT:
            raise ValueError(f"only the held-out PACS objects {HELD_OUT} may be used")
        folder = self.shared / "pacs" / depiction / obj
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        k = self._pacs_next.get((depiction, obj), 0)
        self._pacs_next[(depiction, obj)] = k + 1
        path = files[(k * 37 + 5) % len(files)]  # deterministic spread over the folder
        name = f"pacs_{depiction}_{obj}_{path.stem}{path.suffix.lower()}"
        data = path.read_bytes()
        self.images[name] = data
        w, h = Image.open(io.BytesIO(data)).size
        return name, w, h

    def real_image(self, post_id: str) -> tuple[str, int, int]:
        src = (self.shared / "rart-2020" / "images" / f"{post_id}.jpg").read_bytes()
        img = Image.open(io.BytesIO(src))
        name = f"rart_{post_id}.jpg"
        if max(img.size) > REAL_MAX_SIDE and len(src) > 500_000:
            img = img.convert("RGB")
            img.thumbnail((REAL_MAX_SIDE, REAL_MAX_SIDE), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=REAL_QUALITY, optimize=True)
            self.images[name] = buf.getvalue()
        else:
            self.images[name] = src
        w, h = Image.open(io.BytesIO(self.images[name])).size
        return name, w, h

    # ----------------------------------------------------------------- posts
    def _sig(self, *parts: object) -> str:
        return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()  # noqa: S324

    def _preview(self, name: str, w: int, h: int) -> dict[str, Any]:
        stem = name.rsplit(".", 1)[0]
        res = [{"url": f"{{base}}/i/{name}?width={pw}&crop=smart&auto=webp&s={self._sig(name, pw)}",
                "width": pw, "height": round(h * pw / w)} for pw in PREVIEW_WIDTHS if pw < w]
        return {"images": [{"source": {"url": f"{{base}}/i/{name}?auto=webp&s={self._sig(name)}",
                                       "width": w, "height": h},
                            "resolutions": res, "variants": {}, "id": stem}],
                "enabled": True}

    def _author(self) -> tuple[str, str]:
        self._author_n += 1
        return f"sandbox_artist_{self._author_n:02d}", f"t2_sbx{self._author_n:04d}"

    @staticmethod
    def _flair(post: dict[str, Any], flair: str | None) -> None:
        if flair is None:
            post.update(link_flair_text=None, link_flair_richtext=[], link_flair_type="text",
                        link_flair_css_class=None, link_flair_text_color="dark",
                        link_flair_background_color="")
            post.pop("link_flair_template_id", None)
        else:
            template_id = FLAIRS[flair] or str(uuid.uuid5(uuid.NAMESPACE_URL, "r/Art flair " + flair))
            post.update(link_flair_text=flair, link_flair_richtext=[{"e": "text", "t": flair}],
                        link_flair_type="richtext", link_flair_css_class="",
                        link_flair_text_color="dark", link_flair_background_color="#dadada",
                        link_flair_template_id=template_id)

    def base_post(self, post_id: str, title: str | None = None, created: float | None = None,
                  flair: str | None = None) -> dict[str, Any]:
        """The image-post template with id/title/time/author/flair of one r/Art submission."""
        row = self.rows.get(post_id)
        title = title if title is not None else row["title"]
        created = created if created is not None else float(row["unix_time"])
        post = copy.deepcopy(self.template)
        author, author_fullname = self._author()
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50].rstrip("_")
        post.update(
            id=post_id, name=f"t3_{post_id}", title=title, created=created, created_utc=created,
            author=author, author_fullname=author_fullname,
            permalink=f"/r/Art/comments/{post_id}/{slug}/",
            ups=1, score=1, upvote_ratio=1.0, num_comments=0, num_crossposts=0,
            content_categories=None,
        )
        self._flair(post, flair)
        return post

    def image_post(self, post_id: str, name: str, w: int, h: int, flair: str | None,
                   truth: dict[str, Any], title: str | None = None,
                   created: float | None = None) -> dict[str, Any]:
        """An i.redd.it image post showing ``/i/{name}`` (``w``×``h`` px) with ``truth``."""
        post = self.base_post(post_id, title=title, created=created, flair=flair)
        post.update(
            url=f"{{base}}/i/{name}", url_overridden_by_dest=f"{{base}}/i/{name}",
            domain="i.redd.it", is_reddit_media_domain=True, post_hint="image",
            preview=self._preview(name, w, h),
            thumbnail=f"{{base}}/i/{name}?width=140&height={round(h * 140 / w)}&auto=webp&s={self._sig(name, 140)}",
            thumbnail_width=140, thumbnail_height=round(h * 140 / w),
        )
        post["_sandbox_truth"] = truth
        return post

    def build(self) -> list[dict[str, Any]]:
        posts: list[dict[str, Any]] = []

        def truth(kind: str, medium: str | None, stated: str | None, expect: str, note: str,
                  images: list[str], wrong: bool = False) -> dict[str, Any]:
            return {"kind": kind, "medium": medium, "stated": stated, "wrong_stated": wrong,
                    "expect": expect, "note": note, "images": images}

        for pid, dep, obj, flair in CORRECT:
            name, w, h = self.pacs(dep, obj)
            med = DEPICTION_MEDIUM[dep]
            posts.append(self.image_post(pid, name, w, h, flair, truth(
                "image", med, med, "classify", f"PACS {dep}/{obj} under a real r/Art title stating {med}",
                [name])))
        for pid, dep, obj, flair, stated, note in WRONG:
            name, w, h = self.pacs(dep, obj)
            posts.append(self.image_post(pid, name, w, h, flair, truth(
                "image", DEPICTION_MEDIUM[dep], stated, "classify", "wrong stated medium: " + note,
                [name], wrong=True)))
        for pid, med, flair in REAL:
            name, w, h = self.real_image(pid)
            posts.append(self.image_post(pid, name, w, h, flair, truth(
                "image", med, med, "classify", "real r/Art image with its real title", [name])))
        posts.append(self.gallery())
        posts.append(self.video())
        posts.append(self.self_post())
        posts.append(self.deleted())
        posts.append(self.broken())
        posts.append(self.html_page())
        posts.append(self.crosspost())
        posts.extend(wesnoth_posts(self))  # last: earlier posts keep their authors
        posts.sort(key=lambda p: (p["created_utc"], p["id"]))
        ids = [p["id"] for p in posts]
        if len(set(ids)) != len(ids):
            raise RuntimeError("duplicate ids in sample")
        return posts

    # ----------------------------------------------------------------- special kinds
    def gallery(self) -> dict[str, Any]:
        shape = self._load("gallery_flair_1skft63.json")
        unprocessed = self._load("gallery_unprocessed_1khu9tf.json")
        post = self.base_post(GALLERY_ID, flair="Painting")
        for key in ("post_hint", "preview", "url_overridden_by_dest"):
            post.pop(key, None)
        media: dict[str, Any] = {}
        items = []
        names = []
        for i, obj in enumerate(HELD_OUT * 2):  # two distinct paintings
            name, w, h = self.pacs("art_painting", obj)
            names.append(name)
            mid = name.rsplit(".", 1)[0]
            media[mid] = {
                "status": "valid", "e": "Image", "m": "image/jpg",
                "p": [{"y": round(h * pw / w), "x": pw,
                       "u": f"{{base}}/i/{name}?width={pw}&crop=smart&auto=webp&s={self._sig(name, pw)}"}
                      for pw in PREVIEW_WIDTHS if pw < w],
                "s": {"y": h, "x": w, "u": f"{{base}}/i/{name}?width={w}&format=pjpg&auto=webp&s={self._sig(name)}"},
                "id": mid,
            }
            items.append({"caption": "", "media_id": mid, "is_deleted": False, "id": 911175360 + i})
        # a third item still processing, as recorded in gallery_unprocessed_1khu9tf.json
        pending_id = next(iter(unprocessed["media_metadata"]))
        media[pending_id] = copy.deepcopy(unprocessed["media_metadata"][pending_id])
        items.append({"caption": "", "media_id": pending_id, "is_deleted": False, "id": 911175362})
        post.update(
            is_gallery=True, media_metadata=media, gallery_data={"items": items},
            url=f"{{base}}/gallery/{GALLERY_ID}", url_overridden_by_dest=f"{{base}}/gallery/{GALLERY_ID}",
            domain=shape["domain"], is_reddit_media_domain=False,
            thumbnail=f"{{base}}/i/{names[0]}?width=140&height=140&crop=1:1,smart&auto=webp&s={self._sig(names[0], 140)}",
            thumbnail_width=140, thumbnail_height=140,
        )
        post["_sandbox_truth"] = {
            "kind": "gallery", "medium": "painting", "stated": "painting", "wrong_stated": False,
            "expect": "classify", "images": names,
            "note": "gallery of 2 valid PACS paintings + 1 media item with status 'unprocessed' (skip it)",
        }
        return post

    def video(self) -> dict[str, Any]:
        listing = self._load("listing_popular_hot_2026-04-13.json")
        shape = next(c["data"] for c in listing["data"]["children"] if c["data"].get("is_video"))
        post = self.base_post(VIDEO_ID)
        vid = "sbxvid" + VIDEO_ID
        video = copy.deepcopy(shape["media"])
        rv = video["reddit_video"]
        rv.update(fallback_url=f"{{base}}/v/{vid}/CMAF_720.mp4?source=fallback",
                  scrubber_media_url=f"{{base}}/v/{vid}/CMAF_96.mp4",
                  dash_url=f"{{base}}/v/{vid}/DASHPlaylist.mpd", hls_url=f"{{base}}/v/{vid}/HLSPlaylist.m3u8",
                  height=720, width=720, duration=42)
        thumb, w, h = self.pacs("cartoon", "giraffe")
        preview = self._preview(thumb, w, h)
        preview["enabled"] = False
        post.update(
            url=f"{{base}}/v/{vid}", url_overridden_by_dest=f"{{base}}/v/{vid}", domain=shape["domain"],
            is_video=True, post_hint=shape["post_hint"], media=video, secure_media=copy.deepcopy(video),
            is_reddit_media_domain=True, preview=preview,
            thumbnail=f"{{base}}/i/{thumb}?width=140&height=140&crop=1:1,smart&format=jpg&auto=webp&s={self._sig(thumb, 140)}",
            thumbnail_width=140, thumbnail_height=140,
        )
        post["_sandbox_truth"] = {
            "kind": "video", "medium": None, "stated": "digital", "wrong_stated": False,
            "expect": "skip:unsupported_post", "images": [thumb],
            "note": "v.redd.it video (is_video); its preview is only a thumbnail — do not classify",
        }
        return post

    def self_post(self) -> dict[str, Any]:
        text = ("How do you all photograph paintings without glare? My phone pictures of oil "
                "paintings always show the brush strokes shining.")
        created = float(self.rows[VIDEO_ID]["unix_time"] + 1800)
        post = self.base_post(SELF_ID, title="Tips for photographing paintings without glare?",
                              created=created)
        for key in ("post_hint", "preview", "url_overridden_by_dest"):
            post.pop(key, None)
        post.update(
            is_self=True, domain="self.Art", url=f"{{base}}{post['permalink']}", selftext=text,
            selftext_html=f'<!-- SC_OFF --><div class="md"><p>{text}</p>\n</div><!-- SC_ON -->',
            thumbnail="self", thumbnail_width=None, thumbnail_height=None,
            is_reddit_media_domain=False,
        )
        post["_sandbox_truth"] = {
            "kind": "self", "medium": None, "stated": None, "wrong_stated": False,
            "expect": "skip:unsupported_post", "images": [],
            "note": "self (text) post; sandbox-made id and title",
        }
        return post

    def deleted(self) -> dict[str, Any]:
        shape = self._load("deleted_image_flair_ah3gqo.json")
        name, w, h = self.pacs("cartoon", "giraffe")
        post = self.image_post(DELETED_ID, name, w, h, "Digital Art", {})
        post.pop("author_fullname", None)
        post.update(author=shape["author"], selftext=shape["selftext"],
                    selftext_html=shape["selftext_html"])
        post["_sandbox_truth"] = {
            "kind": "deleted", "medium": "digital", "stated": "digital", "wrong_stated": False,
            "expect": "classify", "images": [name],
            "note": "deleted by its author: author '[deleted]' (praw: None), url kept",
        }
        return post

    def broken(self) -> dict[str, Any]:
        src, w, h = self.pacs("cartoon", "giraffe")
        data = self.images.pop(src)
        name = f"truncated_{BROKEN_ID}.jpg"
        self.images[name] = data[: len(data) * 2 // 5]
        post = self.image_post(BROKEN_ID, name, w, h, None, {})
        post["_sandbox_truth"] = {
            "kind": "broken_image", "medium": None, "stated": "digital", "wrong_stated": False,
            "expect": "skip:decode_failed", "images": [name],
            "note": f"JPEG truncated to 40% of {src} (served as image/jpeg, does not decode)",
        }
        return post

    def html_page(self) -> dict[str, Any]:
        shape = self._load("imgur_direct_1ski1ai.json")
        name = f"imgur_{HTML_ID}.jpg"
        self.images[name] = (
            b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            b"<title>Imgur: The magic of the Internet</title></head><body>"
            b"<h1>The image you are requesting does not exist or is no longer available.</h1>"
            b"</body></html>\n"
        )
        post = self.base_post(HTML_ID)
        for key in ("preview",):
            post.pop(key, None)
        post.update(url=f"{{base}}/i/{name}", url_overridden_by_dest=f"{{base}}/i/{name}",
                    domain=shape["domain"], post_hint="image", is_reddit_media_domain=False,
                    thumbnail="default", thumbnail_width=None, thumbnail_height=None)
        post["_sandbox_truth"] = {
            "kind": "html_page", "medium": None, "stated": "digital", "wrong_stated": False,
            "expect": "skip:not_an_image", "images": [name],
            "note": "image-looking URL (.jpg, i.imgur.com shape) that answers 200 text/html",
        }
        return post

    def crosspost(self) -> dict[str, Any]:
        shape = self._load("crosspost_flair_c27k6l.json")
        name, w, h = self.pacs("art_painting", "giraffe")
        row = self.rows[CROSSPOST_ID]
        parent = self.image_post(CROSSPOST_PARENT_ID, name, w, h, None, {},
                                 title=row["title"], created=float(row["unix_time"] - 3600))
        parent.pop("_sandbox_truth")
        parent.update(subreddit="painting", subreddit_name_prefixed="r/painting",
                      subreddit_id="t5_sbxpnt", num_crossposts=1,
                      permalink=parent["permalink"].replace("/r/Art/", "/r/painting/"))
        post = self.base_post(CROSSPOST_ID, flair="Painting")
        for key in ("post_hint", "preview", "url_overridden_by_dest"):
            post.pop(key, None)
        post.update(
            url=f"{{base}}{parent['permalink']}", domain="reddit.com", is_reddit_media_domain=False,
            crosspost_parent=f"t3_{CROSSPOST_PARENT_ID}", crosspost_parent_list=[parent],
            thumbnail=parent["thumbnail"], thumbnail_width=140,
            thumbnail_height=parent["thumbnail_height"],
        )
        assert "crosspost_parent_list" in shape  # the shape this follows
        post["_sandbox_truth"] = {
            "kind": "crosspost", "medium": "painting", "stated": "painting", "wrong_stated": False,
            "expect": "classify", "images": [name],
            "note": "crosspost: own url is the parent's permalink; the image is in crosspost_parent_list[0]",
        }
        return post


def build(shared: Path = DEFAULT_SHARED, out_dir: Path = OUT_DIR) -> tuple[int, int]:
    """Write ``posts.json``, ``licences.json`` and ``images/`` under ``out_dir``; returns
    (posts, bytes written).

    :raises FileNotFoundError: when ``shared`` (``../shared/data``) is missing.
    """
    if not (shared / "reddit-api").is_dir():
        raise FileNotFoundError(f"{shared} does not hold ../shared/data (reddit-api/, rart-2020/, pacs/, realart/)")
    builder = Builder(shared)
    posts = builder.build()
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for old in img_dir.iterdir():
        old.unlink()
    total = 0
    for name, data in sorted(builder.images.items()):
        (img_dir / name).write_bytes(data)
        total += len(data)
    for file_name, obj in (("posts.json", posts), ("licences.json", builder.licences)):
        text = json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=file_name != "posts.json") + "\n"
        (out_dir / file_name).write_text(text, encoding="utf-8")
        total += len(text.encode("utf-8"))
    return len(posts), total


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``python -m modbot.sandbox.build_sample [--shared DIR] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="../shared/data")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    n, size = build(args.shared, args.out)
    print(f"wrote {n} posts and images, {size / 1e6:.2f} MB, to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
