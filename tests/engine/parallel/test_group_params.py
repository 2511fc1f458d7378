"""What a job may ask of a group of GPUs, what each GPU of a group is predicted to need, and `gpus: auto`."""

from __future__ import annotations

import os

import pytest

from data import live
from data.paths import DataPaths
from engine.foresight import predict
from engine.intake.validation import InputError, check_params
from engine.parallel.launcher import parse_group
from engine.parallel.placement import gpus_for, largest_group
from engine.registry import get_model

WAN = {"model": "tiny-wan", "prompt": "a fox", "height": 32, "width": 32, "frames": 5, "steps": 2}


def test_a_job_asks_for_one_gpu_unless_it_says_otherwise():
    assert check_params(WAN).gpus == 1
    assert check_params({**WAN, "gpus": 2}).gpus == 2


def test_a_group_that_cannot_split_the_models_heads_evenly_is_refused_with_the_sizes_that_can():
    with pytest.raises(InputError, match="splits its 2 attention heads evenly.*one of 1, 2, not 3"):
        check_params({**WAN, "gpus": 3})


def test_a_model_without_sequence_parallelism_runs_on_one_gpu_only():
    with pytest.raises(InputError, match="tiny runs on one GPU only"):
        check_params({"model": "tiny", "prompt": "a cat", "gpus": 2})


def test_a_group_job_cannot_offload_its_weights():
    with pytest.raises(InputError, match="offload must be none"):
        check_params({**WAN, "gpus": 2, "offload": "model"})


@pytest.mark.parametrize("gpus", [0, 9, "two"])
def test_an_absurd_gpu_count_is_refused(gpus):
    with pytest.raises(InputError, match="gpus"):
        check_params({**WAN, "gpus": gpus})


def test_the_wan_14b_models_split_over_2_4_5_or_8_gpus():
    assert get_model("wan2.1-i2v-14b-720p").group_sizes(8) == (1, 2, 4, 5, 8)


def test_each_gpu_of_a_group_is_predicted_a_share_of_the_steps_and_the_note_says_it_is_not_measured():
    one = predict("wan2.2-i2v-a14b", 720, 1280, 81, gpu_name="NVIDIA H200")
    four = predict("wan2.2-i2v-a14b", 720, 1280, 81, gpu_name="NVIDIA H200", gpus=4)
    assert four.denoising_s < one.denoising_s / 3.5
    assert four.seconds < one.seconds
    assert "not measured" in four.time_source
    assert four.peak_reserved_gib <= one.peak_reserved_gib


def test_a_group_splits_the_denoisers_activations_where_they_are_the_peak():
    one = predict("wan2.2-ti2v-5b", 704, 1280, 121, gpu_name="NVIDIA H200")
    two = predict("wan2.2-ti2v-5b", 704, 1280, 121, gpu_name="NVIDIA H200", gpus=2)
    if one.peak_phase == "denoise":
        expected = one.weights_resident_gib + (one.peak_reserved_gib - one.weights_resident_gib) / 2
        assert two.peak_reserved_gib == pytest.approx(expected)
    else:
        assert two.peak_reserved_gib == one.peak_reserved_gib


def test_auto_gives_a_long_job_the_groups_gpus_and_a_short_one_a_single_gpu():
    spec = get_model("wan2.1-i2v-14b-720p")
    assert gpus_for(spec, 900.0, group=4, min_seconds=300) == 4
    assert gpus_for(spec, 60.0, group=4, min_seconds=300) == 1
    assert gpus_for(spec, 900.0, group=1, min_seconds=300) == 1
    assert gpus_for(get_model("i2vgen-xl"), 900.0, group=4, min_seconds=300) == 1  # no sequence parallelism


def test_the_largest_group_serving_the_host_comes_from_the_workers_presence(tmp_path):
    paths = DataPaths(tmp_path)
    assert largest_group(paths, "h") == 1
    live.write_worker(paths, live.WorkerPresence("h", 0, os.getpid(), "h:1:gpus[0,1]", 2))
    live.write_worker(paths, live.WorkerPresence("h", 2, os.getpid(), "h:2:cuda:2"))
    assert largest_group(paths, "h") == 2


def test_a_dead_groups_presence_does_not_count(tmp_path):
    paths = DataPaths(tmp_path)
    live.write_worker(paths, live.WorkerPresence("h", 0, 2**22 + 12345, "h:x:gpus[0,1]", 2))
    assert largest_group(paths, "h") == 1


@pytest.mark.parametrize("text, gpus", [("0,1", (0, 1)), ("2,3,4,5", (2, 3, 4, 5)), ("cpu:2", (None, None))])
def test_a_group_is_named_by_its_gpus(text, gpus):
    assert parse_group(text) == gpus


@pytest.mark.parametrize("text", ["0", "0,0", "a,b", "cpu:1", "-1,0"])
def test_a_group_of_fewer_than_two_distinct_gpus_is_refused(text):
    with pytest.raises(SystemExit, match="--group"):
        parse_group(text)


def test_auto_gives_a_job_the_serving_groups_gpus_when_it_is_long_on_one_gpu(data_dir):
    from config import load_settings
    from engine.parallel.placement import auto_gpus

    settings = load_settings()
    paths = DataPaths(data_dir)
    raw = {"model": "wan2.1-i2v-14b-720p", "prompt": "a fox", "gpus": "auto"}
    one = check_params({**raw, "gpus": 1})
    assert auto_gpus(settings, paths, raw, one, "NVIDIA H200").gpus == 1  # no group serves this host
    live.write_worker(paths, live.WorkerPresence(settings.hostname, 0, os.getpid(), "g", 4))
    assert auto_gpus(settings, paths, raw, one, "NVIDIA H200").gpus == 4  # ~16 min predicted on one H200


def test_auto_keeps_a_job_of_unknown_length_on_one_gpu(data_dir):
    from config import load_settings
    from engine.parallel.placement import auto_gpus

    settings = load_settings()
    paths = DataPaths(data_dir)
    live.write_worker(paths, live.WorkerPresence(settings.hostname, 0, os.getpid(), "g", 2))
    assert auto_gpus(settings, paths, {**WAN, "gpus": "auto"}, check_params(WAN), None).gpus == 1


def test_a_job_for_more_gpus_than_any_serving_group_is_refused_at_submit_with_what_to_do(data_dir):
    from config import load_settings
    from engine.intake.runnable import check_runnable

    settings = load_settings()
    paths = DataPaths(data_dir)
    live.write_worker(paths, live.WorkerPresence(settings.hostname, None, os.getpid(), "one-cpu-worker"))
    refused = check_runnable(settings, paths, "tiny-wan", None, gpus=2)
    assert "asks for 2 GPUs together" in refused.refusal and "--group 0,1" in refused.refusal
    live.write_worker(paths, live.WorkerPresence(settings.hostname, 0, os.getpid(), "group", 2))
    assert check_runnable(settings, paths, "tiny-wan", None, gpus=2).refusal is None
