"""Build folder-per-medium symlink trees from PACS, split by object, for ``modbot train``.

PACS (Li, Yang, Song, Hospedales, "Deeper, Broader and Artier Domain Generalization",
ICCV 2017) holds the same objects in four depictions. It stands in for r/Art images, whose
files were never published. The copy beside the repository lives at ``../shared/data/pacs``
(layout ``<depiction>/<object>/<file>``; see ``../shared/README.md``).

Mapping of PACS depictions to modbot's canonical media (a stand-in, not the real thing)::

    art_painting → painting      cartoon → digital (clip-art, unlike digital painting)
    sketch       → drawing       photo   → photography

The split is BY OBJECT, never at random: PACS holds near-duplicates of one subject, so a random
split would measure how well the model recognises the subject, not the medium::

    train = dog, elephant, person      val = horse      test = giraffe

or, with ``--holdout OBJECT``, a leave-one-object-out fold: train = the other four objects,
test = OBJECT, no validation folder (``modbot train`` then validates on a seeded random share
of the training images). The shipped model is the ``--holdout giraffe`` fold.

Output (symlinks to the original files, nothing copied)::

    OUT/train/<medium>/<object>/<file>
    OUT/val/<medium>/<object>/<file>
    OUT/test/<medium>/<object>/<file>

Usage::

    python bench/pacs_tree.py --out /tmp/pacs-tree
    python bench/pacs_tree.py --out /tmp/pacs-loo/giraffe --holdout giraffe
    modbot train /tmp/pacs-tree/train --val /tmp/pacs-tree/val --test /tmp/pacs-tree/test --out model

Prints the number of images per split and medium as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

#: PACS depiction folder → canonical medium (``modbot.domain.MEDIA``).
DEPICTION_TO_MEDIUM: dict[str, str] = {
    "art_painting": "painting",
    "cartoon": "digital",
    "sketch": "drawing",
    "photo": "photography",
}

#: Object folders of each split. Disjoint by construction.
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("dog", "elephant", "person"),
    "val": ("horse",),
    "test": ("giraffe",),
}

DEFAULT_PACS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pacs"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


#: The five PACS objects (``../shared/data/pacs/<depiction>/<object>``).
OBJECTS: tuple[str, ...] = ("dog", "elephant", "giraffe", "horse", "person")


def loo_splits(holdout: str) -> dict[str, tuple[str, ...]]:
    """Splits of the leave-one-object-out fold that tests on ``holdout``: ``{"train": the
    other objects, "test": (holdout,)}``. Raises ``ValueError`` for an unknown object."""
    if holdout not in OBJECTS:
        raise ValueError(f"unknown PACS object {holdout!r}; one of {OBJECTS}")
    return {"train": tuple(o for o in OBJECTS if o != holdout), "test": (holdout,)}


def build_tree(pacs_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
               splits: dict[str, tuple[str, ...]] | None = None) -> dict[str, dict[str, int]]:
    """Create the symlink trees under ``out_dir`` and return ``{split: {medium: n_images}}``.
    ``splits`` maps split name → objects (default :data:`SPLITS`).

    Existing links of the same name are replaced; other files in ``out_dir`` are left alone.
    Raises ``FileNotFoundError`` if a depiction/object folder of PACS is missing.
    """
    pacs = Path(pacs_dir).resolve()
    out = Path(out_dir)
    counts: dict[str, dict[str, int]] = {}
    for split, objects in (splits or SPLITS).items():
        counts[split] = {}
        for depiction, medium in DEPICTION_TO_MEDIUM.items():
            n = 0
            for obj in objects:
                src_dir = pacs / depiction / obj
                if not src_dir.is_dir():
                    raise FileNotFoundError(f"PACS folder missing: {src_dir}")
                dst_dir = out / split / medium / obj
                dst_dir.mkdir(parents=True, exist_ok=True)
                for src in sorted(src_dir.iterdir()):
                    if src.suffix.lower() not in _IMAGE_SUFFIXES or not src.is_file():
                        continue
                    dst = dst_dir / src.name
                    if dst.is_symlink() or dst.exists():
                        dst.unlink()
                    dst.symlink_to(src)
                    n += 1
            counts[split][medium] = n
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``--out DIR [--pacs DIR] [--holdout OBJECT]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to create the train/val/test trees in")
    parser.add_argument("--pacs", default=str(DEFAULT_PACS), help="PACS root (default: ../shared/data/pacs)")
    parser.add_argument("--holdout", choices=OBJECTS,
                        help="leave-one-object-out fold: train on the other four objects, test on this one")
    args = parser.parse_args(argv)
    splits = loo_splits(args.holdout) if args.holdout else SPLITS
    counts = build_tree(args.pacs, args.out, splits)
    json.dump({"out": str(args.out), "splits": {k: list(v) for k, v in splits.items()}, "counts": counts},
              sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
