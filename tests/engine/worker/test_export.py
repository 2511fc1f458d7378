"""The MP4 export: H.264 video, and an AAC soundtrack fitted to the video's length where the model made one."""

from __future__ import annotations

import copy

import av
import numpy as np
import pytest

from engine.worker.clock import StageClock
from engine.worker.export import Soundtrack, fit_soundtrack, write_mp4


def tone(seconds: float, rate: int, channels: int = 2) -> Soundtrack:
    t = np.arange(round(seconds * rate)) / rate
    return Soundtrack(np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * channels).astype(np.float32), rate)


@pytest.mark.parametrize("seconds", [0.9, 1.4])
def test_a_soundtrack_is_cut_or_padded_to_the_videos_length(seconds):
    fitted = fit_soundtrack(tone(seconds, 16000), frames=9, fps=8)

    assert fitted.samples.shape == (2, 18000) and fitted.duration_s == pytest.approx(9 / 8)


def test_samples_beyond_full_scale_are_clipped_and_nans_silenced():
    loud = Soundtrack(np.array([[2.0, -3.0, np.nan, 0.5]], dtype=np.float32), 4)

    assert fit_soundtrack(loud, frames=1, fps=1).samples.tolist() == [[1.0, -1.0, 0.0, 0.5]]


@pytest.mark.parametrize("fps, frames, rate, channels", [(24, 49, 24000, 2), (8, 9, 16000, 1)])
def test_the_mp4_carries_an_aac_stream_in_sync_with_the_frames(fps, frames, rate, channels, tmp_path):
    path = tmp_path / "video.mp4"
    write_mp4(path, np.random.default_rng(0).random((frames, 32, 48, 3)), fps, tone(frames / fps * 0.98, rate, channels))

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.sample_rate == rate and audio.channels == channels
        video_s, audio_s = float(video.duration * video.time_base), float(audio.duration * audio.time_base)
    assert video_s == pytest.approx(frames / fps)
    assert abs(audio_s - video_s) <= 1 / fps


def test_without_a_soundtrack_the_mp4_is_video_only(tmp_path):
    path = tmp_path / "video.mp4"
    write_mp4(path, np.zeros((4, 32, 32, 3)), 8)

    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["video"]


def test_a_deep_copy_of_a_timed_object_gets_its_own_plain_method():
    class Scheduler:
        def __init__(self):
            self.index = 0

        def step(self):
            self.index += 1

    scheduler, stepped = Scheduler(), []
    clock = StageClock()
    clock._wrap(scheduler, "step", lambda _s: None, lambda _s: stepped.append(1), "denoising_loop")
    twin = copy.deepcopy(scheduler)
    twin.step()
    scheduler.step()

    assert (scheduler.index, twin.index, len(stepped)) == (1, 1, 1)
