"""JobResult: what a worker leaves in Job.result. The stored JSON keeps its keys, and any old or odd row loads."""

from __future__ import annotations

import json

from engine.queue.models import JobResult

# The keys a worker has always written (engine/worker/worker.py), in that order: queue rows, the API and the CLI rely on
# them; then the ones the Wan family added (each step's expert, the job's host RAM); then the job's GPU energy and the
# step the watchdog found it stuck in; then LTX-2's soundtrack; then how speed mode went.
STORED_KEYS = ["stages", "step_times_s", "failed_stage", "video_path", "thumbnail_path", "smoke_test", "quality",
               "speed_mode", "peak_allocated_bytes", "peak_reserved_bytes", "peak_nvml_process_bytes", "total_s", "gpu_name",
               "step_experts", "peak_host_rss_bytes", "host_pinned_bytes", "energy_j", "energy_method", "energy_note",
               "energy_cost", "energy_currency", "failed_step", "has_audio", "audio_duration_s", "audio_scored",
               "compile_state", "speed_fallbacks"]

FULL = {
    "stages": {"model_load": 1.5, "denoising_loop": 12.25}, "step_times_s": [0.5, 0.52], "failed_stage": None,
    "video_path": "/d/jobs/a/video.mp4", "thumbnail_path": "/d/jobs/a/thumbnail.jpg", "smoke_test": False,
    "quality": {"overall": 0.8, "metrics": {"clip": 0.31}}, "speed_mode": "off", "peak_allocated_bytes": 2**30,
    "peak_reserved_bytes": 2**31, "peak_nvml_process_bytes": None, "total_s": 13.75, "gpu_name": "NVIDIA H100",
    "step_experts": ["transformer", "transformer_2"], "peak_host_rss_bytes": 3 * 2**30, "host_pinned_bytes": 0,
    "energy_j": 7200.0, "energy_method": "counter", "energy_note": None, "energy_cost": 0.0006, "energy_currency": "EUR",
    "failed_step": None,
    "has_audio": True, "audio_duration_s": 5.04, "audio_scored": False,
    "compile_state": "background", "speed_fallbacks": "int8attn: needs a CUDA GPU",
}


def test_a_workers_result_is_stored_as_the_same_json():
    result = JobResult(**FULL)
    assert list(result.to_stored()) == STORED_KEYS
    assert json.dumps(result.to_stored()) == json.dumps(FULL)
    assert JobResult.from_stored(json.loads(json.dumps(FULL))) == result


def test_an_old_row_missing_keys_loads_with_defaults():
    old = JobResult.from_stored({"stages": {"model_load": 1.0}, "failed_stage": "decode_video"})
    assert (old.stages, old.failed_stage, old.step_times_s, old.video_path, old.total_s) == (
        {"model_load": 1.0}, "decode_video", [], None, None)
    assert JobResult.from_stored({}) == JobResult.from_stored(None) == JobResult()


def test_unknown_keys_are_kept_and_values_of_the_wrong_type_dropped():
    row = {"stages": "garbage", "step_times_s": [1, None, 2.5], "total_s": "n/a", "smoke_test": True,
           "expert": "high_noise", "video_path": None}
    result = JobResult.from_stored(row)
    assert (result.stages, result.step_times_s, result.total_s, result.smoke_test) == ({}, [1.0, None, 2.5], None, True)
    assert result.to_stored()["expert"] == "high_noise"  # a newer worker's key survives
    assert JobResult.from_stored({"stages": None, "step_times_s": None}).stages == {}
    assert JobResult.from_stored(["not", "a", "dict"]) == JobResult()
