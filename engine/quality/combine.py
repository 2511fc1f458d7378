"""The combined quality score: CLIP, smoothness and the user's rating, each mapped to 0..1 and weighted.

Prompt alignment (CLIP) is its main term: without it the score would be a motion score under a quality score's
name (a smoke-test model's noise scored 0.9 on smoothness alone), so it is null then, with the reason, and the
motion terms stay readable on their own. The UI shows a user's star rating beside the automatic score (the one
the worker stores and the CSV exports) rather than folding it in; `rating` is for `python -m engine.quality`.

Pure Python on purpose: the Streamlit UI imports this module to recompute the score when a user rates a
video, so it must not pull in torch, cv2 or transformers.
"""

from __future__ import annotations

import math

# The seed design's weights.
CLIP_WEIGHT = 0.5
SMOOTHNESS_WEIGHT = 0.3
RATING_WEIGHT = 0.2

# CLIPScore (100·cos) of openai/clip-vit-base-patch32 sits near 15 for an image and an unrelated caption and
# near 35 for a close match; the CLIP term maps that range linearly onto 0..1. Another CLIP model has another
# range: change these two constants with the model.
CLIP_SCORE_FLOOR = 15.0
CLIP_SCORE_CEIL = 35.0

# smoothness_std is in pixels; the seed's term is 1 - smoothness_std / 10.
SMOOTHNESS_STD_SCALE = 10.0

RATING_MIN = 1
RATING_MAX = 5

MAIN_TERM = "clip"  # without it there is no combined score
_LABELS = {"clip": "CLIP", "smoothness": "smoothness", "rating": "rating"}


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def clip_term(clip_score: float) -> float:
    """CLIPScore mapped to 0..1: (clip_score - 15) / (35 - 15), clipped to 0..1."""
    return _clamp01((clip_score - CLIP_SCORE_FLOOR) / (CLIP_SCORE_CEIL - CLIP_SCORE_FLOOR))


def smoothness_term(smoothness_std: float) -> float:
    """The seed's smoothness term: 1 - smoothness_std / 10, clipped to 0..1 (0 px -> 1, 10 px or more -> 0)."""
    return _clamp01(1.0 - smoothness_std / SMOOTHNESS_STD_SCALE)


def rating_term(rating: int) -> float:
    """A 1..5 star rating mapped to 0..1: (rating - 1) / 4. Refuses anything but an integer from 1 to 5."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not RATING_MIN <= rating <= RATING_MAX:
        raise ValueError(f"rating {rating!r} is not an integer from {RATING_MIN} to {RATING_MAX} stars")
    return (rating - RATING_MIN) / (RATING_MAX - RATING_MIN)


def combine_quality(
    clip_score: float | None, smoothness_std: float | None, rating: int | None
) -> tuple[float | None, dict]:
    """The seed's combination 0.5·CLIP + 0.3·smoothness + 0.2·rating, over the terms that are present.

    Each term is first mapped to 0..1:

    - CLIP: `clip_score` is a CLIPScore (mean over frames of 100·max(cos, 0)); the term is
      (clip_score - 15) / (35 - 15) clipped to 0..1, the range in which openai/clip-vit-base-patch32 scores
      unrelated (≈15) to closely matching (≈35) image-caption pairs.
    - smoothness: `smoothness_std` is the standard deviation, in pixels, of the per-frame-pair mean Farneback
      flow magnitude; the term is 1 - smoothness_std / 10 clipped to 0..1 (the seed's).
    - rating: a 1..5 star rating; the term is (rating - 1) / 4, so 1 star -> 0 and 5 stars -> 1.

    A missing smoothness or rating (None, or NaN) drops its term, and the weights of the others are renormalised
    to sum to 1: with no rating the score is (0.5·CLIP + 0.3·smoothness) / 0.8. Without CLIP, the main term, the
    score is None (see `MAIN_TERM`); the other terms are still mapped in `terms`, with weight 0.0.

    Returns `(score, terms)`. `terms` has one entry per term, `clip`, `smoothness` and `rating`, each a dict
    with `value` (the input), `term` (mapped to 0..1, or None), `base_weight` (the seed's weight) and
    `weight` (the renormalised weight actually used, 0.0 for a missing term).
    """
    inputs = {
        "clip": (clip_score, CLIP_WEIGHT, clip_term),
        "smoothness": (smoothness_std, SMOOTHNESS_WEIGHT, smoothness_term),
        "rating": (rating, RATING_WEIGHT, rating_term),
    }
    mapped: dict[str, float | None] = {}
    for name, (value, _, mapping) in inputs.items():
        present = value is not None and not (isinstance(value, float) and math.isnan(value))
        mapped[name] = mapping(value) if present else None

    total_weight = sum(weight for name, (_, weight, _) in inputs.items() if mapped[name] is not None)
    if mapped[MAIN_TERM] is None:
        total_weight = 0.0
    terms: dict[str, dict] = {}
    score = 0.0
    for name, (value, base_weight, _) in inputs.items():
        weight = base_weight / total_weight if mapped[name] is not None and total_weight else 0.0
        if mapped[name] is not None:
            score += weight * mapped[name]
        shown = value if mapped[name] is not None else None  # a NaN input is shown as null
        terms[name] = {"value": shown, "term": mapped[name], "base_weight": base_weight, "weight": weight}
    return (score if total_weight > 0 else None), terms


def formula(terms: dict) -> str:
    """The combined score's arithmetic as it was done, for showing beside the number:
    '0.625·CLIP 0.50 + 0.375·smoothness 0.95'; the terms without weight are left out."""
    used = [(name, t) for name, t in terms.items() if t.get("weight")]
    return " + ".join(f"{t['weight']:.3g}·{_LABELS.get(name, name)} {t['term']:.2f}" for name, t in used)


def missing_main_term(terms: dict, why: str | None = None) -> str:
    """Why the combined score is null: its main term, prompt alignment, could not be computed (`why`); and what
    the motion says alone."""
    smooth = (terms.get("smoothness") or {}).get("term")
    motion = f"; motion only: smoothness term {smooth:.2f}" if smooth is not None else ""
    return f"no combined score: prompt alignment (CLIP) not computed ({why or 'no CLIP score'}){motion}"
