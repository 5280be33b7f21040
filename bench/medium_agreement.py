"""Agreement of modbot's stated-medium normaliser with the labels of a real r/Art data set.

Data: ``../shared/data/rart-2020/posts.jsonl`` (relative to the repository root; ``--data``
overrides): 5,121 r/Art submissions of April–November 2020 from the public "Reddit Art
Classifier" project (MWilliamson96/RedditArtClassifier, ``data/meta_data_final.json``). Its
``medium`` label was made by that project with substring keyword matching of the title's third
comma field (no word boundaries; titles naming two of its classes were left out), so it is a
reference, not ground truth: read the disagreements to see whose fault they are.

Label mapping: digital → digital, paint → painting, ink → ink, non_ink_drawing → drawing,
sculpture → sculpture.

Prints agreement (share of rows where our stated medium equals the mapped label), per-class
precision/recall/F1, the number of ``unknown`` results, the confusion matrix (rows: data set
label, columns: ours), the disagreements counted by kind, and a sample of disagreements.
With ``--json`` the last line is one JSON object:
``{"agreement", "n", "per_class": {medium: {"precision", "recall", "f1", "support"}}, "unknown"}``.

``--write-sample PATH --per-class N`` writes a class-stratified random sample of the rows
(seeded; this is how ``tests/data/rart_titles_sample.jsonl`` was made).

Usage::

    python bench/medium_agreement.py [--data PATH] [--samples 30] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from modbot.domain import UNKNOWN  # noqa: E402
from modbot.medium import Vocabulary, medium_field, stated_medium  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "rart-2020" / "posts.jsonl"
LABEL_MAP = {"digital": "digital", "paint": "painting", "ink": "ink",
             "non_ink_drawing": "drawing", "sculpture": "sculpture"}


def load_rows(path: Path) -> list[dict]:
    """The data set's rows (dicts with ``title``, ``medium``, ``id`` …), one JSON object a line."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(rows: list[dict], vocabulary: Vocabulary | None = None) -> dict:
    """Compare :func:`stated_medium` with the mapped labels.

    Returns ``agreement`` (0–1), ``n``, ``unknown`` (count), ``per_class`` (precision, recall,
    F1 in 0–1 and support, for every medium that occurs as a label or a result), ``confusion``
    ({label: {ours: count}}) and ``disagreements`` (list of dicts).
    """
    confusion: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    disagreements = []
    agree = unknown = 0
    for row in rows:
        expected = LABEL_MAP[row["medium"]]
        stated = stated_medium(row["title"], row.get("link_flair_text"), vocabulary=vocabulary)
        confusion[expected][stated.medium] += 1
        unknown += stated.medium == UNKNOWN
        if stated.medium == expected:
            agree += 1
        else:
            disagreements.append({"id": row.get("id"), "title": row["title"], "label": expected,
                                  "ours": stated.medium, "raw": stated.raw, "matched": stated.matched,
                                  "field": medium_field(row["title"])})
    classes = sorted({c for c in confusion} | {o for c in confusion.values() for o in c})
    per_class = {}
    for c in classes:
        tp = confusion[c][c] if c in confusion else 0
        predicted = sum(confusion[e][c] for e in confusion)
        support = sum(confusion[c].values()) if c in confusion else 0
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[c] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
                        "support": support}
    return {"agreement": agree / len(rows) if rows else 0.0, "n": len(rows), "unknown": unknown,
            "per_class": per_class, "confusion": {k: dict(v) for k, v in confusion.items()},
            "disagreements": disagreements}


def write_sample(rows: list[dict], path: Path, per_class: int, seed: int = 2020) -> int:
    """Write ``per_class`` random rows of each label to ``path`` (JSON Lines); returns the count."""
    rng = random.Random(seed)
    by_label: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        by_label[row["medium"]].append(row)
    chosen = []
    for label in sorted(by_label):
        chosen.extend(rng.sample(by_label[label], min(per_class, len(by_label[label]))))
    with path.open("w", encoding="utf-8") as fh:
        for row in chosen:
            keep = {k: row[k] for k in ("id", "title", "medium", "unix_time") if k in row}
            fh.write(json.dumps(keep, ensure_ascii=False) + "\n")
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="posts.jsonl to read")
    parser.add_argument("--samples", type=int, default=30, help="disagreements to print")
    parser.add_argument("--seed", type=int, default=0, help="seed for the disagreement sample")
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")
    parser.add_argument("--write-sample", type=Path, help="write a stratified sample and exit")
    parser.add_argument("--per-class", type=int, default=40, help="rows per label for --write-sample")
    args = parser.parse_args(argv)

    if not args.data.exists():
        print(f"data not found: {args.data} (see ../shared/README.md)", file=sys.stderr)
        return 2
    rows = load_rows(args.data)
    if args.write_sample:
        n = write_sample(rows, args.write_sample, args.per_class)
        print(f"wrote {n} rows to {args.write_sample}")
        return 0

    result = evaluate(rows)
    print(f"data: {args.data.name}  rows: {result['n']}")
    print(f"agreement: {result['agreement']:.2%}  "
          f"({result['n'] - len(result['disagreements'])}/{result['n']})")
    print(f"unknown: {result['unknown']}")
    print()
    print(f"{'medium':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
    for c, m in result["per_class"].items():
        print(f"{c:<12} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8}")
    print()
    cols = list(result["per_class"])
    print("confusion (rows: data set label, columns: ours)")
    print(" " * 12 + "".join(f"{c[:9]:>10}" for c in cols))
    for label, counts in sorted(result["confusion"].items()):
        print(f"{label:<12}" + "".join(f"{counts.get(c, 0):>10}" for c in cols))
    print()
    kinds = collections.Counter((d["label"], d["ours"]) for d in result["disagreements"])
    print("disagreements by kind (label → ours)")
    for (label, ours), n in kinds.most_common():
        print(f"  {label:>10} → {ours:<12} {n}")
    print()
    rng = random.Random(args.seed)
    sample = rng.sample(result["disagreements"], min(args.samples, len(result["disagreements"])))
    print(f"sample of {len(sample)} disagreements (label → ours [matched] | title)")
    for d in sample:
        print(f"  {d['label']:>9} → {d['ours']:<11} [{d['matched']}] | {d['title']}")
    if args.json:
        print(json.dumps({"agreement": round(result["agreement"], 4), "n": result["n"],
                          "per_class": result["per_class"], "unknown": result["unknown"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
