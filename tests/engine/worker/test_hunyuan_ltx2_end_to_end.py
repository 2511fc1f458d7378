"""HunyuanVideo 1.5 and LTX-2 end to end on CPU: `python -m engine submit --wait` through a real worker process;
LTX-2's MP4 carries its soundtrack (read back with PyAV) and the run record says so."""

from __future__ import annotations

import json
import subprocess
import sys

import av

from data.paths import DataPaths
from data.store import Store
from tests.conftest import ROOT, start, subprocess_env
from tests.engine.worker.test_worker_process import _stop


def submit_and_wait(data_dir, png_file, tmp_path, *args):
    worker = start(["engine", "serve"], data_dir, tmp_path / "worker.log")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "engine", "submit", "--image", str(png_file), "--prompt", "waves on a beach",
             "--steps", "2", "--wait", "--json", *args],
            cwd=ROOT, env=subprocess_env(data_dir), capture_output=True, text=True, timeout=300,
        )
    finally:
        _stop(worker)
    assert out.returncode == 0, out.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    record = json.loads(out.stdout)
    run = next(r for r in Store(DataPaths(data_dir)).runs().to_pylist() if r["job_id"] == record["id"])
    return record, run


def test_a_tiny_ltx2_job_through_a_worker_has_a_soundtrack_as_long_as_its_video(data_dir, png_file, tmp_path):
    record, run = submit_and_wait(data_dir, png_file, tmp_path, "--model", "tiny-ltx2", "--frames", "9", "--fps", "8")

    assert record["state"] == "succeeded" and record["has_audio"] is True
    with av.open(record["output_path"]) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        video_s, audio_s = float(video.duration * video.time_base), float(audio.duration * audio.time_base)
    assert audio.codec_context.name == "aac"
    assert abs(audio_s - video_s) <= 1 / 8  # within one frame of the video
    assert run["has_audio"] is True and run["audio_scored"] is False
    assert abs(run["audio_duration_s"] - video_s) <= 1 / 8


def test_a_tiny_hunyuan15_job_through_a_worker_makes_a_silent_video_of_its_size(data_dir, png_file, tmp_path):
    record, run = submit_and_wait(data_dir, png_file, tmp_path, "--model", "tiny-hunyuan15", "--height", "48",
                                  "--width", "80", "--frames", "9")

    assert record["state"] == "succeeded" and not record["has_audio"]
    with av.open(record["output_path"]) as container:
        assert [s.type for s in container.streams] == ["video"]
        assert (container.streams.video[0].height, container.streams.video[0].width) == (48, 80)
    assert run["has_audio"] is False and run["audio_scored"] is None
    assert len(run["step_times_s"]) == 2
