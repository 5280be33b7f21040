"""The one image decoder: untrusted bytes → an upright ``RGB`` Pillow image, one safety policy.

Every path that turns image bytes into pixels goes through :func:`decode_image`: the daemon's
downloads (:mod:`modbot.images`), re-reading the image cache for retraining, training and
evaluation trees (:mod:`modbot.ml.data`), ``modbot evaluate`` and ``modbot classify``. The policy:
only :data:`ALLOWED_FORMATS`, Pillow's decompression-bomb limit enforced as an error, the file
structure verified, the first frame of an animation, EXIF orientation applied, every mode
converted to RGB with transparency composited onto white, and — when the caller says how large
the result needs to be — JPEGs decoded at a reduced scale by libjpeg (``Image.draft``).

Errors are the :class:`~modbot.errors.ImageError` subclasses (``reason`` codes stored as-is).
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import os
import struct
import warnings
from collections.abc import Iterator, Sequence

from PIL import Image, ImageOps, UnidentifiedImageError

from modbot.errors import DecompressionBombError, ImageDecodeError, ImageError, NotAnImageError

__all__ = ["ALLOWED_FORMATS", "decode_image", "open_image", "to_rgb"]

#: Pillow formats accepted. Restricting ``Image.open`` to these keeps rarely used decoders
#: (EPS, which runs Ghostscript; PSD; TIFF …) away from untrusted bytes. The JPEG opener also
#: returns multi-picture JPEGs as phones write them (format ``MPO``). ``AVIF`` is used when
#: this Pillow build has it.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "AVIF")

#: Exceptions Pillow's decoders raise on corrupt or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error)


@functools.cache
def _open_formats() -> tuple[str, ...]:
    """:data:`ALLOWED_FORMATS` that this Pillow build can open (``Image.open`` would fail on
    an unknown name with ``KeyError``)."""
    Image.init()
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)


def _bomb_check(size: tuple[int, int]) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise DecompressionBombError(
            f"image of {size[0]}x{size[1]} pixels exceeds the limit of {limit} pixels "
            "(PIL.Image.MAX_IMAGE_PIXELS)"
        )


def _draft(im: Image.Image, min_size: int | Sequence[int] | None, max_side: int | None) -> None:
    """Ask libjpeg for the smallest scale (1/1 … 1/8) that keeps both sides ≥ ``min_size``'s
    larger side, else the long side ≥ ``max_side``."""
    if min_size is not None:
        side = max(_as_size(min_size))
        im.draft("RGB", (side, side))
    elif max_side is not None:
        w, h = im.size
        long_side = max(w, h)
        im.draft("RGB", (max(1, w * max_side // long_side), max(1, h * max_side // long_side)))


#: Decoded images larger than this (pixels) are decoded one at a time, process-wide, so that
#: parallel downloads (``modbot.prefetch``) cannot multiply the peak memory of big PNGs.
BIG_DECODE_PIXELS = 16_000_000
_big_decodes = threading.Semaphore(1)


@contextlib.contextmanager
def _decode_slot(size: tuple[int, int]) -> Iterator[None]:
    if size[0] * size[1] <= BIG_DECODE_PIXELS:
        yield
        return
    with _big_decodes:
        yield


def _pixel_check(size: tuple[int, int], max_pixels: int | None) -> None:
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise DecompressionBombError(
            f"image of {size[0]}x{size[1]} pixels exceeds the limit of {max_pixels} decoded "
            "pixels ([images] max_pixels)"
        )


#: Modes ``Image.reduce`` cannot work on, and the mode each is widened to first.
_REDUCIBLE = {"I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I", "1": "L", "P": "RGBA", "PA": "RGBA"}


def _shrink(im: Image.Image, max_side: int | None) -> Image.Image:
    """``im`` reduced by the largest integer factor that keeps its long side ≥ ``max_side``
    (``im`` itself when no reduction is needed)."""
    if max_side is None:
        return im
    factor = max(im.size) // max_side
    if factor < 2:
        return im
    if im.mode.startswith("I;16"):  # reduce() refuses 16-bit modes; a box resize does the same
        return im.resize((max(1, im.width // factor), max(1, im.height // factor)), Image.Resampling.BOX)
    if im.mode in _REDUCIBLE:
        im = im.convert(_REDUCIBLE[im.mode] if im.mode != "P" or "transparency" in im.info else "RGB")
    return im.reduce(factor)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to ``RGB``; transparency is composited onto white.

    Handles P/PA/L/LA/1/RGBA/CMYK and 16-bit or float greyscale (scaled, not clipped). A plain
    ``convert("RGB")`` would keep whatever colour transparent pixels hold, often black. Returns
    ``im`` itself when it is already ``RGB``.
    """
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale (PNG): scale 0..65535 to 0..255; convert("L") alone would clip.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode == "F":
        im = im.convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode != "RGB":
        return im.convert("RGB")
    return im


def decode_image(data: bytes, *, min_size: int | Sequence[int] | None = None,
                 max_side: int | None = None, max_pixels: int | None = None) -> tuple[Image.Image, str]:
    """Validate and decode image bytes into an ``RGB`` Pillow image and its format name.

    Steps: identify with :func:`PIL.Image.open` restricted to :data:`ALLOWED_FORMATS`;
    refuse more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (Pillow's decompression-bomb limit,
    89,478,485 by default; its warning and its error both become ours); ``verify()`` the file
    structure; decode the first frame of an animation (GIF, animated WebP, APNG); apply the EXIF
    orientation (:func:`PIL.ImageOps.exif_transpose`; a broken EXIF block is ignored); convert
    P/PA/L/LA/1/RGBA/CMYK/I;16… to ``RGB``, compositing transparency onto white (CMYK without
    its ICC profile, as Pillow converts it).

    With ``min_size`` (pixels, one int or ``(H, W)``: the size the caller will resize to), a JPEG
    is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (``Image.draft``), never smaller than
    ``min_size`` on either side — several times faster and smaller for large photos.

    Memory is bounded: ``max_pixels`` (a count; None = only Pillow's limit) refuses an image
    whose *decoded* size (after that reduced-scale JPEG decoding) is larger, before its pixels
    are decoded; ``max_side`` (pixels) shrinks a larger image by an integer factor
    (``Image.reduce``) right after decoding, before any mode conversion copies it, so the
    result's long side is at most about ``2 · max_side``. A JPEG is then decoded at 1/8 scale
    too when that still leaves ``max_side`` pixels.

    Returns ``(image, format)``: ``image`` is a new in-memory ``PIL.Image.Image`` in mode
    ``RGB`` (``size`` is (width, height) after orientation), ``format`` Pillow's name
    (``JPEG``, ``MPO``, ``PNG``, ``GIF``, ``WEBP``, ``BMP``, ``AVIF``).

    Raises :class:`NotAnImageError` (unidentifiable bytes, e.g. HTML, or a format not
    allowed), :class:`DecompressionBombError`, :class:`ImageDecodeError` (truncated or
    corrupt data). ``ImageFile.LOAD_TRUNCATED_IMAGES`` is not changed. The warning is caught
    with :func:`warnings.catch_warnings`, which changes process-wide filters while it runs; the
    explicit pixel-count check makes the outcome the same whatever other threads do to them.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                probe = Image.open(io.BytesIO(data), formats=_open_formats())
            except UnidentifiedImageError as exc:
                raise NotAnImageError(f"not a supported image ({len(data)} bytes)") from exc
            try:
                fmt = str(probe.format)
                _bomb_check(probe.size)
                probe.verify()  # structure/CRC checks; the object is unusable afterwards
            finally:
                probe.close()
            with Image.open(io.BytesIO(data), formats=_open_formats()) as im:
                im.seek(0)
                if im.format in ("JPEG", "MPO"):
                    _draft(im, min_size, max_side)
                _pixel_check(im.size, max_pixels)
                with _decode_slot(im.size):
                    im.load()
                small = _shrink(im, max_side)
                try:
                    oriented = ImageOps.exif_transpose(small)
                except _DECODE_ERRORS:
                    oriented = small.copy()
                _bomb_check(oriented.size)
                rgb = to_rgb(oriented)
                if rgb is im:  # still the file's own image: copy it out before it is closed
                    rgb = rgb.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBombError(str(exc)) from exc
    except ImageError:
        raise
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    return rgb, fmt


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def open_image(source: bytes | str | os.PathLike[str], size: int | Sequence[int] | None = None) -> Image.Image:
    """Decode an image file (path) or its bytes with :func:`decode_image`; the ``RGB`` image only.

    ``size`` is passed on as ``min_size`` (reduced-scale JPEG decoding for a model's ``(H, W)``
    input). Raises the errors of :func:`decode_image`, and ``OSError`` when the file cannot be
    read.
    """
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb").read()
    return decode_image(data, min_size=size)[0]
