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

from modbot.cli.common import config_path
from modbot.cli.text import plain, printable
from modbot.config import load_config
from modbot.ml.evaluate import classify_sources, count_images, evaluate_tree


def _print_result(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result["n_images"] == 0:
        console.print("[bold]No images of the model's media were scored.[/bold]")
    else:
        console.print(f"[bold]{result['model_version']}[/bold] ({result.get('crops', 'centre')} crop): "
                      f"{result['n_images']} images, "
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
    _print_flags(result.get("flags"), console)
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


def _print_flags(flags: dict[str, Any] | None, console: Any) -> None:
    """The judge's figures on this tree: each image posted once with its true medium stated
    and once with each other medium."""
    if not flags or not flags["counts"]["correct"]:
        return

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    c = flags["counts"]
    console.print(f"Judge: false flags {pct(flags['false_flag_rate'])} of {c['correct']} correctly "
                  f"stated posts, catch rate {pct(flags['catch_rate'])} of {c['misstated']} "
                  f"mis-stated posts, uncertain {pct(flags['uncertain_rate'])}; thresholds "
                  + ", ".join(f"{m} {t:.3f}" for m, t in flags["thresholds"].items()))


def _load(model_dir: str | None, backend: str, crops: str | None = None) -> Any:
    """The served classifier of ``model_dir`` (default: the shipped model) with crop mode
    ``crops`` (default: the model's own); ``ModelError`` if it cannot be loaded."""
    from modbot.classify import load_classifier

    return load_classifier(model_dir, backend=backend, crops=crops)


_MODEL_OPTION = click.option("--model", "model_dir", type=click.Path(file_okay=False),
                             help="Model directory (default: the shipped model).")
_CROPS_OPTION = click.option("--crops", type=click.Choice(["centre", "tiles"]), default=None,
                             help="How the model sees each image: the centre square, or tiles along an "
                             "elongated image (default: the mode the model is served with, labels.json "
                             "\"crops\"). Each mode uses its own fitted calibration and judge thresholds.")
_BACKEND_OPTION = click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto",
                               show_default=True, help="auto: the checked LiteRT export when present, "
                               "else Keras (imports TensorFlow).")


@click.command("evaluate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@_MODEL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write the confusion matrix as a PNG.")
@_BACKEND_OPTION
@_CROPS_OPTION
def evaluate_cmd(data_dir: str, model_dir: str | None, as_json: bool, plot_path: str | None, backend: str,
                 crops: str | None) -> None:
    """Score a model on DATA_DIR, a folder-per-medium image tree (images at any depth).

    Prints accuracy, macro-F1, per-medium precision/recall/F1/support and the confusion
    matrix. Media folders the model does not know are reported (with what it predicted), not
    scored; unreadable images are listed and skipped. JSON keys: accuracy, macro_f1, per_class,
    confusion {labels, matrix}, n_images, ece, unknown_media, ignored_folders, unreadable,
    model_version, crops, flags {false_flag_rate, catch_rate, uncertain_rate, thresholds, counts}: every
    image posted once stating its true medium and once stating each other medium, judged under
    the configured ``[judge]`` (with the model's own fitted thresholds).

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

    classifier = _load(model_dir, backend, crops)
    total = count_images(data_dir)
    err = Console(stderr=True)
    with Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("classify", total=total)
        result = evaluate_tree(data_dir, classifier, progress=lambda n: bar.advance(task, n),
                               flag_below=load_config(config_path(click.get_current_context())).judge.threshold_for)
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
@_CROPS_OPTION
def classify_cmd(sources: tuple[str, ...], model_dir: str | None, as_json: bool, allow_hosts: tuple[str, ...],
                 backend: str, crops: str | None) -> None:
    """Print per-medium probabilities for each image file or http(s) URL in SOURCES.

    Exit status 1 when any source could not be read or fetched (the others are still printed).
    """
    classifier = _load(model_dir, backend, crops)
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
