"""Which workers `python -m app` starts: one per GPU by default, the GPUs `--gpus` names otherwise."""

from __future__ import annotations

import pytest

from app.__main__ import parse_gpus, parse_group, plan


def _workers(children) -> dict[str, list[str]]:
    return {c.name: c.argv[-3:] for c in children if c.name.startswith("engine")}


def test_every_gpu_gets_a_worker_with_its_own_index():
    assert _workers(plan(8501, 8000, parse_gpus(None, 2))) == {
        "engine-gpu0": ["serve", "--gpu", "0"], "engine-gpu1": ["serve", "--gpu", "1"]}


def test_no_gpu_means_one_cpu_worker():
    assert list(_workers(plan(8501, 8000, parse_gpus(None, 0)))) == ["engine-cpu"]


def test_gpus_option_picks_a_subset_in_order():
    assert parse_gpus("3, 1", 4) == [1, 3]
    assert list(_workers(plan(8501, 8000, [1, 3]))) == ["engine-gpu1", "engine-gpu3"]


def test_gpus_option_naming_a_missing_gpu_says_what_exists():
    with pytest.raises(SystemExit, match="this machine has GPUs 0-1"):
        parse_gpus("0,2", 2)


def test_gpus_option_that_is_not_a_list_of_numbers_says_how_to_write_it():
    with pytest.raises(SystemExit, match="e.g. --gpus 0,1"):
        parse_gpus("all", 2)


def test_collector_api_and_ui_start_once_whatever_the_gpu_count():
    names = [c.name for c in plan(8501, 8000, [0, 1, 2, 3])]
    assert names.count("collector") == names.count("api") == names.count("ui") == 1


def test_a_group_of_gpus_gets_one_group_worker_and_the_other_gpus_one_worker_each():
    workers = _workers(plan(8501, 8000, [0, 1, 2], parse_group("0,1", [0, 1, 2])))
    assert workers == {"engine-group0-1": ["serve", "--group", "0,1"], "engine-gpu2": ["serve", "--gpu", "2"]}


def test_a_group_must_be_two_of_the_workers_gpus():
    with pytest.raises(SystemExit, match="two or more of the GPUs"):
        parse_group("1", [0, 1])
    with pytest.raises(SystemExit):
        parse_group("0,3", [0, 1])
