"""A worker says in its presence file which model it keeps loaded between jobs, and in which memory mode."""

from __future__ import annotations

from types import SimpleNamespace

from data import live
from data.paths import DataPaths
from engine.worker.worker import Worker


def announce(paths, presence, key):
    worker = SimpleNamespace(presence=presence, cache=SimpleNamespace(key=key), paths=paths)
    Worker.announce_loaded(worker)
    return worker.presence


def test_the_presence_names_the_loaded_model_and_its_memory_mode_and_clears_when_dropped(tmp_path):
    paths = DataPaths(tmp_path)
    presence = live.WorkerPresence("h", 0, 123, "w1")
    live.write_worker(paths, presence)

    presence = announce(paths, presence, ("ltx-2-i2v", "group", "fp8"))
    (stored,) = live.read_workers(paths, "h")
    assert (stored.loaded_model, stored.loaded_memory_mode) == ("ltx-2-i2v", "group offload, fp8 weights")
    assert stored == presence

    announce(paths, presence, None)  # the cache dropped its pipeline
    (stored,) = live.read_workers(paths, "h")
    assert stored.loaded_model is None and stored.loaded_memory_mode is None


def test_a_worker_that_never_announced_itself_writes_nothing(tmp_path):
    paths = DataPaths(tmp_path)
    assert announce(paths, None, ("tiny", "none", None)) is None
    assert live.read_workers(paths, "h") == []
