"""`score_video`: every quality metric of one finished video, in one QualityReport.

Scoring is five named steps, each returning a small dataclass, that `score_video` times and assembles:
`read_video` (SampledVideo), `motion_metrics` (MotionMetrics), `load_clip_step` (ClipLoad),
`clip_metrics` (ClipMetrics) and `combine_step` (Combined).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from engine.quality.alignment import clip_scores, image_alignment, subject_consistency
from engine.quality.clip import DEFAULT_CLIP_MODEL, ClipUnavailable, LoadedClip, load_clip
from engine.quality.combine import combine_quality, missing_main_term
from engine.quality.motion import MotionMetrics, motion_metrics
from engine.quality.report import QualityReport
from engine.quality.video import CLIP_MAX_FRAMES, SampledVideo, read_video


def _metric_names(cls: type) -> tuple[str, ...]:
    """The metrics of a metrics dataclass, in order: its fields but `reasons`."""
    return tuple(f.name for f in fields(cls) if f.name != "reasons")


MOTION_KEYS = _metric_names(MotionMetrics)


@dataclass(frozen=True)
class ClipLoad:
    """CLIP loaded for scoring, or None and the reason every CLIP metric is null."""

    clip: LoadedClip | None
    reason: str | None = None


@dataclass(frozen=True)
class ClipMetrics:
    """The CLIP metrics of the sampled frames; a None metric has its reason in `reasons`."""

    clip_score: float | None = None
    clip_score_min: float | None = None
    image_alignment_mean: float | None = None
    image_alignment_first: float | None = None
    subject_consistency: float | None = None
    clip_frames_scored: int | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    @classmethod
    def unavailable(cls, reason: str) -> ClipMetrics:
        """Every CLIP metric null, for `reason`."""
        return cls(reasons={key: reason for key in CLIP_KEYS})


CLIP_KEYS = _metric_names(ClipMetrics)


@dataclass(frozen=True)
class Combined:
    """The combined score, its low-quality flag and its term breakdown (see combine_quality)."""

    quality_score: float | None
    low_quality: bool | None
    terms: dict[str, dict]
    reasons: dict[str, str] = field(default_factory=dict)


def _read_image(image_path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(image_path) as image:
        return np.asarray(image.convert("RGB"))


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - start


def score_video(
    video_path: Path,
    prompt: str | None,
    image_path: Path | None = None,
    *,
    clip_model: str = DEFAULT_CLIP_MODEL,
    device: str = "cpu",
    rating: int | None = None,
    low_quality_threshold: float = 0.6,
    clip_max_frames: int = CLIP_MAX_FRAMES,
) -> QualityReport:
    """Score `video_path` against its `prompt` and input image; see QualityReport for each metric.

    The motion and temporal metrics read every frame (at the working size) and always run (no weights
    needed). The CLIP metrics read up to `clip_max_frames` frames spread uniformly in time, the first and
    the last included (every frame of a shorter video); they need `clip_model` (a hub id or a local folder)
    and are None, with a reason, when it cannot be loaded, when there is no prompt (clip_score) or no input
    image (image_alignment). `rating` (1..5 stars) joins the combined score; below `low_quality_threshold`
    the video is flagged low quality.

    Raises VideoUnreadable when the video is missing or cannot be decoded, ValueError for a bad rating.
    """
    if rating is not None:
        combine_quality(None, None, rating)  # refuse a bad rating before the work
    timings: dict[str, float] = {}
    with _timed(timings, "read_video"):
        video = read_video(Path(video_path), max_frames=clip_max_frames)
    with _timed(timings, "motion"):
        motion = motion_metrics(video.grey, pixel_scale=video.pixel_scale)
    with _timed(timings, "clip_load"):
        loaded = load_clip_step(clip_model, device)
    if loaded.clip is None:
        clip = ClipMetrics.unavailable(loaded.reason)
    else:
        with _timed(timings, "clip_metrics"):
            clip = clip_metrics(loaded.clip, video.frames, prompt, image_path)
    combined = combine_step(clip.clip_score, motion.smoothness_std, rating, low_quality_threshold,
                            clip_reason=clip.reasons.get("clip_score"))
    return assemble_report(
        video, motion, clip, combined, timings,
        clip_model=clip_model, device=device, rating=rating, low_quality_threshold=low_quality_threshold,
    )


def load_clip_step(clip_model: str, device: str) -> ClipLoad:
    """CLIP on `device`, or the reason it cannot be loaded."""
    try:
        return ClipLoad(load_clip(clip_model, device))
    except ClipUnavailable as unavailable:
        return ClipLoad(None, unavailable.reason)


def clip_metrics(clip: LoadedClip, frames: np.ndarray, prompt: str | None, image_path: Path | None) -> ClipMetrics:
    """The CLIP metrics of RGB `frames` (T, h, w, 3) against `prompt` and the input image at `image_path`."""
    frame_embeds = clip.embed_images(list(frames))
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}

    if prompt and prompt.strip():
        scores = clip_scores(frame_embeds, clip.embed_text(prompt))
        values["clip_score"], values["clip_score_min"] = float(scores.mean()), float(scores.min())
    else:
        reasons["clip_score"] = reasons["clip_score_min"] = "no prompt given"

    if image_path is None:
        reasons["image_alignment_mean"] = reasons["image_alignment_first"] = "no input image given"
    else:
        try:
            image = _read_image(Path(image_path))
        except (OSError, ValueError) as error:
            reason = f"input image {image_path} could not be read: {error}"
            reasons["image_alignment_mean"] = reasons["image_alignment_first"] = reason
        else:
            image_embed = clip.embed_images([image])[0]
            values["image_alignment_mean"], values["image_alignment_first"] = image_alignment(frame_embeds, image_embed)

    if len(frame_embeds) >= 2:
        values["subject_consistency"] = subject_consistency(frame_embeds)
    else:
        reasons["subject_consistency"] = f"needs at least 2 frames, the video has {len(frame_embeds)}"
    return ClipMetrics(**values, clip_frames_scored=len(frame_embeds), reasons=reasons)


def combine_step(
    clip_score: float | None, smoothness_std: float | None, rating: int | None, low_quality_threshold: float,
    clip_reason: str | None = None,
) -> Combined:
    """The combined score of the parts present, flagged low quality below `low_quality_threshold`; null, with the
    reason, without its main term (CLIP: `clip_reason` says why it is missing)."""
    score, terms = combine_quality(clip_score, smoothness_std, rating)
    if score is None:
        return Combined(None, None, terms, {"quality_score": missing_main_term(terms, clip_reason),
                                            "low_quality": "no combined score to hold against the threshold"})
    return Combined(score, score < low_quality_threshold, terms)


def assemble_report(
    video: SampledVideo,
    motion: MotionMetrics,
    clip: ClipMetrics,
    combined: Combined,
    timings: dict[str, float],
    *,
    clip_model: str,
    device: str,
    rating: int | None,
    low_quality_threshold: float,
) -> QualityReport:
    """One QualityReport from the steps' results; reasons in step order (motion, CLIP, combined)."""
    report = QualityReport(
        **{key: getattr(motion, key) for key in MOTION_KEYS},
        **{key: getattr(clip, key) for key in CLIP_KEYS},
        quality_score=combined.quality_score,
        low_quality=combined.low_quality,
        reasons={**motion.reasons, **clip.reasons, **combined.reasons},
        terms=combined.terms,
        timings_s=timings,
    )
    report.meta.update(
        frame_count=video.frame_count,
        motion_frames_scored=len(video.grey),
        clip_frames_scored=clip.clip_frames_scored,
        clip_frame_indices=list(video.indices) if clip.clip_frames_scored is not None else None,
        width=video.width,
        height=video.height,
        fps=video.fps,
        clip_model=clip_model,
        device=device,
        low_quality_threshold=low_quality_threshold,
        rating=rating,
    )
    return report
