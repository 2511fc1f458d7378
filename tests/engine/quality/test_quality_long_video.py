"""Long (Wan-length) videos: the CLIP metrics read at most CLIP_MAX_FRAMES frames, the motion metrics every
frame, and the run record says how many frames CLIP read. Short videos keep every frame for both."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from data.schemas import RunRecord
from engine.quality import clip as clip_module, score_video
from engine.quality.video import CLIP_MAX_FRAMES
from tests.engine.quality.conftest import FRAMES, LONG_FRAMES, LONG_PAN_PX


@pytest.fixture
def frames_embedded(monkeypatch) -> list[int]:
    """How many images each call of LoadedClip.embed_images received, in order (the frames come first)."""
    counts: list[int] = []
    real = clip_module.LoadedClip.embed_images

    def counting(self, images):
        counts.append(len(images))
        return real(self, images)

    monkeypatch.setattr(clip_module.LoadedClip, "embed_images", counting)
    return counts


def run_record(report) -> RunRecord:
    """A run record with the report's flat columns merged in, as engine.worker.run_record does."""
    now = datetime.now(timezone.utc)
    record = RunRecord(job_id="j", host="h", model="m", state="succeeded", created_at=now, finished_at=now)
    return dataclasses.replace(record, **report.flat())


def test_a_long_video_has_at_most_clip_max_frames_read_by_clip_and_the_record_says_so(
    long_video, tiny_clip_dir, frames_embedded
):
    report = score_video(long_video, "lower", clip_model=str(tiny_clip_dir))
    assert LONG_FRAMES > CLIP_MAX_FRAMES
    assert frames_embedded == [CLIP_MAX_FRAMES]
    assert report.clip_frames_scored == CLIP_MAX_FRAMES
    assert run_record(report).clip_frames_scored == CLIP_MAX_FRAMES
    indices = report.meta["clip_frame_indices"]
    assert len(indices) == CLIP_MAX_FRAMES and indices[0] == 0 and indices[-1] == LONG_FRAMES - 1
    assert max(b - a for a, b in zip(indices, indices[1:])) <= -(-(LONG_FRAMES - 1) // (CLIP_MAX_FRAMES - 1))


def test_the_motion_metrics_of_a_long_video_read_every_frame(long_video):
    report = score_video(long_video, None, clip_model="/nonexistent/clip")
    assert report.meta["motion_frames_scored"] == report.meta["frame_count"] == LONG_FRAMES
    assert report.mean_flow == pytest.approx(LONG_PAN_PX, rel=0.15)  # per frame, not per sampled step


def test_a_short_video_has_every_frame_read_by_clip(videos, tiny_clip_dir, frames_embedded):
    report = score_video(videos.steady_pan, "lower", clip_model=str(tiny_clip_dir))
    assert frames_embedded == [FRAMES]
    assert report.clip_frames_scored == FRAMES and report.meta["clip_frame_indices"] == list(range(FRAMES))
    assert report.meta["motion_frames_scored"] == FRAMES


def test_without_clip_the_frame_count_is_null_with_the_clip_reason(videos):
    report = score_video(videos.steady_pan, "a pan", clip_model="/nonexistent/clip")
    assert report.clip_frames_scored is None and run_record(report).clip_frames_scored is None
    assert report.reasons["clip_frames_scored"] == report.reasons["clip_score"]


def test_every_flat_key_is_a_run_record_column(videos):
    report = score_video(videos.steady_pan, "a pan", clip_model="/nonexistent/clip")
    columns = {f.name for f in dataclasses.fields(RunRecord)}
    assert set(report.flat()) <= columns, set(report.flat()) - columns
