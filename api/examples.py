"""An example answer (and request) of every route, for the OpenAPI document: /docs shows them, clients copy them.

Built from the registry's first smoke-test model and the state constants, so an example never names a model or
state that does not exist. tests/api/test_api_conventions.py checks that every operation has one.
"""

from __future__ import annotations

from typing import Any

from data.schemas import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from engine.registry import MODELS

_SPEC = next(spec for spec in MODELS.values() if spec.smoke_test)
_D = _SPEC.defaults
JOB_ID = "3f2a9c0e41d84b7f9a6c1e2d3b4a5f60"
AT = "2026-12-04T19:40:47.498170Z"

PARAMS: dict[str, Any] = {
    "model": _SPEC.id, "prompt": "a cat walking", "negative_prompt": "", "height": _D.height, "width": _D.width,
    "frames": _D.frames, "steps": _D.steps, "guidance": _D.guidance, "seed": 0, "fps": _D.fps,
    "decode_chunk_size": _D.decode_chunk_size, "offload": "none", "weights": None, "speed_trades": [],
}

JOB: dict[str, Any] = {
    "id": JOB_ID, "state": RUNNING, "model": _SPEC.id, "params": PARAMS, "priority": 0, "position": 1.0,
    "created_at": AT, "started_at": "2026-12-04T19:40:48.012000Z", "finished_at": None, "attempts": 1,
    "worker_id": "gpu0-1234", "gpu_index": 0, "stage": "denoising_loop", "step": 2, "total_steps": _D.steps,
    "eta_s": 1.5, "elapsed_s": 2.1, "progress_at": "2026-12-04T19:40:50.100000Z", "cancel_requested": False,
    "cancel_reason": None, "error_kind": None, "error_message": None, "timings": {"model_load": 0.41},
    "total_s": None, "step_times_s": [], "step_experts": [], "expert": None, "peak_host_rss_bytes": None,
    "predicted": {"peak_allocated_bytes": 1503238553, "seconds": 6.2}, "smoke_test": True, "video_url": None,
}

JOB_DETAIL = JOB | {"events": [{"at": AT, "state": QUEUED, "message": None},
                               {"at": "2026-12-04T19:40:48.012000Z", "state": RUNNING, "message": "claimed by gpu0-1234"}]}

PREDICTION: dict[str, Any] = {
    "model": _SPEC.id, "height": _D.height, "width": _D.width, "frames": _D.frames, "steps": _D.steps,
    "offload": "none", "gpu_name": "NVIDIA H100 80GB HBM3", "peak_allocated_gib": 1.4, "peak_reserved_gib": 1.6,
    "required_free_gib": 2.1, "seconds": 6.2, "s_per_step": 0.9, "time_source": "12 similar runs",
    "memory_source": "calibration", "confidence": {"level": "high"}, "notes": [],
}

EXAMPLES: dict[str, Any] = {
    "submit_job": {"job": JOB | {"state": QUEUED, "started_at": None, "stage": None, "step": 0, "eta_s": None,
                                 "elapsed_s": None, "worker_id": None, "gpu_index": None, "attempts": 0},
                   "preflight": "fits: 2.1 GiB needed, 74.3 GiB free on GPU 0", "prediction": PREDICTION},
    "list_jobs": {"jobs": [JOB], "counts": {QUEUED: 3, RUNNING: 1, SUCCEEDED: 40, FAILED: 2, CANCELLED: 1},
                  "total": 47, "next_cursor": "50"},
    "get_job": JOB_DETAIL,
    "cancel_job": {"job_id": JOB_ID, "state": RUNNING, "message": f"job {JOB_ID} stops at its next step"},
    "move_job": JOB | {"state": QUEUED, "priority": 5, "position": -1.0, "stage": None, "step": 0},
    "rate_job": {"ts": AT, "job_id": JOB_ID, "stars": 4, "note": "smooth motion, the tail flickers"},
    "job_events": (f'event: progress\nid: 1\ndata: {{"id": "{JOB_ID}", "state": "{RUNNING}", "stage": "denoising_loop", '
                   f'"step": 2, "total_steps": {_D.steps}, "eta_s": 1.5, …}}\n\n'
                   f'event: end\nid: 2\ndata: {{"id": "{JOB_ID}", "state": "{SUCCEEDED}", "video_url": '
                   f'"/api/jobs/{JOB_ID}/video", …}}\n\n'),
    "alert_events": ('event: alerts\nid: 1\ndata: {"active": [{"host": "gpu-host-1", "gpu_index": 0, "rule": '
                     '"gpu_memory_high", "level": "warning", "value": 91.0, "message": "GPU memory above 85%", '
                     '"since": "2026-12-04T19:40:47Z"}], "fired": ["gpu-host-1/0/gpu_memory_high"], "resolved": []}\n\n'),
    "latest": {"hosts": [{"hostname": "gpu-host-1", "ts": AT, "age_s": 0.7,
                          "host": {"cpu_percent": 12.5, "ram_used_bytes": 33285996544, "gpu_count": 1},
                          "gpus": [{"gpu_index": 0, "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_util_percent": 97.0,
                                    "memory_used_bytes": 21474836480, "temp_c": 61.0, "power_w": 512.3}],
                          "processes": [{"gpu_index": 0, "pid": 1234, "used_memory_bytes": 20401094656}]}]},
    "metrics": {"since": "2026-12-04T19:30:00Z", "until": "2026-12-04T19:40:00Z", "columns": ["ts", "gpu_index", "power_w"],
                "rows": [{"ts": "2026-12-04T19:30:00Z", "gpu_index": 0, "power_w": 498.2}], "truncated": False},
    "alerts": {"active": [{"host": "gpu-host-1", "gpu_index": 0, "rule": "gpu_memory_high", "level": "warning",
                           "state": "firing", "value": 91.0, "message": "GPU memory above 85%", "since": AT}],
               "events": []},
    "runs": {"runs": [{"job_id": JOB_ID, "model": _SPEC.id, "state": SUCCEEDED, "total_s": 6.4, "s_per_step": 0.91,
                       "height": _D.height, "width": _D.width, "frames": _D.frames, "steps": _D.steps,
                       "source": None, "rating": 4}], "count": 1},
    "predict": PREDICTION,
    "recommend": {"params": {"height": _D.height, "width": _D.width, "frames": _D.frames, "steps": _D.steps,
                             "decode_chunk_size": _D.decode_chunk_size, "offload": "none", "weights": None},
                  "fits": True, "reason": "the model's default settings fit", "prediction": PREDICTION,
                  "gpu_index": 0, "free_gib": 74.3},
    "health": {"status": "ok", "hostname": "gpu-host-1"},
    "prometheus": ('# HELP i2vmon_gpu_memory_used_bytes GPU memory in use\n# TYPE i2vmon_gpu_memory_used_bytes gauge\n'
                   'i2vmon_gpu_memory_used_bytes{hostname="gpu-host-1",gpu="0",uuid="GPU-8f…"} 2.1474836e+10\n'),
}


def example(name: str, media_type: str = "application/json", status: int = 200) -> dict[int | str, dict]:
    """The OpenAPI `responses` entry that shows EXAMPLES[name] as the route's answer."""
    return {status: {"content": {media_type: {"example": EXAMPLES[name]}}}}
