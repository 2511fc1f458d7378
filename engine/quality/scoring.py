"""`score_video`: every quality metric of one finished video, in one QualityReport."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engine.quality import alignment
from engine.quality.clip import DEFAULT_CLIP_MODEL, ClipUnavailable, load_clip
from engine.quality.combine import combine_quality
from engine.quality.motion import motion_metrics
from engine.quality.report import QualityReport
from engine.quality.video import read_video

CLIP_KEYS = ("clip_score", "clip_score_min", "image_alignment_mean", "image_alignment_first", "subject_consistency")


def _read_image(image_path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(image_path) as image:
        return np.asarray(image.convert("RGB"))


def score_video(
    video_path: Path,
    prompt: str | None,
    image_path: Path | None = None,
    *,
    clip_model: str = DEFAULT_CLIP_MODEL,
    device: str = "cpu",
    rating: int | None = None,
    low_quality_threshold: float = 0.6,
    max_frames: int = 16,
) -> QualityReport:
    """Score `video_path` against its `prompt` and input image; see QualityReport for each metric.

    Up to `max_frames` frames spread uniformly in time are scored. The motion and temporal metrics always
    run (no weights needed); the CLIP metrics need `clip_model` (a hub id or a local folder) and are None,
    with a reason, when it cannot be loaded, when there is no prompt (clip_score) or no input image
    (image_alignment). `rating` (1..5 stars) joins the combined score; below `low_quality_threshold` the
    video is flagged low quality.

    Raises VideoUnreadable when the video is missing or cannot be decoded, ValueError for a bad rating.
    """
    report = QualityReport()
    timings = report.timings_s
    if rating is not None:
        combine_quality(None, None, rating)  # refuse a bad rating before the work

    # 1. read_video
    start = time.perf_counter()
    video = read_video(Path(video_path), max_frames=max_frames)
    timings["read_video"] = time.perf_counter() - start
    report.meta.update(
        frames_scored=len(video.indices),
        frame_count=video.frame_count,
        width=video.width,
        height=video.height,
        fps=video.fps,
        clip_model=clip_model,
        device=device,
    )

    # 2. motion (motion and temporal metrics)
    start = time.perf_counter()
    motion = motion_metrics(video.frames, pixel_scale=video.pixel_scale)
    for key in ("smoothness_std", "mean_flow", "jerk", "dynamic_degree", "flicker"):
        setattr(report, key, getattr(motion, key))
    report.reasons.update(motion.reasons)
    timings["motion"] = time.perf_counter() - start

    # 3. clip_load
    start = time.perf_counter()
    try:
        clip = load_clip(clip_model, device)
    except ClipUnavailable as unavailable:
        clip = None
        report.reasons.update({key: unavailable.reason for key in CLIP_KEYS})
    timings["clip_load"] = time.perf_counter() - start

    # 4. clip_metrics
    if clip is not None:
        start = time.perf_counter()
        _clip_metrics(report, clip, video.frames, prompt, image_path)
        timings["clip_metrics"] = time.perf_counter() - start

    # 5. combine
    report.quality_score, report.terms = combine_quality(report.clip_score, report.smoothness_std, rating)
    if report.quality_score is None:
        report.reasons["quality_score"] = "no term to combine: clip_score, smoothness_std and rating are all null"
    else:
        report.low_quality = report.quality_score < low_quality_threshold
    report.meta["low_quality_threshold"] = low_quality_threshold
    report.meta["rating"] = rating
    return report


def _clip_metrics(report: QualityReport, clip, frames: np.ndarray, prompt: str | None, image_path: Path | None) -> None:
    frame_embeds = clip.embed_images(list(frames))

    if prompt and prompt.strip():
        scores = alignment.clip_scores(frame_embeds, clip.embed_text(prompt))
        report.clip_score, report.clip_score_min = float(scores.mean()), float(scores.min())
    else:
        report.reasons["clip_score"] = report.reasons["clip_score_min"] = "no prompt given"

    if image_path is None:
        report.reasons["image_alignment_mean"] = report.reasons["image_alignment_first"] = "no input image given"
    else:
        try:
            image = _read_image(Path(image_path))
        except (OSError, ValueError) as error:
            reason = f"input image {image_path} could not be read: {error}"
            report.reasons["image_alignment_mean"] = report.reasons["image_alignment_first"] = reason
        else:
            image_embed = clip.embed_images([image])[0]
            mean, first = alignment.image_alignment(frame_embeds, image_embed)
            report.image_alignment_mean, report.image_alignment_first = mean, first

    if len(frame_embeds) >= 2:
        report.subject_consistency = alignment.subject_consistency(frame_embeds)
    else:
        report.reasons["subject_consistency"] = f"needs at least 2 frames, the video has {len(frame_embeds)}"
