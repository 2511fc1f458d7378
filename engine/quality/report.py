"""The result of scoring one video: `QualityReport`, its nested JSON and its flat run-record columns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields


@dataclass
class QualityReport:
    """Quality metrics of one video. A metric that could not be computed is None and `reasons` says why.

    Units and ranges:
    - clip_score, clip_score_min: CLIPScore, 100·max(cos(frame, prompt), 0), 0..100; mean and min over frames.
    - image_alignment_mean, image_alignment_first: cosine of CLIP image embeddings, input image vs frames
      (mean over frames, and the first frame), -1..1.
    - subject_consistency: VBench's rule on CLIP image embeddings, 0..1.
    - clip_frames_scored: how many frames the CLIP metrics above read (every frame of a short video, at most
      video.CLIP_MAX_FRAMES spread evenly from the first to the last of a long one); None when CLIP did not
      run. The motion and temporal metrics below read every frame.
    - smoothness_std, mean_flow: pixels of the video per frame step.
    - jerk: pixels per frame step², mean magnitude of the second difference of the mean flow vector.
    - dynamic_degree: fraction of frame pairs that move, 0..1.
    - flicker: brightness change beyond motion, 0..1 (a fraction of the full 0..255 range).
    - quality_score: 0..1; low_quality: quality_score below the threshold.

    `reasons` maps a flat key (see FLAT_KEYS) to why that metric is None; `terms` is the breakdown from
    `combine_quality`; `meta` and `timings_s` describe the run (frames scored, model, seconds per step) and
    are not part of `to_json()`.
    """

    clip_score: float | None = None
    clip_score_min: float | None = None
    image_alignment_mean: float | None = None
    image_alignment_first: float | None = None
    subject_consistency: float | None = None
    clip_frames_scored: int | None = None
    smoothness_std: float | None = None
    mean_flow: float | None = None
    jerk: float | None = None
    dynamic_degree: float | None = None
    flicker: float | None = None
    quality_score: float | None = None
    low_quality: bool | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    terms: dict[str, dict] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The nested JSON object of issue 6 (plain Python types, ready for `json.dumps`)."""
        return {
            "clip_score": self.clip_score,
            "clip_score_min": self.clip_score_min,
            "image_alignment": {"mean": self.image_alignment_mean, "first_frame": self.image_alignment_first},
            "subject_consistency": self.subject_consistency,
            "clip_frames_scored": self.clip_frames_scored,
            "motion": {
                "smoothness_std": self.smoothness_std,
                "mean_flow": self.mean_flow,
                "jerk": self.jerk,
                "dynamic_degree": self.dynamic_degree,
            },
            "temporal": {"flicker": self.flicker},
            "quality_score": self.quality_score,
            "low_quality": self.low_quality,
            "reasons": dict(self.reasons),
            "terms": {name: dict(term) for name, term in self.terms.items()},
        }

    def flat(self) -> dict:
        """One value per run-record column: FLAT_KEYS, then `quality_reasons` as a JSON string."""
        row = {key: getattr(self, key) for key in FLAT_KEYS}
        row["quality_reasons"] = json.dumps(self.reasons, sort_keys=True)
        return row


# The flat columns of a run record, in order (`QualityReport.flat()`): the report's metric fields;
# `quality_reasons` is added last.
FLAT_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(QualityReport) if f.name not in ("reasons", "terms", "meta", "timings_s")
)
