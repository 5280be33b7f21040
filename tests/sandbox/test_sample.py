"""The demo sample shipped inside the package (``modbot.sandbox.sample``)."""

from __future__ import annotations

import json

from support import REPO

from modbot.sandbox.sample import sample_summary

SAMPLE_DIR = REPO / "modbot" / "sandbox" / "sample"


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
