"""`python -m engine submit` refuses what cannot run here, saying why and what to do; --force queues it anyway."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import huggingface_hub.constants
import pytest

from config import load_settings
from data import live
from data.paths import data_paths
from data.schemas import GpuSample, HostSample
from engine.cli import main
from engine.intake.runnable import check_runnable

SVD_ARGS = ["--model", "svd", "--height", "576", "--width", "1024", "--frames", "14", "--steps", "25"]


@pytest.fixture(autouse=True)
def hub_offline_without_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def announce(settings, gpu_index: int | None) -> None:
    live.write_worker(data_paths(settings), live.WorkerPresence(settings.hostname, gpu_index, os.getpid(), "w"))


def test_submit_refuses_a_full_size_model_when_only_cpu_workers_serve(data_dir, png_file, capsys):
    settings = load_settings()
    announce(settings, None)
    assert main(["submit", "--image", str(png_file), "--prompt", "a cat", *SVD_ARGS]) == 2
    err = capsys.readouterr().err
    assert "cannot run here: no engine worker serves a GPU, and svd needs one" in err and "--force" in err
    assert main(["submit", "--image", str(png_file), "--prompt", "a cat", *SVD_ARGS, "--force"]) == 0
    assert "queued anyway (--force)" in capsys.readouterr().out


def test_submit_refuses_a_model_whose_weights_are_missing_with_the_hub_offline(data_dir, png_file, capsys):
    announce(load_settings(), 0)
    assert main(["submit", "--image", str(png_file), "--prompt", "a cat", *SVD_ARGS]) == 2
    err = capsys.readouterr().err
    assert "the weights of svd are not on this machine" in err and "I2VMON_ENGINE__MODELS_DIR" in err


def test_workers_building_random_weights_need_none_on_disk(data_dir, monkeypatch):
    monkeypatch.setenv("I2VMON_ENGINE__RANDOM_WEIGHTS", "1")
    settings = load_settings()
    announce(settings, 0)
    assert check_runnable(settings, data_paths(settings), "svd", None).refusal is None


def test_a_job_larger_than_every_served_gpu_is_refused(data_dir):
    # pre-flight refuses it first where it reads free memory; this holds where it could not (no reading of it)
    settings = load_settings()
    announce(settings, 0)
    now = datetime.now(timezone.utc)
    total = 24 * 2**30
    live.write_snapshot(data_paths(settings), live.LiveSnapshot(
        host=HostSample(ts=now, host=settings.hostname, cpu_percent=1.0, load_1=0.1, ram_used_bytes=2**30,
                        ram_total_bytes=64 * 2**30, disk_free_bytes=100 * 2**30, gpu_count=1),
        gpus=[GpuSample(ts=now, host=settings.hostname, gpu_index=0, gpu_uuid="GPU-0", gpu_name="NVIDIA L4",
                        memory_used_bytes=0, memory_free_bytes=total, memory_total_bytes=total)],
        processes=[]))
    verdict = check_runnable(settings, data_paths(settings), "tiny", 40 * 2**30)
    assert verdict.refusal is not None and "predicted to need 40.0 GiB" in verdict.refusal
    assert "start a worker on a larger GPU" in verdict.refusal
    assert check_runnable(settings, data_paths(settings), "tiny", 8 * 2**30).refusal is None


def test_the_stages_a_prediction_leaves_out_come_from_the_models_history_for_the_eta():
    from engine.intake.submission import stage_history

    history = [{"model_load_s": 30.0, "export_s": 0.5, "scoring_s": s} for s in (2.0, 3.0, 40.0)]
    history.append({"model_load_s": None, "export_s": None, "scoring_s": None})  # a run that timed none of them
    assert stage_history(history) == {"model_load": 30.0, "export_video": 0.5, "quality_scoring": 3.0}
    assert stage_history([]) == {}
