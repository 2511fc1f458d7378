"""Speed mode compared one part at a time: runs whose label holds a part against runs of the same setting whose
label is the same minus that part (speed_part_effects), summed up per part (speed_part_summary), and the quality
trades of one model on one GPU for the Generate page (trade_effects). Real run records in Parquet files."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from data import analytics, parquet_store
from data.analytics import RunFilter
from data.schemas import RunRecord
from data.store import Store

NOW = datetime.now(timezone.utc).replace(microsecond=0)
H200 = "NVIDIA H200"
_ids = itertools.count()


def _run(speed_mode: str, s_per_step: float, **extra: object) -> RunRecord:
    fields: dict = dict(model="wan2.1-i2v-14b-720p", state="succeeded", gpu_name=H200, height=720, width=1280,
                        frames=81, steps=40, guidance=5.0, offload="none", total_s=s_per_step * 40 + 20.0,
                        s_per_step=s_per_step, speed_mode=speed_mode, peak_allocated_bytes=60 * 2**30,
                        flicker=0.010, mean_flow=1.0, subject_consistency=0.95)
    fields.update(extra)
    finished = NOW - timedelta(minutes=next(_ids))
    return RunRecord(job_id=f"job-{next(_ids)}", host="h1", created_at=finished - timedelta(minutes=1),
                     finished_at=finished, **fields)


def _store(paths, runs: list[RunRecord]) -> Store:
    parquet_store.write_rows(paths, "runs", runs, "h1")
    return Store(paths)


def _effects(store: Store) -> dict[tuple[str, str], dict]:
    rows = analytics.speed_part_effects(store, RunFilter()).to_pylist()
    return {(r["part"], r["with_mode"]): r for r in rows}


def test_a_parts_speed_up_is_the_median_s_per_step_without_it_over_the_median_with_it(paths):
    store = _store(paths, [_run("regional", s) for s in (2.0, 2.2, 2.4)]
                   + [_run("regional+cache", s) for s in (1.0, 1.2)])
    row = _effects(store)[("cache", "regional+cache")]
    assert row["without_mode"] == "regional"
    assert (row["runs_with"], row["runs_without"]) == (2, 3)
    assert row["s_per_step_with"] == pytest.approx(1.1)
    assert row["s_per_step_without"] == pytest.approx(2.2)
    assert row["step_speedup"] == pytest.approx(2.0)
    assert row["total_speedup"] == pytest.approx((2.2 * 40 + 20) / (1.1 * 40 + 20))


def test_a_part_alone_is_compared_with_the_runs_of_speed_mode_off(paths):
    store = _store(paths, [_run("off", 3.0), _run("cache", 1.5)])
    row = _effects(store)[("cache", "cache")]
    assert row["without_mode"] == "off"
    assert row["step_speedup"] == pytest.approx(2.0)


def test_every_word_of_a_label_is_compared_with_the_label_without_it(paths):
    store = _store(paths, [_run("regional+fp8+cache", 1.0), _run("fp8+cache", 1.2), _run("regional+cache", 1.5),
                           _run("regional+fp8", 2.0)])
    effects = _effects(store)
    assert {part: effects[(part, "regional+fp8+cache")]["without_mode"] for part in ("regional", "fp8", "cache")} == {
        "regional": "fp8+cache", "fp8": "regional+cache", "cache": "regional+fp8"}
    assert effects[("fp8", "regional+fp8+cache")]["step_speedup"] == pytest.approx(1.5)


def test_runs_of_another_setting_are_never_a_parts_baseline(paths):
    store = _store(paths, [
        _run("regional+cache", 1.0),
        _run("regional", 2.0, gpu_name="NVIDIA H100 80GB HBM3"),  # another GPU
        _run("regional", 2.0, height=480, width=832),  # another resolution
        _run("regional", 2.0, guidance=1.0),  # no classifier-free guidance: half the batch
        _run("regional", 2.0, offload="group"),  # another memory mode
    ])
    assert ("cache", "regional+cache") not in _effects(store)


def test_failed_runs_count_on_neither_side(paths):
    store = _store(paths, [_run("off", 2.0), _run("off", 50.0, state="failed"), _run("cache", 1.0),
                           _run("cache", 0.1, state="cancelled")])
    row = _effects(store)[("cache", "cache")]
    assert (row["runs_with"], row["runs_without"]) == (1, 1)
    assert row["step_speedup"] == pytest.approx(2.0)


def test_quality_deltas_are_with_minus_without_and_peaks_are_given_each_side(paths):
    store = _store(paths, [
        _run("off", 2.0, flicker=0.010, subject_consistency=0.96, peak_allocated_bytes=60 * 2**30),
        _run("off", 2.0, flicker=0.012, subject_consistency=0.94, peak_allocated_bytes=60 * 2**30),
        _run("fp8", 1.2, flicker=0.015, subject_consistency=0.93, peak_allocated_bytes=40 * 2**30),
    ])
    row = _effects(store)[("fp8", "fp8")]
    assert row["flicker_delta"] == pytest.approx(0.015 - 0.011)
    assert row["subject_consistency_delta"] == pytest.approx(0.93 - 0.95)
    assert row["quality_score_delta"] is None  # neither side was scored
    assert (row["peak_allocated_bytes_with"], row["peak_allocated_bytes_without"]) == (40 * 2**30, 60 * 2**30)


def test_the_summary_gives_each_part_the_median_over_the_settings_that_compare_it(paths):
    runs = []
    for height, width, speedup in ((480, 832, 1.5), (720, 1280, 2.0), (960, 960, 3.0)):
        runs += [_run("regional", 3.0, height=height, width=width),
                 _run("regional+cache", 3.0 / speedup, height=height, width=width)]
    store = _store(paths, runs + [_run("off", 3.3), _run("regional", 3.0)])
    rows = {r["part"]: r for r in analytics.speed_part_summary(store, RunFilter()).to_pylist()}
    assert rows["cache"]["settings"] == 3
    assert rows["cache"]["step_speedup"] == pytest.approx(2.0)
    assert (rows["cache"]["runs_with"], rows["cache"]["runs_without"]) == (3, 4)
    assert rows["regional"]["settings"] == 1
    assert rows["regional"]["step_speedup"] == pytest.approx(1.1)


def test_trade_effects_answers_for_the_trades_asked_of_one_model_on_one_gpu(paths):
    store = _store(paths, [
        _run("regional", 2.0), _run("regional+cache", 1.0), _run("regional+int8attn", 1.6),
        _run("regional", 2.0, model="ltx-video"), _run("regional+fp8", 0.5, model="ltx-video"),  # another model
        _run("regional", 2.0, gpu_name="NVIDIA H100 80GB HBM3"),
        _run("regional+fp8", 0.5, gpu_name="NVIDIA H100 80GB HBM3"),  # another GPU
    ])
    effects = analytics.trade_effects(store, "wan2.1-i2v-14b-720p", H200, ("fp8", "int8attn", "cache"))
    assert set(effects) == {"int8attn", "cache"}  # fp8 ran only elsewhere; "regional" is no trade
    cache = effects["cache"]
    assert (cache.runs_with, cache.runs_without, cache.settings) == (1, 1, 1)
    assert cache.step_speedup == pytest.approx(2.0)
    assert cache.quality_deltas["flicker"] == pytest.approx(0.0)
    assert analytics.trade_effects(store, "wan2.1-i2v-14b-720p", H200, ()) == {}


def test_an_empty_store_has_no_part_effects(paths):
    store = Store(paths)
    assert analytics.speed_part_effects(store, RunFilter()).num_rows == 0
    assert analytics.trade_effects(store, "wan2.1-i2v-14b-720p", H200, ("cache",)) == {}
