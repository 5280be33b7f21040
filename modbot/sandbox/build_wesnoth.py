"""The demo sample's real digital paintings: Battle for Wesnoth art (GPL-2+), developers only.

Used by :mod:`modbot.sandbox.build_sample`. Source: ``../shared/data/realart/digital/wesnoth__*``
(``realart/manifest.csv``: origin "Debian wesnoth-1.16 data and campaign packages", licence
GPL-2+; downscaled there to at most 320 px). The files are named
``wesnoth__<portrait|story>__<campaign or core-group>__<name>``; the Debian package is the one
of that campaign (``core-*`` → ``wesnoth-1.16-data``; names checked with ``apt-cache search
wesnoth``). These are the only realart images the repository may hold: every other realart
source states no licence (``../shared/README.md``).

Each image is decoded, composited on a plain :data:`BACKGROUND` (portraits are cut-outs with
an alpha channel), kept at its size (≤ 320 px) and written as JPEG quality :data:`QUALITY` —
``sample/images/wesnoth_<name>.jpg``. Its licence record goes to ``sample/licences.json``.

Titles are sandbox-made in r/Art's "Title, Artist, Medium, Year" form: the artist field names
the Wesnoth artists collectively (the files do not say which artist drew which portrait), and
the year is that of the 1.16 branch (2021), not of the artwork.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from PIL import Image

#: Plain off-white background (sRGB 0-255) the transparent portraits are composited on.
BACKGROUND = (236, 233, 226)
#: JPEG quality of the re-encoded images.
QUALITY = 85
LICENCE = "GPL-2+"
LICENCE_TEXT = ("GNU General Public License, version 2 or later: sample/GPL-2.txt "
                "(copy of Debian's /usr/share/common-licenses/GPL-2)")
UPSTREAM = "Battle for Wesnoth, https://www.wesnoth.org (branch 1.16)"

#: Debian package of each campaign folder (``core-*`` folders: :data:`CORE_PACKAGE`).
PACKAGES = {
    "Dead_Water": "wesnoth-1.16-dw", "Delfadors_Memoirs": "wesnoth-1.16-dm",
    "Descent_Into_Darkness": "wesnoth-1.16-did", "Eastern_Invasion": "wesnoth-1.16-ei",
    "Heir_To_The_Throne": "wesnoth-1.16-httt", "Legend_of_Wesmere": "wesnoth-1.16-low",
    "Liberty": "wesnoth-1.16-l", "Northern_Rebirth": "wesnoth-1.16-nr",
    "Sceptre_of_Fire": "wesnoth-1.16-sof", "Secrets_of_the_Ancients": "wesnoth-1.16-sota",
    "Son_Of_The_Black_Eye": "wesnoth-1.16-sotbe", "The_Hammer_of_Thursagan": "wesnoth-1.16-thot",
    "The_Rise_Of_Wesnoth": "wesnoth-1.16-trow", "The_South_Guard": "wesnoth-1.16-tsg",
    "Two_Brothers": "wesnoth-1.16-ttb", "Under_the_Burning_Suns": "wesnoth-1.16-utbs",
}
CORE_PACKAGE = "wesnoth-1.16-data"

ARTIST = "Battle for Wesnoth artists"

# (sandbox id, realart file under digital/, title, link flair, stated medium, anchor r/Art id,
#  note). The post is released 600 s after the anchor post (an id of the sample), so the
#  wesnoth posts are spread through the stream. Stated medium ≠ digital: deliberately mis-stated.
WESNOTH = [
    ("sbxw01", "wesnoth__portrait__Dead_Water__cylanna.webp",
     f"Cylanna, {ARTIST}, digital painting, 2021", "Digital Art", "digital", "jnb2nc",
     "portrait cut-out"),
    ("sbxw02", "wesnoth__portrait__Delfadors_Memoirs__garard.webp",
     f"King Garard, {ARTIST}, oil on canvas, 2021", "Painting", "painting", "jpmt0c",
     "a digital portrait posted as 'oil on canvas' with Painting flair"),
    ("sbxw03", "wesnoth__story__Heir_To_The_Throne__httt_story5.jpg",
     f"Duel of the Mages, {ARTIST}, digital, 2021", None, "digital", "jr9ndp",
     "story art: a full scene, no alpha"),
    ("sbxw04", "wesnoth__portrait__core-monsters__jinn.webp",
     f"Jinn, {ARTIST}, Krita, 2021", None, "digital", "jtrjf1", "portrait cut-out"),
    ("sbxw05", "wesnoth__portrait__core-humans__mage-red+female.webp",
     f"The Red Mage, {ARTIST}, graphite on paper, 2021", None, "drawing", "jvwulx",
     "a digital portrait posted as 'graphite on paper'"),
    ("sbxw06", "wesnoth__portrait__Under_the_Burning_Suns__outrider.webp",
     f"Outrider, {ARTIST}, digital, 2021", "Digital Art", "digital", "jwuklg",
     "portrait cut-out"),
    ("sbxw07", "wesnoth__portrait__core-undead__ghost.webp",
     f"Ghost, {ARTIST}, digital painting, 2021", None, "digital", "jy2hkq",
     "portrait cut-out, pale and line-heavy"),
    ("sbxw08", "wesnoth__story__Legend_of_Wesmere__landar.webp",
     f"Landar, {ARTIST}, digital, 2021", None, "digital", "jzo0wn", "story art"),
]


def package_of(file_name: str) -> str:
    """The Debian package holding a ``wesnoth__<kind>__<folder>__<name>`` realart file."""
    folder = file_name.split("__")[2]
    if folder == "core" or folder.startswith("core-"):
        return CORE_PACKAGE
    return PACKAGES[folder]


def manifest_rows(shared: Path) -> dict[str, dict[str, str]]:
    """``realart/manifest.csv`` rows of the wesnoth files, by file name (without ``digital/``)."""
    with (shared / "realart" / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        return {row["file"].split("/", 1)[1]: row for row in csv.DictReader(fh)
                if row["source"] == "wesnoth"}


def composite_jpeg(path: Path) -> tuple[bytes, int, int]:
    """Decode ``path``, composite any alpha on :data:`BACKGROUND`; JPEG bytes, width, height (px)."""
    with Image.open(path) as img:
        img.load()
        rgba = img.convert("RGBA")
    plate = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    rgb = Image.alpha_composite(plate, rgba).convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=QUALITY, optimize=True)
    return buf.getvalue(), rgb.width, rgb.height


def licence_record(file_name: str, row: dict[str, str], out_name: str) -> dict[str, Any]:
    """The ``licences.json`` entry of one shipped wesnoth image."""
    if row["licence"] != LICENCE:
        raise ValueError(f"{file_name}: manifest licence {row['licence']!r}, expected {LICENCE}")
    return {
        "image": out_name, "work": UPSTREAM, "licence": LICENCE, "licence_text": LICENCE_TEXT,
        "debian_package": package_of(file_name), "manifest_origin": row["origin"],
        "source_file": f"../shared/data/realart/digital/{file_name}",
        "source_size_px": [int(row["width"]), int(row["height"])],
        "original_size_px": [int(row["orig_width"]), int(row["orig_height"])],
        "modified": (f"downscaled to at most 320 px (realart), alpha composited on RGB "
                     f"{BACKGROUND}, re-encoded as JPEG quality {QUALITY} (modbot build_sample)"),
    }


def wesnoth_posts(builder: Any) -> list[dict[str, Any]]:
    """Posts of :data:`WESNOTH` built with ``builder`` (a ``build_sample.Builder``).

    Adds the images to ``builder.images`` and their licence records to ``builder.licences``.
    """
    rows = manifest_rows(builder.shared)
    posts = []
    for post_id, file_name, title, flair, stated, anchor, note in WESNOTH:
        data, w, h = composite_jpeg(builder.shared / "realart" / "digital" / file_name)
        name = "wesnoth_" + file_name.split("__", 1)[1].rsplit(".", 1)[0].replace("+", "_") + ".jpg"
        builder.images[name] = data
        builder.licences[name] = licence_record(file_name, rows[file_name], name)
        wrong = stated != "digital"
        truth = {"kind": "image", "medium": "digital", "stated": stated, "wrong_stated": wrong,
                 "expect": "classify", "images": [name], "source": "wesnoth", "licence": LICENCE,
                 "note": ("wrong stated medium: " if wrong else "")
                 + f"Battle for Wesnoth digital painting (GPL-2+), {note}"}
        created = float(builder.rows[anchor]["unix_time"] + 600)
        posts.append(builder.image_post(post_id, name, w, h, flair, truth, title=title,
                                        created=created))
    return posts
