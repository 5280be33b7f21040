"""The demo sample shipped inside the package (``modbot.sandbox.sample``)."""

from __future__ import annotations

import json

import pytest
from support import REPO, SHARED

from modbot.sandbox.sample import load_licences, sample_summary

SAMPLE_DIR = REPO / "modbot" / "sandbox" / "sample"

#: The only name prefixes of shipped images: PACS, the 3 real r/Art images, the GPL wesnoth
#: art, and the sandbox-made truncated JPEG and HTML page. No other realart image may ship.
IMAGE_PREFIXES = ("pacs_", "rart_", "wesnoth_", "truncated_", "imgur_")


# --------------------------------------------------------------------------- sample


def test_sample_contents(sample):
    posts, images = sample
    summary = sample_summary(posts)
    assert summary["posts"] == 50
    assert summary["by_kind"] == {"image": 43, "gallery": 1, "video": 1, "self": 1, "deleted": 1,
                                  "broken_image": 1, "html_page": 1, "crosspost": 1}
    assert summary["wrong_stated"] == 8
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


def test_wesnoth_art_is_present_digital_and_its_licence_recorded(sample):
    """8 real digital paintings (Battle for Wesnoth, GPL-2+): 6 stated digital, 2 mis-stated;
    each image has a licence record naming its Debian package, and the GPL-2 text is there."""
    from PIL import Image

    posts, images = sample
    wes = [p for p in posts if p["_sandbox_truth"].get("source") == "wesnoth"]
    assert len(wes) == 8
    assert sum(p["_sandbox_truth"]["wrong_stated"] for p in wes) == 2
    licences = load_licences()
    shipped = {n for n in images if n.startswith("wesnoth_")}
    assert set(licences) == shipped  # a record for every wesnoth image, none for another
    assert {n for p in wes for n in p["_sandbox_truth"]["images"]} == shipped
    for post in wes:
        truth = post["_sandbox_truth"]
        assert truth["medium"] == "digital" and truth["kind"] == "image"
        assert truth["licence"] == "GPL-2+"
        assert post["title"].count(",") >= 3  # "Title, Artist, Medium, Year"
        (name,) = truth["images"]
        rec = licences[name]
        assert rec["licence"] == "GPL-2+" and rec["image"] == name
        assert rec["debian_package"].startswith("wesnoth-1.16-")
        assert "/realart/digital/wesnoth__" in rec["source_file"]
        img = Image.open(SAMPLE_DIR / "images" / name)
        assert img.format == "JPEG" and img.mode == "RGB" and max(img.size) <= 320
    assert "GNU GENERAL PUBLIC LICENSE" in (SAMPLE_DIR / "GPL-2.txt").read_text()
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert "GPL-2+" in readme and all(name in readme for name in shipped)


def test_only_licensed_images_ship(sample):
    """Every shipped image is PACS, one of the 3 real r/Art images, wesnoth (GPL-2+) or
    sandbox-made; with ../shared present, no shipped file equals a non-wesnoth realart image."""
    _, images = sample
    assert all(n.startswith(IMAGE_PREFIXES) for n in images), sorted(images)
    assert len([n for n in images if n.startswith("rart_")]) == 3
    realart = SHARED / "realart"
    if not realart.is_dir():
        pytest.skip("../shared/data/realart not present")
    shipped = set(images.values())
    sizes = {len(data) for data in shipped}
    for path in realart.rglob("*"):
        if (path.is_file() and "wesnoth__" not in path.name and path.suffix != ".csv"
                and path.stat().st_size in sizes):
            assert path.read_bytes() not in shipped, path


def test_build_sample_reproduces_the_shipped_sample(tmp_path):
    """``python -m modbot.sandbox.build_sample`` from ../shared rebuilds exactly what ships."""
    if not (SHARED / "realart").is_dir():
        pytest.skip("../shared/data not present (developers only)")
    from modbot.sandbox.build_sample import build

    n, _ = build(SHARED, tmp_path)
    assert n == 50
    for name in ("posts.json", "licences.json"):
        assert (tmp_path / name).read_text() == (SAMPLE_DIR / name).read_text(), name
    built = {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()}
    shipped = {p.name: p.read_bytes() for p in (SAMPLE_DIR / "images").iterdir()}
    assert built.keys() == shipped.keys()
    assert [k for k in built if built[k] != shipped[k]] == []
