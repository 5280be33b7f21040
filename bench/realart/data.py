"""Datasets (realart by source, PACS by object), leave-source-out folds, and THE function that
turns an image into model input tensors (used by feature extraction, evaluation and serving
checks alike)."""
from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from modbot.classify import preprocess

LABELS = ("digital", "painting", "drawing", "photography", "sculpture")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REALART = SHARED / "realart"
PACS = SHARED / "pacs"
PACS_MEDIUM = {"art_painting": "painting", "cartoon": "digital", "sketch": "drawing", "photo": "photography"}
PACS_OBJECTS = ("dog", "elephant", "giraffe", "horse", "person")
#: Working folder for feature caches and results ($REALART_WORK, default a temp folder): they
#: are derived from realart images whose licence does not allow copying, so never the repo.
EXP = Path(os.environ.get("REALART_WORK", Path(tempfile.gettempdir()) / "modbot-realart"))
#: The test sources, fixed before any training (TEST_SOURCES.md): shipped beside this file.
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Item:
    """One image: path, label index, dataset ('realart'/'pacs'), source (realart) or
    depiction (pacs), group (realart: origin repo, used for folds; pacs: object)."""
    path: str
    y: int
    dataset: str
    source: str
    group: str


def realart_items() -> list[Item]:
    """All realart images from manifest.csv (group = origin, so one artist's media stay together)."""
    out = []
    with open(REALART / "manifest.csv", newline="") as f:
        for r in csv.DictReader(f):
            out.append(Item(str(REALART / r["file"]), LABELS.index(r["medium"]), "realart", r["source"], r["origin"]))
    return out


def pacs_items() -> list[Item]:
    """All PACS images (depiction → medium; group = object)."""
    out = []
    for dep, med in PACS_MEDIUM.items():
        for obj in PACS_OBJECTS:
            for p in sorted([*(PACS / dep / obj).glob("*.jpg"), *(PACS / dep / obj).glob("*.png")]):
                out.append(Item(str(p), LABELS.index(med), "pacs", dep, obj))
    return out


def all_items() -> list[Item]:
    """realart then PACS, in a fixed order (feature caches are indexed by this order)."""
    return realart_items() + pacs_items()


def test_sources() -> set[str]:
    """The held-out test sources written down before training (test_sources.json)."""
    return set(json.loads((HERE / "test_sources.json").read_text()))


def pacs_subset(items: list[Item], per_cell: int = 100, seed: int = 0) -> np.ndarray:
    """Indices of a seeded sample of PACS: ``per_cell`` images per (depiction, object)."""
    rng = np.random.default_rng(seed)
    cells: dict[tuple[str, str], list[int]] = {}
    for i, it in enumerate(items):
        if it.dataset == "pacs":
            cells.setdefault((it.source, it.group), []).append(i)
    out = []
    for k in sorted(cells):
        idx = np.array(cells[k])
        out.extend(rng.permutation(idx)[:per_cell].tolist())
    return np.sort(np.array(out))


def source_folds(items: list[Item], k: int = 5) -> dict[str, int]:
    """Leave-source-out folds over the non-test realart groups (origins): group -> fold.

    Groups are dealt per medium (largest first, round-robin with a per-medium offset) so
    every fold holds sources of every medium where possible. Deterministic."""
    tests = test_sources()
    sizes: dict[str, int] = {}
    med: dict[str, int] = {}
    for it in items:
        if it.dataset == "realart" and it.source not in tests:
            sizes[it.group] = sizes.get(it.group, 0) + 1
            med.setdefault(it.group, it.y)
    fold: dict[str, int] = {}
    for m in range(len(LABELS)):
        gs = sorted([g for g in sizes if med[g] == m], key=lambda g: (-sizes[g], g))
        for j, g in enumerate(gs):
            fold[g] = (j + m) % k
    return fold


# ---------------------------------------------------------------------------------------------
# image -> tensors

def load_rgba(path: str) -> Image.Image:
    """Decode an image upright; keeps alpha (RGBA) when the file has it, else RGB."""
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im) or im
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            return im.convert("RGBA")
        return im.convert("RGB")


def crop_boxes(w: int, h: int, mode: str) -> list[tuple[float, float, float, float]]:
    """Square crop boxes for an image of ``w``×``h``: ``modbot.classify.crop_boxes`` (what
    modbot serves), with this study's mode names ``center`` (the one centre square) and
    ``tiles`` (2–3 squares along the long side of an elongated image)."""
    from modbot.classify import crop_boxes as served_boxes

    return served_boxes(w, h, "centre" if mode == "center" else mode)


def image_to_tensors(image: Image.Image, size: int, mode: str = "center") -> np.ndarray:
    """THE image → model input function: uint8 ``(n_crops, size, size, 3)``.

    Transparency is composited on white and each crop is bicubic-resized exactly as
    ``modbot.classify.preprocess`` does (it is called per crop), so the centre mode equals the
    served input bit for bit. Class probabilities of the crops are averaged by the caller."""
    if image.mode != "RGB":
        from modbot.decode import to_rgb
        image = to_rgb(image)
    boxes = crop_boxes(*image.size, mode)
    if len(boxes) == 1 and mode == "center":
        return preprocess([image], size)
    return np.concatenate([preprocess([image.crop(tuple(int(round(v)) for v in b))], size) for b in boxes])
