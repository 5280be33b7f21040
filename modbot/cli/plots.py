"""PNG charts of ``modbot report`` (:func:`write_plots`) and ``modbot evaluate``
(:func:`plot_confusion`).

Importing this module imports matplotlib (Agg backend, no display needed): the commands import
it only when ``--plot`` is given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write PNG charts of a ``modbot report`` document into ``out_dir`` (created) and return
    their paths.

    ``confusion.png``: heat map of the stated-vs-predicted matrix with counts in the cells
    (rows/columns that are all zero are left out); ``weekly.png``: posts and mismatches per week
    (bars) with the mismatch rate (line, right axis); ``flag_precision.png``: reviewed flags per
    predicted medium, confirmed vs dismissed, with precision above each bar.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    period = report["period"]
    tot = report["totals"]
    subtitle = (f"{tot['submissions']} submissions, {tot['first_post'] or '-'} to "
                f"{tot['last_post'] or '-'}" + (f", r/{period['subreddit']}" if period["subreddit"] else ""))
    return [
        _save(_stated_confusion_figure(report["confusion"], subtitle), out / "confusion.png"),
        _save(_weekly_figure(report["weekly"], subtitle), out / "weekly.png"),
        _save(_flag_precision_figure(report["flag_precision"], subtitle), out / "flag_precision.png"),
    ]


def _stated_confusion_figure(conf: Mapping[str, Any], subtitle: str) -> Any:
    labels, m = conf["labels"], conf["matrix"]
    rows = [i for i, row in enumerate(m) if any(row)] or list(range(len(labels)))
    cols = ([j for j in range(len(labels)) if any(m[i][j] for i in range(len(labels)))]
            or list(range(len(labels))))
    data = [[m[i][j] for j in cols] for i in rows]
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 3, 0.8 * len(rows) + 2.2), dpi=120)
    vmax = max(max(r) for r in data) or 1
    im = ax.imshow(data, cmap="Blues", vmin=0, vmax=vmax)
    ax.set_xticks(range(len(cols)), [labels[j] for j in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [labels[i] for i in rows])
    ax.set_xlabel("predicted medium (model)")
    ax.set_ylabel("stated medium (flair / title)")
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            v = m[i][j]
            ax.text(b, a, str(v), ha="center", va="center", fontsize=10,
                    color="white" if v > vmax / 2 else "black",
                    fontweight="bold" if labels[i] == labels[j] else "normal")
    fig.colorbar(im, ax=ax, label="submissions", ticks=MaxNLocator(integer=True))
    ax.set_title(f"Stated vs predicted medium\n{subtitle}", fontsize=10)
    return fig


def _weekly_figure(weeks: list[Mapping[str, Any]], subtitle: str) -> Any:
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(weeks) + 3), 4.5), dpi=120)
    x = list(range(len(weeks)))
    ax.bar([i - 0.2 for i in x], [w["posts"] for w in weeks], width=0.4, label="posts",
           color="#9ecae1")
    ax.bar([i + 0.2 for i in x], [w["mismatch"] for w in weeks], width=0.4, label="mismatches",
           color="#e6550d")
    ax.set_xticks(x, [w["week"] for w in weeks], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("submissions")
    ax.set_xlabel("week starting (Monday, UTC)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.8, len(weeks) - 0.2)
    ax2 = ax.twinx()
    rates = [w["mismatch_rate"] * 100 if w["mismatch_rate"] is not None else float("nan")
             for w in weeks]
    ax2.plot(x, rates, color="black", marker="o", label="mismatch rate (right axis)")
    for i, r in enumerate(rates):
        if not math.isnan(r):
            ax2.annotate(f"{r:.0f}%", (i, r), textcoords="offset points", xytext=(0, 6),
                         ha="center", fontsize=8)
    ax2.set_ylabel("mismatch rate (% of judged)")
    ax2.set_ylim(0, 100)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3,
              fontsize=8, frameon=False)
    ax.set_title(f"Posts and mismatches by week\n{subtitle}", fontsize=10)
    return fig


def _flag_precision_figure(fp: Mapping[str, Any], subtitle: str) -> Any:
    media = [r["medium"] for r in fp["by_medium"]]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(media) + 3), 4), dpi=120)
    conf_n = [r["confirmed"] for r in fp["by_medium"]]
    dism_n = [r["dismissed"] for r in fp["by_medium"]]
    unrev = [r["unreviewed"] for r in fp["by_medium"]]
    xs = list(range(len(media)))
    ax.bar(xs, conf_n, color="#31a354", label="confirmed")
    ax.bar(xs, dism_n, bottom=conf_n, color="#de2d26", label="dismissed")
    ax.bar(xs, unrev, bottom=[c + d for c, d in zip(conf_n, dism_n, strict=True)],
           color="#d9d9d9", label="not reviewed")
    for i, r in enumerate(fp["by_medium"]):
        if r["precision"] is not None:
            ax.text(i, r["flagged"], f"{r['precision']:.0%} ({r['confirmed']}/{r['reviewed']})",
                    ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, max([r["flagged"] for r in fp["by_medium"]] + [1]) * 1.18)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks(xs, media)
    ax.set_xlabel("predicted medium of the flag")
    ax.set_ylabel("mismatch flags")
    o = fp["overall"]
    ax.set_title(f"Flag precision (confirmed / reviewed): {_pct(o['precision'])} of "
                 f"{o['reviewed']} reviewed\n{subtitle}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_confusion(result: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the confusion matrix of an evaluation result (:func:`modbot.ml.evaluate.evaluate_tree`)
    as a PNG: counts in the cells, colour = share of the true class (row-normalised)."""
    labels = result["confusion"]["labels"]
    matrix = np.array(result["confusion"]["matrix"], dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.4 * len(labels) + 2, 1.2 * len(labels) + 1.5), dpi=100)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black")
    f1 = result.get("macro_f1")
    ax.set_title(f"{result.get('model_version', '')}: n = {result['n_images']}, "
                 f"macro-F1 = {f1:.3f}" if f1 is not None else "no images scored", fontsize=9)
    _save(fig, Path(path))
