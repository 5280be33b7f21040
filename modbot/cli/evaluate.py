"""``modbot evaluate`` and ``modbot classify``: score a model on a labelled image tree, or
classify single images.

Importing this module is cheap: TensorFlow (only needed when a model directory has no checked
LiteRT export) and matplotlib (``--plot``) are imported inside the commands.

Evaluation tree: top-level folders are canonical media (``modbot.domain.MEDIA``), images at any
depth below them (symlinks followed), as :func:`modbot.ml.training.scan_tree` reads training trees.
Folders that are canonical media the model has no output for (e.g. ``sculpture`` for a PACS
model) are reported with what the model predicted for them, and left out of the metrics;
folders that are not media at all are listed as ignored; unreadable images are listed, never
fatal.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from modbot.domain import MEDIA
from modbot.fsutil import IMAGE_SUFFIXES, image_files  # noqa: F401 - IMAGE_SUFFIXES re-exported
from modbot.errors import ImageError, ModbotError

#: Images per forward pass while evaluating.
EVAL_BATCH = 32


@dataclass
class TreeScan:
    """Files of an evaluation tree: ``files`` maps each medium folder to its image paths
    (sorted); ``ignored`` lists top-level folders that are not canonical media."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def scan_eval_tree(root: str | os.PathLike[str]) -> TreeScan:
    """Candidate images under each top-level medium folder of ``root`` (any depth, symlinks
    followed, hidden entries skipped, suffix in :data:`IMAGE_SUFFIXES` or none). Top-level
    folders that are not canonical media are returned in ``ignored``, not raised on.
    Raises ``NotADirectoryError`` if ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    scan = TreeScan()
    for top in sorted(root.iterdir()):
        if top.name.startswith(".") or not top.is_dir():
            continue
        if top.name not in MEDIA:
            scan.ignored.append(top.name)
            continue
        scan.files[top.name] = image_files(top)
    return scan


def evaluate_tree(
    root: str | os.PathLike[str],
    classifier: Any,
    *,
    batch_size: int = EVAL_BATCH,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Classify every image of an evaluation tree and score the predictions.

    ``classifier`` has ``labels``, ``version``, ``input_size`` and ``predict_batch`` (uint8
    ``(N, H, W, 3)`` → probabilities ``(N, k)``), as :class:`~modbot.classify.KerasClassifier`
    and :class:`~modbot.classify.LiteRTClassifier` do. Images are decoded with
    :func:`modbot.classify.open_image` (reduced-scale JPEG decoding) and
    :func:`modbot.classify.preprocess`. ``progress`` is called with the number of images done
    since the last call.

    Returns ``{"model_version", "n_images", "accuracy", "macro_f1", "per_class": {medium:
    {precision, recall, f1, support}}, "confusion": {"labels", "matrix"} (rows = true, columns
    = predicted), "ece" (15-bin expected calibration error of the served, calibrated
    probabilities), "unknown_media": {medium: {"n_images", "predicted": {label: n}}},
    "ignored_folders": [...], "unreadable": [{"path", "error"}]}``. ``n_images`` counts the
    scored images (known media, readable). Metrics are ``None`` when nothing was scored.
    """
    import numpy as np
    from PIL import Image

    from modbot.classify import preprocess
    from modbot.decode import open_image
    from modbot.ml.training import classification_report, expected_calibration_error

    root = Path(root)
    scan = scan_eval_tree(root)
    labels = list(classifier.labels)
    size = classifier.input_size
    y_true: list[str] = []
    y_pred: list[str] = []
    probs_known: list[Any] = []
    unknown: dict[str, Counter[str]] = {}
    unreadable: list[dict[str, str]] = []
    pending: list[tuple[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        batch = preprocess([img for _, img in pending], size)
        probs = classifier.predict_batch(batch)
        for (medium, _), row in zip(pending, probs):
            predicted = labels[int(row.argmax())]
            if medium in labels:
                y_true.append(medium)
                y_pred.append(predicted)
                probs_known.append(row)
            else:
                unknown.setdefault(medium, Counter())[predicted] += 1
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for medium, paths in scan.files.items():
        for path in paths:
            try:
                image = open_image(path, size)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                unreadable.append({"path": os.path.relpath(path, root), "error": f"{type(exc).__name__}: {exc}"})
                if progress is not None:
                    progress(1)
                continue
            pending.append((medium, image))
            if len(pending) >= batch_size:
                flush()
    flush()

    if y_true:
        rep = classification_report(y_true, y_pred, labels)
        index = {label: i for i, label in enumerate(labels)}
        ece = expected_calibration_error(np.array(probs_known), np.array([index[t] for t in y_true]))
    else:
        rep = classification_report([], [], labels)
        ece = None
    return {
        "model_version": classifier.version,
        "n_images": rep["n"],
        "accuracy": rep["accuracy"],
        "macro_f1": rep["macro_f1"],
        "per_class": rep["per_class"],
        "confusion": rep["confusion"],
        "ece": ece,
        "unknown_media": {m: {"n_images": sum(c.values()), "predicted": dict(c.most_common())}
                          for m, c in unknown.items()},
        "ignored_folders": scan.ignored,
        "unreadable": unreadable,
    }


def count_images(root: str | os.PathLike[str]) -> int:
    """Number of candidate image files in an evaluation tree (for the progress bar)."""
    return sum(len(v) for v in scan_eval_tree(root).files.values())


def plot_confusion(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the confusion matrix of an :func:`evaluate_tree` result as a PNG (matplotlib,
    Agg backend): counts in the cells, colour = share of the true class (row-normalised)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _print_result(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result["n_images"] == 0:
        console.print("[bold]No images of the model's media were scored.[/bold]")
    else:
        console.print(f"[bold]{result['model_version']}[/bold]: {result['n_images']} images, "
                      f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}, "
                      f"ECE {result['ece']:.4f}")
        t = Table(title="Per medium", title_justify="left")
        for col in ("medium", "precision", "recall", "F1", "support"):
            t.add_column(col, justify="left" if col == "medium" else "right")
        for medium, c in result["per_class"].items():
            t.add_row(medium, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", str(c["support"]))
        console.print(t)
        labels = result["confusion"]["labels"]
        t = Table(title="Confusion matrix (rows = true, columns = predicted)", title_justify="left")
        t.add_column("true \\ predicted")
        for label in labels:
            t.add_column(label, justify="right")
        for label, row in zip(labels, result["confusion"]["matrix"]):
            t.add_row(label, *(str(v) for v in row))
        console.print(t)
    for medium, info in result["unknown_media"].items():
        predicted = ", ".join(f"{k} {v}" for k, v in info["predicted"].items())
        console.print(f"Medium [bold]{medium}[/bold] is unknown to the model: {info['n_images']} images "
                      f"not scored (predicted: {predicted or 'none'}).")
    if result["ignored_folders"]:
        console.print("Ignored folders (not canonical media): " + ", ".join(result["ignored_folders"]))
    if result["unreadable"]:
        console.print(f"Unreadable images ({len(result['unreadable'])}), skipped:")
        for item in result["unreadable"][:20]:
            console.print(f"  {item['path']}: {item['error']}", markup=False)
        if len(result["unreadable"]) > 20:
            console.print(f"  … and {len(result['unreadable']) - 20} more")


def _load(model_dir: str | None, backend: str) -> Any:
    from modbot.classify import load_classifier

    try:
        return load_classifier(model_dir, backend=backend)
    except ModbotError as exc:
        raise click.ClickException(str(exc)) from exc


_MODEL_OPTION = click.option("--model", "model_dir", type=click.Path(file_okay=False),
                             help="Model directory (default: the shipped model).")
_BACKEND_OPTION = click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto",
                               show_default=True, help="auto: the checked LiteRT export when present, "
                               "else Keras (imports TensorFlow).")


@click.command("evaluate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@_MODEL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the confusion matrix as a PNG.")
@_BACKEND_OPTION
def evaluate_cmd(data_dir: str, model_dir: str | None, as_json: bool, plot_path: str | None, backend: str) -> None:
    """Score a model on DATA_DIR, a folder-per-medium image tree (images at any depth).

    Prints accuracy, macro-F1, per-medium precision/recall/F1/support and the confusion
    matrix. Media folders the model does not know are reported (with what it predicted), not
    scored; unreadable images are listed and skipped. JSON keys: accuracy, macro_f1, per_class,
    confusion {labels, matrix}, n_images, ece, unknown_media, ignored_folders, unreadable,
    model_version.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    classifier = _load(model_dir, backend)
    total = count_images(data_dir)
    err = Console(stderr=True)
    with Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("classify", total=total)
        result = evaluate_tree(data_dir, classifier, progress=lambda n: bar.advance(task, n))
    if plot_path:
        plot_confusion(result, plot_path)
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_result(result)
        if plot_path:
            click.echo(f"Confusion matrix written to {plot_path}")


def _is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def classify_sources(sources: Sequence[str], classifier: Any, *, allow_hosts: Sequence[str] = (),
                     cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Classify image files and URLs; one result per source, in order.

    URLs are fetched with :class:`modbot.images.ImageFetcher` (the daemon's downloader: size
    cap, timeouts, private-address guard; ``allow_hosts`` exempts host names from the guard)
    into ``cache_dir`` (default: a temporary folder). Each result is ``{"source",
    "probabilities": {medium: p} (sorted, most probable first), "top", "confidence"}`` or
    ``{"source", "error"}`` when the image could not be read or fetched.
    """
    import tempfile

    from PIL import Image

    from modbot.decode import open_image
    from modbot.domain import ImageRef
    from modbot.images import ImageFetcher

    results: list[dict[str, Any]] = []
    images: list[tuple[int, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modbot-classify-") as tmp:
        fetcher = ImageFetcher(cache_dir or tmp, allow_hosts=allow_hosts) if any(_is_url(s) for s in sources) else None
        try:
            for source in sources:
                results.append({"source": source})
                try:
                    if _is_url(source):
                        assert fetcher is not None
                        image = fetcher.fetch(ImageRef(url=source, source="direct")).rgb
                    else:
                        image = open_image(source, classifier.input_size)
                except ImageError as exc:
                    results[-1]["error"] = f"{exc.reason}: {exc}"
                    continue
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                    results[-1]["error"] = f"{type(exc).__name__}: {exc}"
                    continue
                images.append((len(results) - 1, image))
        finally:
            if fetcher is not None:
                fetcher.close()
    predictions = classifier.predict([img for _, img in images]) if images else []
    for (i, _), pred in zip(images, predictions):
        ordered = dict(sorted(pred.probabilities.items(), key=lambda kv: -kv[1]))
        top, conf = pred.top
        results[i].update(probabilities=ordered, top=top, confidence=conf, model_version=pred.model_version)
    return results


@click.command("classify")
@click.argument("sources", nargs=-1, required=True)
@_MODEL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image (JSON lines).")
@click.option("--allow-host", "allow_hosts", multiple=True,
              help="Host name exempt from the private-address guard (e.g. 127.0.0.1 for a local server).")
@_BACKEND_OPTION
def classify_cmd(sources: tuple[str, ...], model_dir: str | None, as_json: bool, allow_hosts: tuple[str, ...],
                 backend: str) -> None:
    """Print per-medium probabilities for each image file or http(s) URL in SOURCES.

    Exit status 1 when any source could not be read or fetched (the others are still printed).
    """
    classifier = _load(model_dir, backend)
    results = classify_sources(sources, classifier, allow_hosts=allow_hosts)
    for r in results:
        if as_json:
            click.echo(json.dumps(r))
        elif "error" in r:
            click.echo(f"{r['source']}: ERROR {r['error']}", err=True)
        else:
            probs = "  ".join(f"{m} {p:.3f}" for m, p in r["probabilities"].items())
            click.echo(f"{r['source']}: {r['top']} ({r['confidence']:.0%})  |  {probs}")
    if any("error" in r for r in results):
        sys.exit(1)
