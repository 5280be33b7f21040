"""The generated ``MODEL_CARD.md`` of a model directory, from its metrics (``metrics.json``).

Pure text formatting: no TensorFlow, no numpy. The section templates below are data (long
f-strings), each filled by one small function.
"""

from __future__ import annotations

from typing import Any


def _report_md(rep: dict[str, Any] | None) -> str:
    """A classification report (:func:`modbot.ml.metrics.classification_report`) as Markdown:
    summary line, per-class table and confusion matrix."""
    if rep is None:
        return "_not measured_\n"
    labels = rep["confusion"]["labels"]
    lines = [
        f"n = {rep['n']}, accuracy **{rep['accuracy']:.4f}**, macro-F1 **{rep['macro_f1']:.4f}**",
        "",
        "| medium | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label in labels:
        c = rep["per_class"][label]
        lines.append(f"| {label} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
              "| true \\ predicted | " + " | ".join(labels) + " |",
              "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, rep["confusion"]["matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _kept_epoch(training: dict[str, Any]) -> str:
    if training.get("best_epoch") is None:
        return training.get("best_epoch_note", "Kept epoch: not recorded.")
    return f"Kept epoch {training['best_epoch']} (best validation macro-F1)."


def _quantize_of(record: dict[str, Any]) -> str:
    q = record.get("quantize") or ("float16" if record.get("float16_weights") else "float32")
    return {"int8": "int8 weights and activations", "float16": "float16 weights",
            "float32": "float32 weights"}.get(q, q)


def _count_rows(data: dict[str, Any], labels: list[str]) -> str:
    """Table rows: images per medium, total and skipped, for each split present."""
    return "\n".join(
        f"| {name} | " + " | ".join(str(d["counts"].get(m, 0)) for m in labels)
        + f" | {sum(d['counts'].values())} | {len(d.get('skipped') or [])} |"
        for name, d in (("train", data.get("train")), ("validation", data.get("val")), ("test", data.get("test")))
        if d is not None
    )


def _history_rows(history: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"| {h['epoch']} | {h.get('loss', '')} | {h.get('accuracy', '')} | "
        f"{h.get('val_accuracy', '')} | {h.get('val_macro_f1', '')} |"
        for h in history
    )


def _recipe(tr: dict[str, Any]) -> str:
    """One paragraph: how the model was built and which parts were trained."""
    arch = tr.get("arch", "cnn")
    if arch != "lite0":
        return f"{arch}, trained end to end ({tr.get('weights') or 'from scratch'})."
    return (f"EfficientNet-Lite0 ({tr.get('weights') or 'random'} weights); blocks 0–{tr['cache_block'] - 1} "
            f"frozen and cached for the clean image + {tr['aug_copies']} augmented copies; "
            + (f"blocks {tr['fine_tune_from']}–15 and the head conv fine-tuned"
               if tr.get("fine_tune_from") is not None else "backbone frozen")
            + f" ({tr['trainable_params']:,} trainable parameters); batch norms frozen."
            + (f" Residual blocks {', '.join(str(b) for b in tr['skip_blocks'])} left out."
               if tr.get("skip_blocks") else ""))


def _calibration_md(metrics: dict[str, Any]) -> str:
    cal = metrics.get("calibration") or {}
    if not cal:
        return ""
    rows = "\n".join(
        f"| {name} | {rep['ece_uncalibrated']:.4f} | {rep['ece_calibrated']:.4f} |"
        for name, rep in (("validation (fitted on)", metrics.get("validation")), ("test", metrics.get("test")))
        if rep and "ece_uncalibrated" in rep
    )
    return f"""
## Calibration

Temperature scaling, T = {cal['temperature']} fitted on the validation split (stored in
labels.json, applied by every classifier). Expected calibration error (15 bins, top-1):

| split | ECE before | ECE after |
|---|---|---|
{rows}
{_judge_md(metrics.get("judge"))}"""


def _judge_md(judge: dict[str, Any] | None) -> str:
    """The judge thresholds ``train_model`` fitted (``metrics["judge"]``), or nothing."""
    if not judge:
        return ""
    media = [k for k, v in judge.items() if k not in ("rule", "fit_budget", "fitted_on") and isinstance(v, float)]
    values = ", ".join(f"{m} {judge[m]:.4f}" for m in media)
    return f"""
Judge thresholds (labels.json `judge`; a post is flagged when the probability of its stated
medium is below its medium's value), fitted on the validation split to flag at most
{judge['fit_budget']:.1%} of its correctly stated images: {values}. On artists that are in
neither split expect more false flags than that (measured on real art: thresholds fitted to
2 % flagged 3.1 %, `bench/realart/judge_budget.py`).
"""


def _served_md(metrics: dict[str, Any]) -> str:
    if not metrics.get("test_served"):
        return ""
    return f"""
## Test (held out), through the LiteRT export (what `modbot evaluate` reports)

{_report_md(metrics['test_served'])}"""


def _export_md(lite: dict[str, Any] | None) -> str:
    if not lite:
        return ""
    return f"""
## LiteRT export

`model.tflite` ({lite['bytes'] / 1e6:.1f} MB, {_quantize_of(lite)}): on {lite['n_images']} validation
images max |p_LiteRT − p_Keras| = {lite['max_abs_diff']:.2e}, mean {lite.get('mean_abs_diff', float('nan')):.2e},
top-1 agreement {lite['argmax_agreement']:.4f}; check ({lite.get('criterion', 'max_abs_diff <= ' + str(lite.get('bound')))})
{'passed' if lite['passed'] else 'FAILED'}.
"""


def render_model_card(metrics: dict[str, Any], notes: str = "") -> str:
    """A Markdown model card from a metrics dict (as :func:`modbot.ml.training.train_model`
    returns and writes to ``metrics.json``).

    ``notes`` (Markdown) is inserted after the summary: data provenance, caveats, how the
    model was made. Raises ``KeyError`` when a required metrics field is missing.
    """
    tr = metrics["training"]
    labels = metrics["labels"]
    weights = ", ".join(f"{k} {v}" for k, v in tr["class_weight"].items())
    software = ", ".join(f"{k} {v}" for k, v in metrics["software"].items())
    return f"""# Model card: {metrics['version']}

Medium classifier for modbot. Labels (output order): {', '.join(labels)}.
Input {metrics['input_size'][0]}×{metrics['input_size'][1]} RGB; {tr['params']:,} parameters. {_recipe(tr)}
{notes}
## Data and split

{metrics['split']}

| split | {' | '.join(labels)} | total | unreadable (skipped) |
|---|{'---|' * (len(labels) + 2)}
{_count_rows(metrics['data'], labels)}

## Training

{tr['epochs']} epochs, batch {tr['batch_size']}, learning rate {tr['learning_rate']} ({tr['schedule']}),
class weights ({weights}), seed {tr['seed']}. {_kept_epoch(tr)}
Took {metrics['seconds'].get('total', '?')} s in all ({software}).

| epoch | loss | accuracy | val accuracy | val macro-F1 |
|---|---|---|---|---|
{_history_rows(tr['history'])}

## Validation

{_report_md(metrics['validation'])}
## Test (held out)

{_report_md(metrics['test'])}{_served_md(metrics)}{_calibration_md(metrics)}{_export_md(metrics.get('tflite'))}"""
