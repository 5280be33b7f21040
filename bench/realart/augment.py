"""Training augmentation as small named ops on Pillow images, and recipes that chain them.

Every op has the signature ``op(img, rng) -> img`` (``rng``: ``numpy.random.Generator``), takes and
returns an RGB ``PIL.Image`` of any size (``composite_alpha`` also accepts RGBA). The recipes:

- :func:`generic` — what every Reddit upload goes through: random crop, flip, mild colour jitter,
  JPEG re-compression, down-and-up rescaling, sensor noise.
- :func:`photo_of_artwork` — a phone photo of a physical work (painting, drawing): paper tint and
  shadow (drawings), the work placed in a frame / on a wall or table, perspective, a lighting
  gradient, white balance, noise, JPEG, resizing; applied on top of :func:`generic`.
- :func:`augment` dispatches by medium: digital → generic; painting/drawing → photo_of_artwork
  (with probability ``p_photo``) else generic; photography/sculpture → generic + white balance
  + lighting (they are phone photos already).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def _img(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def random_colour(rng: np.random.Generator, kind: str = "any") -> tuple[int, int, int]:
    """A background colour: walls (light neutrals), tables (wood browns), dark, or any."""
    if kind == "any":
        kind = rng.choice(["wall", "wood", "dark", "any_rgb"])
    if kind == "wall":
        base = rng.uniform(170, 245)
        return tuple(int(np.clip(base + rng.normal(0, 10), 0, 255)) for _ in range(3))
    if kind == "wood":
        b = rng.uniform(60, 160)
        return (int(b * 1.0), int(b * 0.72), int(b * 0.45))
    if kind == "dark":
        b = rng.uniform(10, 70)
        return tuple(int(b + rng.normal(0, 6)) for _ in range(3))
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def texture(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A plain/noisy/gradient background ``size`` (w, h) in a random colour."""
    w, h = size
    c = np.array(random_colour(rng), np.float32)
    a = np.broadcast_to(c, (h, w, 3)).copy()
    kind = rng.integers(0, 3)
    if kind == 1:  # fine noise (plaster, fabric)
        a += rng.normal(0, rng.uniform(3, 14), (h, w, 1))
    elif kind == 2:  # soft gradient
        t = np.linspace(-1, 1, w)[None, :, None] * rng.uniform(-30, 30) + np.linspace(-1, 1, h)[:, None, None] * rng.uniform(-30, 30)
        a += t
    return _img(a)


def composite_alpha(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Composite an RGBA cut-out on a random background (colour, noise or gradient)."""
    if img.mode != "RGBA":
        return img.convert("RGB")
    bg = texture(img.size, rng).convert("RGBA")
    return Image.alpha_composite(bg, img).convert("RGB")


def random_crop(img: Image.Image, rng: np.random.Generator, scale: tuple[float, float] = (0.55, 1.0)) -> Image.Image:
    """Crop a random box holding ``scale`` of the area, aspect ratio jittered 3/4–4/3."""
    w, h = img.size
    area = w * h * rng.uniform(*scale)
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, round(np.sqrt(area * ratio))))
    ch = int(min(h, round(np.sqrt(area / ratio))))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def hflip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirror left-right with probability 1/2."""
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


def colour_jitter(img: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """Brightness ±15 %, contrast ±20 %, saturation 0.7–1.3 (scaled by ``strength``)."""
    img = ImageEnhance.Brightness(img).enhance(1 + strength * rng.uniform(-0.15, 0.15))
    img = ImageEnhance.Contrast(img).enhance(1 + strength * rng.uniform(-0.2, 0.2))
    return ImageEnhance.Color(img).enhance(1 + strength * rng.uniform(-0.3, 0.3))


def white_balance(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Per-channel gains of a wrong white balance: warm (tungsten) or cool (shade), ±12 %."""
    t = rng.uniform(-1, 1)
    gains = np.array([1 + 0.12 * t, 1 + rng.uniform(-0.04, 0.04), 1 - 0.12 * t], np.float32)
    return _img(_arr(img) * gains)


def paper_tint(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Paper colour and a soft shadow: white areas become cream/grey/bluish and a vignette or a
    hand/phone shadow darkens part of the sheet (phone photos of drawings)."""
    a = _arr(img)
    tint = np.array(rng.choice([[250, 243, 225], [235, 235, 232], [232, 238, 248], [245, 238, 215]]), np.float32)
    tint = tint * rng.uniform(0.85, 1.0)
    a = a * (tint / 255.0)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:  # vignette
        r = np.sqrt(((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
        a *= (1 - rng.uniform(0.1, 0.35) * (r / r.max()) ** 2)[..., None]
    else:  # a soft shadow blob from one side
        cx, cy = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / max(w, h)
        a *= (1 - rng.uniform(0.15, 0.4) * np.exp(-(d / rng.uniform(0.2, 0.5)) ** 2))[..., None]
    return _img(a)


def frame_and_background(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Put the work in a frame (wood/gold/black/white band, maybe a mat) and/or on a wall or
    table, the work taking 55–92 % of the photo's side."""
    w, h = img.size
    out = img
    if rng.random() < 0.6:  # frame
        fw = max(2, int(min(w, h) * rng.uniform(0.02, 0.09)))
        col = random_colour(rng, rng.choice(["wood", "dark", "wall"])) if rng.random() < 0.8 else (190, 160, 80)
        if rng.random() < 0.3:  # mat
            mw = max(2, int(min(w, h) * rng.uniform(0.03, 0.1)))
            mat = Image.new("RGB", (w + 2 * mw, h + 2 * mw), random_colour(rng, "wall"))
            mat.paste(out, (mw, mw))
            out = mat
        fr = Image.new("RGB", (out.size[0] + 2 * fw, out.size[1] + 2 * fw), col)
        fr.paste(out, (fw, fw))
        # bevel shading on the frame
        a = _arr(fr)
        a[:fw, :] *= 1.15
        a[-fw:, :] *= 0.8
        out = _img(a)
    frac = rng.uniform(0.55, 0.92)
    W, H = int(out.size[0] / frac), int(out.size[1] / frac)
    bg = texture((W, H), rng)
    x = int(rng.uniform(0.2, 0.8) * (W - out.size[0]))
    y = int(rng.uniform(0.2, 0.8) * (H - out.size[1]))
    if rng.random() < 0.5:  # drop shadow
        sh = Image.new("L", bg.size, 0)
        off = max(1, int(min(W, H) * 0.015))
        sh.paste(110, (x + off, y + off, x + out.size[0] + off, y + out.size[1] + off))
        sh = sh.filter(ImageFilter.GaussianBlur(off * 1.5))
        bg = Image.composite(Image.new("RGB", bg.size, (0, 0, 0)), bg, sh)
    bg.paste(out, (x, y))
    return bg


def perspective(img: Image.Image, rng: np.random.Generator, max_shift: float = 0.09) -> Image.Image:
    """A phone held off-axis: move each corner by up to ``max_shift`` of the side (fill: a
    background colour), then crop the fill away partly."""
    w, h = img.size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    dst = src + rng.uniform(-max_shift, max_shift, (4, 2)) * [w, h]
    # coefficients mapping output (dst) -> input (src)
    A, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y]); b.append(u)
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y]); b.append(v)
    coeffs = np.linalg.solve(np.array(A), np.array(b))
    fill = random_colour(rng, str(rng.choice(["wall", "wood", "dark"])))
    return img.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC, fillcolor=fill)


def lighting_gradient(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Uneven light: a multiplicative linear ramp (0.65–1.15) in a random direction, sometimes
    a soft glare spot."""
    a = _arr(img)
    h, w = a.shape[:2]
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = ((xx / w - 0.5) * np.cos(ang) + (yy / h - 0.5) * np.sin(ang)) + 0.5
    lo, hi = rng.uniform(0.65, 0.9), rng.uniform(1.0, 1.15)
    a *= (lo + (hi - lo) * t)[..., None]
    if rng.random() < 0.3:
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.2) * max(w, h)
        a += (rng.uniform(40, 110) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
    return _img(a)


def sensor_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian noise, σ 1.5–7 (luma and a little chroma)."""
    a = _arr(img)
    s = rng.uniform(1.5, 7)
    a += rng.normal(0, s, a.shape[:2] + (1,)) + rng.normal(0, s / 3, a.shape)
    return _img(a)


def jpeg(img: Image.Image, rng: np.random.Generator, quality: tuple[int, int] = (30, 95)) -> Image.Image:
    """Re-encode as JPEG at a random quality."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(quality[0], quality[1] + 1)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def down_up(img: Image.Image, rng: np.random.Generator, scale: tuple[float, float] = (0.35, 0.9)) -> Image.Image:
    """Shrink by a random factor and enlarge back (small uploads)."""
    w, h = img.size
    f = rng.uniform(*scale)
    small = img.resize((max(8, int(w * f)), max(8, int(h * f))), Image.Resampling.BILINEAR)
    return small.resize((w, h), Image.Resampling.BILINEAR)


def _maybe(p: float, op, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return op(img, rng) if rng.random() < p else img


def generic(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Every upload: crop, flip, colour jitter, then (after any medium-specific ops) compression."""
    img = random_crop(img, rng)
    img = hflip(img, rng)
    return colour_jitter(img, rng)


def finish(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Sensor noise (30 %), down-up rescale (30 %), JPEG (60 %)."""
    img = _maybe(0.3, sensor_noise, img, rng)
    img = _maybe(0.3, down_up, img, rng)
    return _maybe(0.6, jpeg, img, rng)


def photo_of_artwork(img: Image.Image, rng: np.random.Generator, drawing: bool = False) -> Image.Image:
    """A phone photo of a physical painting or drawing (see module doc)."""
    img = generic(img, rng)
    if drawing:
        img = _maybe(0.6, paper_tint, img, rng)
    img = _maybe(0.6, frame_and_background, img, rng)
    img = _maybe(0.7, perspective, img, rng)
    img = _maybe(0.7, lighting_gradient, img, rng)
    img = _maybe(0.7, white_balance, img, rng)
    img = _maybe(0.5, sensor_noise, img, rng)
    return finish(img, rng)


def augment(img: Image.Image, medium: str, rng: np.random.Generator, *, photo: bool = True,
            p_photo: float = 0.7) -> Image.Image:
    """One augmented draw of ``img`` (RGB or RGBA) for a training image of ``medium``.
    ``photo=False`` gives the generic-only recipe (the ablation baseline)."""
    img = composite_alpha(img, rng)
    if photo and medium in ("painting", "drawing") and rng.random() < p_photo:
        return photo_of_artwork(img, rng, drawing=medium == "drawing")
    img = generic(img, rng)
    if photo and medium in ("photography", "sculpture"):
        img = _maybe(0.5, white_balance, img, rng)
        img = _maybe(0.3, lighting_gradient, img, rng)
    return finish(img, rng)
