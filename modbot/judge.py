"""Judge stage: compare the stated medium with the model's predictions. Pure functions only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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
    flag_below: Callable[[str, Mapping[str, float]], float],
) -> Verdict:
    """Decide ``match``, ``mismatch``, ``uncertain`` or ``not_judged`` for one submission.

    - ``stated``: the canonical stated medium (``unknown`` if none).
    - ``predictions``: one per image (a gallery has several); combined with :func:`combine`.
    - ``flag_below(stated, model_thresholds) -> probability``: the threshold for the stated
      medium (``[judge]`` in the config, else the model's own fitted ``flag_thresholds``).

    A post is flagged when the stated medium is *improbable*, not merely when another medium
    ranks first — the model is often torn between two media, and a moderation bot must be
    quiet then. Rules, in order: no predictions → ``not_judged``; stated ``unknown`` →
    ``not_judged``; stated medium not among the model's labels (``ink``, ``mixed_media`` …) →
    ``not_judged``; probability of the stated medium below its threshold → ``mismatch``; the
    most probable medium is the stated one → ``match``; otherwise ``uncertain`` (another medium
    ranks first, but the stated one stays plausible).
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
    threshold = flag_below(stated, predictions[0].flag_thresholds)
    p_stated = probs[stated]
    if p_stated < threshold:
        return Verdict(VerdictKind.MISMATCH, stated, predicted, confidence,
                       f"looks like {predicted} ({confidence:.0%}); {stated} only {p_stated:.1%} "
                       f"< {threshold:.1%}")
    if predicted == stated:
        return Verdict(VerdictKind.MATCH, stated, predicted, confidence, "model agrees")
    return Verdict(VerdictKind.UNCERTAIN, stated, predicted, confidence,
                   f"{predicted} ranks first ({confidence:.0%}), but {stated} stays plausible "
                   f"({p_stated:.1%} >= {threshold:.1%})")
