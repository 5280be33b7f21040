"""Data of the repost benchmark (``bench/repost.py``): the distinct originals of
``../shared/data`` (realart + pacs, read in place, never copied), same-picture groups (ground
truth), and seeded Pillow repost transforms.

Transforms take an RGB ``PIL.Image.Image`` and a ``random.Random`` and return a new RGB image;
``TRANSFORMS`` maps kind -> function (``mirror`` is scored apart). Group hashes need the bench-only
package ``ImageHash`` (``pip install ImageHash``; it is not a modbot dependency).
"""
from __future__ import annotations

import hashlib
import io
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PAIRS_CSV = Path(__file__).resolve().parent / "data" / "same_picture_pairs.csv"


def list_originals() -> list[Path]:
    """All realart + pacs image files, minus exact duplicate files (same sha256), sorted."""
    files = sorted(p for p in (SHARED / "realart").rglob("*") if p.suffix.lower() in (".jpg", ".webp"))
    files += sorted(p for p in (SHARED / "pacs").rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    seen: set[str] = set()
    out = []
    for p in files:
        h = hashlib.sha256(p.read_bytes()).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        out.append(p)
    return out


def load_rgb(path: Path) -> Image.Image:
    """Decode to RGB, compositing transparency onto white (as modbot.images does)."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA", "P") or "transparency" in im.info:
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(bg, rgba).convert("RGB")
        return im.convert("RGB")


_HEADSTONE = re.compile(r"artstone_headstones__(.+?)(desck|mid|mobile|tablet)?\.[0-9a-f]{8}_[0-9a-f]{7}\.jpg$")


def group_hashes(paths: list[Path]) -> np.ndarray:
    """(N, 2, 32) uint8: imagehash 256-bit pHash of each whole file, and of the file cut to the
    bounding box of pixels unlike its top-left corner colour (Pillow getbbox; independent of
    modbot.fingerprint's own border handling). Used only to group same-picture files."""
    import imagehash
    from PIL import ImageChops

    out = []
    for p in paths:
        im = load_rgb(p)
        bg = Image.new("RGB", im.size, im.getpixel((0, 0)))
        mask = ImageChops.difference(im, bg).convert("L").point(lambda v: 255 if v > 24 else 0)
        box = mask.getbbox()
        cut = im.crop(box) if box and (box[2] - box[0]) > 16 and (box[3] - box[1]) > 16 else im
        out.append([np.packbits(imagehash.phash(x, 16).hash.flatten()) for x in (im, cut)])
    return np.array(out, dtype=np.uint8)


def same_content_groups(files: list[Path], hashes: np.ndarray, max_dist: int = 20) -> list[int]:
    """A group id per file: files that show the same picture share one.

    Two rules, checked by eye on samples (see the report): (1) the headstone workshop's
    responsive variants of one photo (``<stem>{desck,mid,mobile,tablet}.<hash>.jpg`` are crops
    of one photo); (2) imagehash's 256-bit pHash of the whole image, or of the image cut to its
    non-background bounding box, within ``max_dist`` bits (PACS ships recoloured, re-watermarked
    and re-framed copies of one clip-art; wesnoth recolours). Matches inside a group are neither
    true nor false positives in the benchmark. (3) pairs judged by eye in same_picture_pairs.csv.
    Near-twins (two photos of one work, a scene with a figure added, video frames) stay apart.
    ``hashes``: (N, 2, 32) uint8 from group_hashes.
    """
    parent = list(range(len(files)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    by_rel = {str(p.relative_to(SHARED)): i for i, p in enumerate(files)}
    pairs_file = PAIRS_CSV
    for line in pairs_file.read_text().splitlines()[1:]:
        a, b = line.split(",")[:2]
        if a in by_rel and b in by_rel:
            union(by_rel[a], by_rel[b])
    stems: dict[str, int] = {}
    for i, p in enumerate(files):
        m = _HEADSTONE.search(p.name)
        if m:
            stems.setdefault(m.group(1), i)
            union(i, stems[m.group(1)])
    pop = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)
    for k in range(hashes.shape[1]):
        hk = hashes[:, k]
        for i in range(len(files) - 1):
            d = pop[hk[i] ^ hk[i + 1:]].sum(-1)
            for j in np.nonzero(d <= max_dist)[0]:
                union(i, i + 1 + int(j))
    return [find(i) for i in range(len(files))]


# --- transforms ------------------------------------------------------------------------------

_WORDS = ["by", "art", "@", "sketchbook", "oil", "2024", "insta", "mine", "OC", "repost", "signed"]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError, TypeError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=q)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def rescale(im: Image.Image, rng: random.Random) -> Image.Image:
    f = rng.choice([rng.uniform(0.35, 0.8), rng.uniform(1.2, 3.5)])
    w, h = im.size
    res = rng.choice([Image.NEAREST, Image.BILINEAR, Image.BICUBIC, Image.LANCZOS])
    return im.resize((max(16, round(w * f)), max(16, round(h * f))), res)


def jpeg(im: Image.Image, rng: random.Random) -> Image.Image:
    return _jpeg(im, rng.randint(40, 90))


def crop(im: Image.Image, rng: random.Random) -> Image.Image:
    """Remove 3-10 % of the width and of the height, split at random between the two sides."""
    w, h = im.size
    fx, fy = rng.uniform(0.03, 0.10), rng.uniform(0.03, 0.10)
    sx, sy = rng.random(), rng.random()
    dx, dy = fx * w, fy * h
    left, top = round(dx * sx), round(dy * sy)
    right, bottom = w - round(dx * (1 - sx)), h - round(dy * (1 - sy))
    return _jpeg(im.crop((left, top, right, bottom)), rng.randint(70, 95))


def border(im: Image.Image, rng: random.Random) -> Image.Image:
    """Uniform border on all sides (5-25 %) or letterbox/pillarbox to a square or 16:9 canvas."""
    w, h = im.size
    colour = rng.choice([(0, 0, 0), (255, 255, 255), (20, 20, 20), (240, 240, 235),
                         tuple(rng.randint(0, 255) for _ in range(3))])
    if rng.random() < 0.5:
        m = rng.uniform(0.05, 0.25)
        mx, my = round(w * m), round(h * m)
        canvas = Image.new("RGB", (w + 2 * mx, h + 2 * my), colour)
        canvas.paste(im, (mx, my))
    else:
        if w >= h:  # letterbox: bars top and bottom
            H = max(round(w * rng.choice([1.0, 9 / 16 * 2, 1.25])), h + 8)
            canvas = Image.new("RGB", (w, H), colour)
            canvas.paste(im, (0, (H - h) // 2))
        else:  # pillarbox
            W = max(round(h * rng.choice([1.0, 16 / 9, 1.25])), w + 8)
            canvas = Image.new("RGB", (W, h), colour)
            canvas.paste(im, ((W - w) // 2, 0))
    return _jpeg(canvas, rng.randint(75, 95))


def watermark(im: Image.Image, rng: random.Random) -> Image.Image:
    """Signature text in a corner, sometimes also a semi-transparent diagonal-ish line of text."""
    out = im.convert("RGBA")
    w, h = out.size
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    size = max(8, round(min(w, h) * rng.uniform(0.05, 0.10)))
    text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    font = _font(size)
    colour = rng.choice([(255, 255, 255), (0, 0, 0), (200, 30, 30)])
    x = rng.choice([round(w * 0.03), round(w * rng.uniform(0.4, 0.6))])
    y = rng.choice([round(h * 0.03), round(h * (1 - 0.05)) - size])
    d.text((x, y), text, font=font, fill=colour + (rng.randint(160, 255),))
    if rng.random() < 0.4:
        big = _font(max(10, round(min(w, h) * 0.12)))
        d.text((round(w * 0.1), round(h * 0.45)), "@" + rng.choice(_WORDS) + "_art", font=big,
               fill=(255, 255, 255, rng.randint(60, 110)))
    return Image.alpha_composite(out, layer).convert("RGB")


def colour(im: Image.Image, rng: random.Random) -> Image.Image:
    out = ImageEnhance.Brightness(im).enhance(rng.uniform(0.75, 1.3))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.75, 1.3))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.5, 1.6))
    if rng.random() < 0.5:  # tint
        r, g, b = out.split()
        k = [rng.uniform(0.85, 1.15) for _ in range(3)]
        out = Image.merge("RGB", [c.point(lambda v, kk=kk: min(255, int(v * kk))) for c, kk in zip((r, g, b), k)])
    return _jpeg(out, rng.randint(70, 95))


def screenshot(im: Image.Image, rng: random.Random) -> Image.Image:
    """Paste the image (rescaled) inside a UI-like canvas: bars with text, margins, side panel."""
    w, h = im.size
    scale = rng.uniform(0.7, 1.3)
    iw, ih = max(16, round(w * scale)), max(16, round(h * scale))
    img = im.resize((iw, ih), Image.BILINEAR)
    bg = rng.choice([(255, 255, 255), (26, 26, 27), (218, 224, 230), (48, 48, 48)])
    fg = (215, 218, 220) if sum(bg) < 300 else (28, 28, 28)
    bar = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in bg)
    top_bar = round(ih * rng.uniform(0.06, 0.14))
    header = round(ih * rng.uniform(0.05, 0.15))
    footer = round(ih * rng.uniform(0.08, 0.2))
    ml = round(iw * rng.uniform(0.03, 0.25))
    mr = round(iw * rng.uniform(0.03, 0.25))
    side = round(iw * rng.uniform(0.2, 0.4)) if rng.random() < 0.4 else 0
    W = ml + iw + mr + side
    H = top_bar + header + ih + footer
    canvas = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, W, top_bar), fill=bar)
    fs = max(8, round(top_bar * 0.5))
    d.text((ml, top_bar * 0.25), "r/Art  " + rng.choice(_WORDS), font=_font(fs), fill=fg)
    d.ellipse((ml, top_bar + header * 0.2, ml + header * 0.6, top_bar + header * 0.8), fill=(255, 69, 0))
    d.text((ml + header, top_bar + header * 0.25), "u/" + rng.choice(_WORDS) + " · 5h",
           font=_font(max(8, round(header * 0.4))), fill=fg)
    canvas.paste(img, (ml, top_bar + header))
    y = top_bar + header + ih + footer * 0.2
    d.text((ml, y), f"{rng.randint(1, 40)}.{rng.randint(0, 9)}k  Comments  Share",
           font=_font(max(8, round(footer * 0.3))), fill=fg)
    if side:
        x0 = ml + iw + mr
        for k in range(5):
            yy = top_bar + header + k * ih / 5
            d.rectangle((x0 + 5, yy + 5, W - 5, yy + ih / 5 - 5), fill=bar)
    return _jpeg(canvas, rng.randint(70, 92))


def combo(im: Image.Image, rng: random.Random) -> Image.Image:
    """A chain as seen in the wild: crop, rescale, colour, JPEG."""
    out = crop(im, rng)
    out = rescale(out, rng)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.85, 1.15))
    return _jpeg(out, rng.randint(50, 85))


def mirror(im: Image.Image, rng: random.Random) -> Image.Image:
    out = im.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        out = rescale(out, rng)
    return _jpeg(out, rng.randint(60, 92))


TRANSFORMS: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "rescale": rescale,
    "jpeg": jpeg,
    "crop": crop,
    "border": border,
    "watermark": watermark,
    "colour": colour,
    "screenshot": screenshot,
    "combo": combo,
}
