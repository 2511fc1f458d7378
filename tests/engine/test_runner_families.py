"""Every pipeline family runs through the engine's runner with its stages timed (tiny models, in-process)."""

from __future__ import annotations

import pytest

from config import load_settings
from engine.pipelines.clock import StageClock
from engine.queue.models import Job
from engine.runner import PipelineCache, run_job
from engine.validation import check_params


@pytest.mark.parametrize("model, encoders", [
    ("tiny-svd", {"image_encoding"}),
    ("tiny-ltx", {"text_encoding", "image_encoding"}),
])
def test_each_family_runs_with_every_stage_timed(model, encoders, data_dir, png_file, tmp_path):
    settings = load_settings(quality={"enabled": False})
    params = check_params({"model": model, "prompt": "a boat drifting", "steps": 2})
    job = Job(id="0" * 32, state="running", params=params, input_image=str(png_file))
    clock = StageClock()
    output = run_job(job, cache=PipelineCache(settings, "cpu", None), clock=clock, job_dir=tmp_path, settings=settings)
    assert encoders <= set(clock.stages)
    assert {"model_load", "image_preprocess", "prepare_latents", "denoising_loop", "decode_video", "export_video"} <= set(clock.stages)
    assert len(clock.step_times) == 2
    assert output.smoke_test and output.video_path.stat().st_size > 0
