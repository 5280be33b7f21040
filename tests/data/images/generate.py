"""Regenerate the tiny test images in this folder (deterministic; Pillow only).

Run from anywhere: ``python tests/data/images/generate.py``. Every file is drawn here from
solid colours or seeded noise; nothing is copied from elsewhere. ``tests/test_images.py`` checks
the properties each file is meant to have (EXIF orientation, frame count, mode) before relying
on them.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """An RGB image whose left half is ``left`` and right half ``right``."""
    im = Image.new("RGB", size, right)
    im.paste(left, (0, 0, size[0] // 2, size[1]))
    return im


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    """Seeded RGB noise (compresses badly, so a JPEG of it is long enough to truncate)."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))


def main() -> None:
    # 40x20, left red / right blue, stored with EXIF Orientation 6 ("rotate 90° CW to view"):
    # shown upright it is 20x40 with red on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    halves((40, 20), RED, BLUE).save(HERE / "exif_orientation6.jpg", quality=95, exif=exif)

    # Plain RGB JPEG, 32x24 (cache tests).
    halves((32, 24), GREEN, BLUE).save(HERE / "rgb.jpg", quality=95)

    # Palette PNG: index 0 red (transparent, left half), index 1 blue (right half).
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([*RED, *BLUE] + [0] * (254 * 3))
    pal.paste(0, (0, 0, 4, 8))
    pal.save(HERE / "palette_transparent.png", transparency=0)

    # 8-bit greyscale PNG, value 128; 16-bit greyscale PNG (mode I;16), value 32768.
    Image.new("L", (8, 8), 128).save(HERE / "greyscale.png")
    Image.new("I;16", (8, 8), 32768).save(HERE / "grey16.png")

    # RGBA PNG, half-transparent black; LA PNG, fully transparent.
    Image.new("RGBA", (8, 8), (0, 0, 0, 128)).save(HERE / "rgba_half.png")
    Image.new("LA", (8, 8), (0, 0)).save(HERE / "la_transparent.png")

    # CMYK JPEG of pure red (C=0, M=255, Y=255, K=0); Pillow writes the Adobe marker.
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(HERE / "cmyk.jpg", quality=95)

    # Animations: first frame red, then blue (GIF, WebP) or green (APNG).
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    frames[0].save(HERE / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(HERE / "animated.webp", save_all=True, append_images=frames[1:], duration=100,
                   loop=0, lossless=True)
    apng = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), GREEN)]
    apng[0].save(HERE / "animated.png", save_all=True, append_images=apng[1:], duration=100, loop=0)

    # Multi-picture JPEG (MPO, as phone cameras write them): blue, then red.
    Image.new("RGB", (8, 8), BLUE).save(HERE / "multi_picture.jpg", format="MPO", save_all=True,
                                        append_images=[Image.new("RGB", (8, 8), RED)], quality=95)

    # Still lossless WebP, green.
    Image.new("RGB", (8, 8), GREEN).save(HERE / "still.webp", lossless=True)

    # A JPEG of noise cut to half its length: Pillow identifies it, decoding fails.
    full = HERE / "truncated.jpg"
    noise((64, 64), seed=6).save(full, quality=90)
    data = full.read_bytes()
    full.write_bytes(data[: len(data) // 2])

    # An HTML error page, as image hosts serve them (with an image Content-Type, sometimes).
    (HERE / "not_an_image.html").write_text(
        "<!doctype html>\n<html><head><title>404</title></head>"
        "<body><h1>Image not found</h1></body></html>\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
