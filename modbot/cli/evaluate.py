"""``modbot evaluate`` and ``modbot classify``: score a model on a labelled image tree, or
classify single images. The work is done by :mod:`modbot.ml.evaluate`; this module loads the
model, shows progress and renders the result.

Importing this module is cheap: TensorFlow (only needed for ``--backend keras``, or when a
model directory has no checked LiteRT export) and matplotlib (``--plot``) are imported inside
the commands.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from modbot.cli.text import plain, printable
from modbot.ml.evaluate import classify_sources, count_images, evaluate_tree


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
        predicted = ", ".join(f"{plain(k)} {v}" for k, v in info["predicted"].items())
        console.print(f"Medium [bold]{plain(medium)}[/bold] is unknown to the model: {info['n_images']} images "
                      f"not scored (predicted: {predicted or 'none'}).")
    if result["ignored_folders"]:
        console.print("Ignored folders (not canonical media): "
                      + ", ".join(plain(f) for f in result["ignored_folders"]))
    if result["unreadable"]:
        console.print(f"Unreadable images ({len(result['unreadable'])}), skipped:")
        for item in result["unreadable"][:20]:
            console.print(f"  {printable(item['path'])}: {printable(item['error'])}", markup=False)
        if len(result["unreadable"]) > 20:
            console.print(f"  … and {len(result['unreadable']) - 20} more")


def _load(model_dir: str | None, backend: str) -> Any:
    """The served classifier of ``model_dir`` (default: the shipped model); ``ModelError`` if
    it cannot be loaded."""
    from modbot.classify import load_classifier

    return load_classifier(model_dir, backend=backend)


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

    Exit status 1 (with a message) when no image could be scored: no folder of a medium the
    model knows, or no readable image in them.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    classifier = _load(model_dir, backend)
    total = count_images(data_dir)
    err = Console(stderr=True)
    with Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("classify", total=total)
        result = evaluate_tree(data_dir, classifier, progress=lambda n: bar.advance(task, n))
    if plot_path:
        from modbot.cli.plots import plot_confusion  # imports matplotlib

        try:
            plot_confusion(result, plot_path)
        except OSError as exc:
            raise click.ClickException(f"cannot write {plot_path}: {exc.strerror or exc}") from exc
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_result(result)
        if plot_path:
            click.echo(f"Confusion matrix written to {plot_path}")
    if result["n_images"] == 0:
        raise click.ClickException(
            f"nothing could be scored in {data_dir}: no readable image in a folder named after "
            f"one of the model's media ({', '.join(classifier.labels)})")


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
            click.echo(f"{printable(r['source'])}: ERROR {printable(r['error'])}", err=True)
        else:
            probs = "  ".join(f"{m} {p:.3f}" for m, p in r["probabilities"].items())
            click.echo(f"{printable(r['source'])}: {r['top']} ({r['confidence']:.0%})  |  {probs}")
    if any("error" in r for r in results):
        sys.exit(1)
