"""POST /api/jobs refuses what cannot run here (issue 22: a real model was queued on a host that could not run it,
and the user learnt it at model_load): no GPU worker for a full-size model, its weights missing with the hub
offline; `force` queues it anyway. No worker at all is only a warning: jobs wait for workers to start."""

from __future__ import annotations

import json
import os

import huggingface_hub.constants
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from data import live
from tests.api.synthetic_host import HOST, png_bytes

SVD = {"model": "svd", "prompt": "a cat walking", "height": 576, "width": 1024, "frames": 14, "steps": 25}


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    """No weights in the Hugging Face cache, and the hub offline (tests/conftest.py sets HF_HUB_OFFLINE)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def post(client, params: dict, **form) -> object:
    data = {"params": json.dumps(params), **{k: str(v) for k, v in form.items()}}
    return client.post("/api/jobs", files={"image": ("cat.png", png_bytes(), "image/png")}, data=data)


def announce(paths, gpu_index: int | None) -> None:
    """A worker of this host whose process runs (this test's)."""
    live.write_worker(paths, live.WorkerPresence(HOST, gpu_index, os.getpid(), f"{HOST}:{os.getpid()}:"
                                                 f"{'cpu' if gpu_index is None else f'cuda:{gpu_index}'}"))


def test_a_full_size_model_with_only_a_cpu_worker_is_refused_with_what_to_do(client, paths):
    announce(paths, None)
    r = post(client, SVD)
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert "no engine worker serves a GPU, and svd needs one" in detail and "python -m engine serve --gpu 0" in detail
    assert client.get("/api/jobs").json()["total"] == 0  # nothing queued
    forced = post(client, SVD, force="true")
    assert forced.status_code == 201 and "queued anyway" in forced.json()["preflight"]


def test_a_smoke_test_model_runs_on_a_cpu_worker(client, paths):
    announce(paths, None)
    assert post(client, {"model": "tiny", "prompt": "a cat"}).status_code == 201


def test_missing_weights_with_the_hub_offline_are_refused_until_they_are_in_models_dir(settings, paths, tmp_path,
                                                                                       monkeypatch):
    announce(paths, 0)
    with TestClient(create_app(settings)) as client:
        r = post(client, SVD)
    assert r.status_code == 409
    assert "the weights of svd are not on this machine" in r.json()["detail"] and "hf download" in r.json()["detail"]

    (tmp_path / "models" / "svd").mkdir(parents=True)
    monkeypatch.setenv("I2VMON_ENGINE__MODELS_DIR", str(tmp_path / "models"))
    from config import load_settings

    with TestClient(create_app(load_settings())) as client:
        assert post(client, SVD).status_code == 201


def test_with_no_worker_running_the_job_is_queued_with_a_warning(client, paths):
    (paths.workers_dir).mkdir(parents=True, exist_ok=True)
    live.write_worker(paths, live.WorkerPresence(HOST, None, 2**22 + 7, "a worker that died"))  # its pid is gone
    r = post(client, {"model": "tiny", "prompt": "a cat"})
    assert r.status_code == 201 and "no engine worker is running" in r.json()["preflight"]


def test_a_prediction_for_a_known_gpu_never_measured_says_its_source_and_expected_error(client):
    p = client.get("/api/predict", params={"model": "svd", "height": 576, "width": 1024, "frames": 14,
                                           "gpu_name": "NVIDIA L40S"}).json()
    assert p["seconds"] is not None and p["source"].endswith("by throughput class")
    assert 0 < p["expected_error"] < 1
