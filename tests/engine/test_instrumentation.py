"""engine.instrument: a pipeline's calls become run records in the store, with the engine's stages for a family
it knows and a best-effort record (total, steps by callback, peaks) for any other pipeline."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from data.schemas import EXTERNAL_SOURCE, FAILED, SUCCEEDED
from data.store import Store
from engine import instrument
from engine.instrumentation import InstrumentedPipeline, output_shape
from engine.pipelines.random_weights import build_random_pipeline


class OtherPipeline:
    """A pipeline of no family the engine knows, with diffusers' step-end callback convention."""

    def __init__(self) -> None:
        self.calls = 0
        self.device = "cpu"

    def to(self, device: str) -> "OtherPipeline":
        self.device = device
        return self

    def __call__(self, prompt: str, num_inference_steps: int = 3, height: int = 16, width: int = 24,
                 callback_on_step_end=None, fail_at: int | None = None):
        self.calls += 1
        for i in range(num_inference_steps):
            if i == fail_at:
                raise RuntimeError(f"boom at step {i}")
            if callback_on_step_end is not None:
                callback_on_step_end(self, i, 1000 - i, {"latents": None})
        return type("Output", (), {"frames": [[Image.new("RGB", (width, height))] * 5]})()


def stored(paths) -> list[dict]:
    return Store(paths).runs().to_pylist()


def test_a_family_pipeline_is_recorded_with_the_engines_stages_and_steps(paths):
    pipe = instrument(build_random_pipeline("tiny-svd"), data_dir=paths.root, label="notebook")
    frames = pipe(image=Image.new("RGB", (64, 64)), height=64, width=64, num_frames=4, num_inference_steps=3,
                  generator=torch.Generator().manual_seed(7), output_type="np").frames
    assert frames.shape[:2] == (1, 4)
    (run,) = stored(paths)
    assert run["source"] == EXTERNAL_SOURCE and run["source_label"] == "notebook"
    assert run["model"] == "tiny-svd" and run["smoke_test"] and run["state"] == SUCCEEDED
    assert (run["height"], run["width"], run["frames"], run["steps"], run["seed"]) == (64, 64, 4, 3, 7)
    assert len(run["step_times_s"]) == 3 and run["step_experts"] == ["unet"] * 3
    for stage in ("image_encoding", "prepare_latents", "denoising_loop", "decode_video"):
        assert run[f"stage_{stage}_s"] > 0, stage
    stages = sum(run[f"stage_{s}_s"] or 0 for s in ("image_encoding", "prepare_latents", "denoising_loop", "decode_video"))
    assert stages == pytest.approx(run["total_s"], rel=0.05)
    assert json.loads(run["params_json"])["pipeline_class"] == "StableVideoDiffusionPipeline"
    assert run["energy_j"] is None and run["peak_allocated_bytes"] is None  # no GPU here: nothing invented


def test_another_pipeline_is_recorded_best_effort_and_the_users_callback_still_runs(paths):
    seen = []

    def users_callback(pipe, step, timestep, kwargs):
        seen.append(step)
        return kwargs

    pipe = instrument(OtherPipeline(), data_dir=paths.root)
    pipe("a cat", num_inference_steps=4, callback_on_step_end=users_callback)
    assert seen == [0, 1, 2, 3]
    (run,) = stored(paths)
    assert run["model"] == "OtherPipeline" and run["state"] == SUCCEEDED
    assert run["steps"] == 4 and len(run["step_times_s"]) == 4 and run["total_s"] >= sum(run["step_times_s"])
    assert (run["frames"], run["height"], run["width"]) == (5, 16, 24)
    assert run["prompt"] == "a cat" and run["stage_denoising_loop_s"] is None


def test_a_call_that_raises_is_recorded_failed_and_the_error_goes_on(paths):
    pipe = instrument(OtherPipeline(), data_dir=paths.root)
    with pytest.raises(RuntimeError, match="boom at step 2"):
        pipe("a cat", fail_at=2)
    (run,) = stored(paths)
    assert run["state"] == FAILED and run["error_kind"] == "RuntimeError" and "boom" in run["error_message"]
    assert len(run["step_times_s"]) == 2 and run["failed_stage"] == "denoising_loop"


def test_the_wrapper_passes_attributes_through_and_refuses_a_second_wrap(paths):
    inner = OtherPipeline()
    pipe = instrument(inner, data_dir=paths.root)
    assert isinstance(pipe, InstrumentedPipeline) and pipe.pipeline is inner
    pipe("x")
    assert pipe.calls == 1 == inner.calls
    assert pipe.to("cpu") is pipe  # `pipe = pipe.to(device)` keeps the wrapper
    with pytest.raises(TypeError, match="instrumented already"):
        instrument(pipe, data_dir=paths.root)
    with pytest.raises(TypeError, match="cannot be called"):
        instrument(object(), data_dir=paths.root)


@pytest.mark.parametrize(("output_type", "shape", "expected"), [
    ("np", (1, 8, 32, 48, 3), (8, 32, 48)),
    ("pt", (1, 8, 3, 32, 48), (8, 32, 48)),
])
def test_output_shape_reads_frames_height_width_of_arrays(output_type, shape, expected):
    output = type("Output", (), {"frames": torch.zeros(shape)})()
    assert output_shape(output, output_type) == expected


def test_a_run_under_way_is_published_for_the_live_monitor_and_removed_when_it_ends(paths):
    from datetime import timedelta

    from data import live

    seen = []

    def users_callback(pipe, step, timestep, kwargs):
        seen.append([(p.label, p.stage, p.step, p.total_steps) for p in live.read_external_progress(paths, max_age=timedelta(minutes=1))])
        return kwargs

    pipe = instrument(OtherPipeline(), data_dir=paths.root, label="train.py")
    pipe("a cat", num_inference_steps=2, callback_on_step_end=users_callback)
    assert seen[0] == [("train.py", "denoising_loop", 1, 2)]
    assert live.read_external_progress(paths, max_age=timedelta(minutes=1)) == []
