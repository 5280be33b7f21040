"""The repost stage's near-twin rule on a real SQLite file and a real PACS image
(``tests/data/pacs_sample``): an earlier image much further than the closest earlier image is
not reported; the post's own, just-stored rows never count as the closest."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from modbot import repost as repost_mod
from modbot.config import RepostsConfig
from modbot.domain import FetchedImage, ImageRef, Post
from modbot.record import open_database
from modbot.repost import RepostStage

PAINTING = Path(__file__).parent / "data" / "pacs_sample" / "painting" / "giraffe_pic_001.jpg"


def _jpeg(im: Image.Image, q: int = 90) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _post(db, k: int, author: str) -> Post:
    post = Post(id=f"p{k}", fullname=f"t3_p{k}", subreddit="Art", title="Giraffe, me, oil, 2020",
                author=author, permalink=f"/r/Art/comments/p{k}/", url="https://i.redd.it/x.jpg",
                created_utc=1_700_000_000.0 + k, link_flair_text=None, data={})
    db.execute("INSERT INTO submissions (fullname, id, subreddit, status, attempts, first_seen_at, "
               "updated_at) VALUES (?, ?, 'Art', 'processing', 0, 0, 0)", [post.fullname, post.id])
    db.conn.commit()
    return post


def _image(im: Image.Image, k: int) -> FetchedImage:
    return FetchedImage(ref=ImageRef("https://i.redd.it/x.jpg", "direct"), sha256=f"{k:064x}",
                        path="", size_bytes=1, width=im.width, height=im.height, format="JPEG",
                        rgb=im)


@pytest.mark.parametrize("margin", [repost_mod.NEAR_TWIN_MARGIN, 256])
def test_a_much_further_earlier_image_is_a_near_twin(tmp_path, monkeypatch, margin):
    monkeypatch.setattr(repost_mod, "NEAR_TWIN_MARGIN", margin)
    db = open_database(tmp_path / "modbot.db")
    stage, config = RepostStage(db), RepostsConfig()
    original = Image.open(PAINTING).convert("RGB")
    w, h = original.size
    twin = _jpeg(original.crop((round(0.06 * w), 0, w, h - round(0.06 * h))))  # 36-40 bits off
    assert stage.check(_post(db, 1, "alice"), [_image(original, 1)], config) is None
    second = stage.check(_post(db, 2, "bob"), [_image(twin, 2)], config)
    assert second is not None and [m.earlier.submission for m in second.matches] == ["t3_p1"]
    third = stage.check(_post(db, 3, "carol"), [_image(_jpeg(original), 3)], config)
    assert third is not None
    got = [(m.earlier.submission, m.distance <= 4) for m in third.matches]
    if margin == repost_mod.NEAR_TWIN_MARGIN:
        assert got == [("t3_p1", True)]  # the cropped twin, ~40 bits away, is dropped
    else:
        assert got == [("t3_p1", True), ("t3_p2", False)]
    db.conn.close()


def test_stage_index_keeps_own_rows_and_picks_up_other_writers(tmp_path):
    """The stage adds the post's own rows to its index from memory and reads only other
    writers' rows (here a second connection, as ``modbot collect`` in another process) from
    SQLite: after a mix of both, its index holds exactly the table's ids, and a copy of the
    other writer's image is found."""
    path = tmp_path / "modbot.db"
    db = open_database(path)
    stage, config = RepostStage(db), RepostsConfig()
    original = Image.open(PAINTING).convert("RGB")
    others = [original.rotate(90, expand=True), original.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    assert stage.check(_post(db, 1, "alice"), [_image(others[0], 1)], config) is None
    other = open_database(path)  # another writer between two checks
    other_post = _post(other, 2, "bob")
    repost_mod.fingerprint_image(other, other_post, original, source="collect", position=0,
                                 sha256=f"{2:064x}")
    other.conn.close()
    found = stage.check(_post(db, 3, "carol"), [_image(_jpeg(original), 3)], config)
    assert found is not None and [m.earlier.submission for m in found.matches] == ["t3_p2"]
    assert stage.check(_post(db, 4, "dave"), [_image(others[1], 4)], config) is None
    ids = sorted(r[0] for r in db.execute("SELECT id FROM repost_fingerprints"))
    assert len(ids) == 4 and all(i in stage.index for i in ids) and len(stage.index) == 4
    db.conn.close()
