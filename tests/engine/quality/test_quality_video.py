"""Reading videos: frames sampled uniformly, shrunk to the working size, a clear error for a bad file."""

from __future__ import annotations

import pytest

from engine.quality import VideoUnreadable, score_video
from engine.quality.video import WORKING_SHORT_SIDE, read_video, sample_indices, working_size


def test_a_missing_video_raises_video_unreadable_naming_the_path(tmp_path):
    with pytest.raises(VideoUnreadable, match="does not exist"):
        score_video(tmp_path / "missing.mp4", "a cat")


def test_a_corrupt_video_raises_video_unreadable(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(VideoUnreadable, match="could not be decoded|no decodable frame"):
        score_video(corrupt, "a cat")


def test_video_unreadable_is_a_value_error():
    assert issubclass(VideoUnreadable, ValueError)


def test_up_to_max_frames_are_sampled_uniformly_from_first_to_last():
    assert sample_indices(10, 16) == tuple(range(10))
    assert sample_indices(31, 16) == tuple(range(0, 31, 2))
    assert sample_indices(100, 4) == (0, 33, 66, 99)


def test_frames_are_shrunk_to_the_working_short_side_keeping_the_aspect():
    assert working_size(1024, 576) == (455, WORKING_SHORT_SIDE)
    assert working_size(128, 96) == (128, 96)  # never upscaled


def test_read_video_keeps_max_frames_and_the_video_size(videos):
    video = read_video(videos.steady_pan, max_frames=5)
    assert video.frame_count == 16 and video.indices == (0, 4, 8, 11, 15)
    assert video.frames.shape == (5, 256, 256, 3)
    assert (video.width, video.height, video.pixel_scale) == (256, 256, 1.0)


def test_flow_is_reported_in_pixels_of_the_video_not_of_the_working_size(make_pan_video):
    report = score_video(make_pan_video(size=512, pan_px=16), None, clip_model="/nonexistent/clip")
    assert report.meta["width"] == 512
    assert report.mean_flow == pytest.approx(16, rel=0.15)
    assert report.dynamic_degree == 1.0  # 16 px at 512 px is 8 px at 256 px, above VBench's 6 px


def test_a_single_frame_video_is_scored_with_motion_metrics_null_and_explained(make_pan_video):
    report = score_video(make_pan_video(frames=1), None, clip_model="/nonexistent/clip")
    assert report.mean_flow is None and report.reasons["mean_flow"].startswith("needs at least 2 frames")
    assert report.quality_score is None and report.low_quality is None
    assert "quality_score" in report.reasons
