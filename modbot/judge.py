"""Judge stage: compare the stated medium with the model's predictions. Pure functions only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from modbot.domain import UNKNOWN, Prediction, Verdict, VerdictKind


def combine(predictions: Sequence[Prediction]) -> dict[str, float]:
    """Mean of the images' probability vectors: ``{medium: probability}``, summing to 1.

    This is how a gallery is judged: every valid image counts equally, so a single odd image
    (a process photo, a close-up) moves the result by 1/N of its weight and cannot decide alone.
    Raises ``ValueError`` on an empty sequence or predictions over different label sets.
    """
    if not predictions:
        raise ValueError("no predictions to combine")
    labels = list(predictions[0].probabilities)
    for p in predictions[1:]:
        if set(p.probabilities) != set(labels):
            raise ValueError("predictions come from models with different labels")
    n = len(predictions)
    return {m: sum(float(p.probabilities[m]) for p in predictions) / n for m in labels}


def judge(
    stated: str,
    predictions: Sequence[Prediction],
    *,
    threshold_for: Callable[[str], float],
) -> Verdict:
    """Decide ``match``, ``mismatch``, ``uncertain`` or ``not_judged`` for one submission.

    - ``stated``: the canonical stated medium (``unknown`` if none).
    - ``predictions``: one per image (a gallery has several); combined with :func:`combine`.
    - ``threshold_for(medium) -> probability``: the confidence the predicted medium needs.

    Rules, in order: no predictions → ``not_judged``; stated ``unknown`` → ``not_judged``; stated
    medium not among the model's labels (e.g. ``ink`` for a model without an ink class) →
    ``not_judged``; top combined probability below the predicted medium's threshold →
    ``uncertain``; top medium equals stated → ``match``; otherwise ``mismatch``.
    """
    if not predictions:
        return Verdict(VerdictKind.NOT_JUDGED, stated, None, None, "no image could be classified")
    probs = combine(predictions)
    predicted = max(probs, key=probs.__getitem__)
    confidence = probs[predicted]
    if stated == UNKNOWN:
        return Verdict(VerdictKind.NOT_JUDGED, stated, predicted, confidence, "no medium stated")
    if stated not in probs:
        return Verdict(VerdictKind.NOT_JUDGED, stated, predicted, confidence,
                       f"stated medium {stated!r} is not a class of the model")
    threshold = threshold_for(predicted)
    if confidence < threshold:
        return Verdict(VerdictKind.UNCERTAIN, stated, predicted, confidence,
                       f"top probability {confidence:.2f} < threshold {threshold:.2f} for {predicted}")
    if predicted == stated:
        return Verdict(VerdictKind.MATCH, stated, predicted, confidence, "model agrees")
    return Verdict(VerdictKind.MISMATCH, stated, predicted, confidence,
                   f"looks like {predicted} ({confidence:.0%}), stated {stated}")
