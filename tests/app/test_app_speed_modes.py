"""Analytics compares runs with and without speed mode: per setting of the work (model, resolution, frames,
steps) and speed-mode label, the median time, s/step, peak memory, quality and count; a table and a chart."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from benchmarks import app_synthetic
from tests.app.conftest import no_exception, texts
from tests.app.test_app_analytics import analytics_on, open_tab


def _setting(r) -> tuple:
    return (r.model, r.height, r.width, r.frames, r.steps)


def _window(store):
    from data.analytics import RunFilter, RunWindow

    return RunWindow.load(store, RunFilter())


@pytest.fixture
def store(paths):
    from data.store import Store

    return Store(paths)


def _write(paths, records) -> None:
    from data.parquet_store import write_rows

    write_rows(paths, "runs", records, app_synthetic.HOST)


def test_comparison_counts_and_medians_match_the_rows_of_each_setting_and_mode(store, history):
    from data import analytics

    rows = analytics.speed_mode_comparison(_window(store), analytics.RunFilter()).to_pylist()
    assert rows
    for row in rows:
        same = [r for r in history if _setting(r) == tuple(row[k] for k in analytics.WORK_KEYS)
                and r.speed_mode == row["speed_mode"]]
        ok = [r for r in same if r.state == "succeeded"]
        assert row["runs"] == len(same)
        assert row["succeeded"] == len(ok)
        assert row["median_s_per_step"] == pytest.approx(statistics.median(r.s_per_step for r in ok))
        assert row["median_total_s"] == pytest.approx(statistics.median(r.total_s for r in ok))


def test_speed_up_is_against_the_off_runs_of_the_same_setting(store, history):
    from data import analytics

    rows = analytics.speed_mode_comparison(_window(store), analytics.RunFilter()).to_pylist()
    off = {tuple(r[k] for k in analytics.WORK_KEYS): r["median_s_per_step"] for r in rows if r["speed_mode"] == "off"}
    for row in rows:
        setting = tuple(row[k] for k in analytics.WORK_KEYS)
        assert row["step_speedup_vs_off"] == pytest.approx(off[setting] / row["median_s_per_step"])
    assert all(r["step_speedup_vs_off"] > 1.2 for r in rows if r["speed_mode"] != "off")  # the generator's 0.65×


def test_only_settings_run_under_two_speed_modes_are_compared(store, history):
    from data import analytics

    rows = analytics.speed_mode_comparison(_window(store), analytics.RunFilter()).to_pylist()
    assert "tiny" not in {r["model"] for r in rows}  # the CPU smoke model only ever runs with speed mode off
    everything = analytics.speed_mode_comparison(_window(store), analytics.RunFilter(), compared_only=False).to_pylist()
    assert "tiny" in {r["model"] for r in everything}


def test_a_new_speed_mode_label_is_compared_as_it_is(paths, store, now):
    from data import analytics

    records = app_synthetic.run_records(12, now, days=1)
    records = [dataclasses.replace(r, speed_mode="compile+cudagraphs+fp8" if (i // 4) % 2 else "off") for i, r in enumerate(records)]
    _write(paths, records)
    modes = {r["speed_mode"] for r in analytics.speed_mode_comparison(_window(store), analytics.RunFilter()).to_pylist()}
    assert modes == {"off", "compile+cudagraphs+fp8"}


def test_runs_of_a_store_older_than_the_speed_mode_column_count_as_not_recorded(paths, store, now):
    from data import analytics
    from data.analytics import NO_SPEED_MODE, RunWindow

    records = app_synthetic.run_records(8, now, days=1)
    _write(paths, records)
    old = store.query("runs", "SELECT * EXCLUDE (speed_mode) FROM {src}")
    window = RunWindow(old)
    rows = analytics.speed_mode_comparison(window, analytics.RunFilter(), compared_only=False).to_pylist()
    assert {r["speed_mode"] for r in rows} == {NO_SPEED_MODE}
    assert sum(r["runs"] for r in rows) == len(records)


def test_speed_modes_tab_shows_a_table_and_a_chart_of_every_mode(page, history):
    at = analytics_on(page, "Speed modes")
    no_exception(at)
    table = at.dataframe[0].value
    assert set(table["speed_mode"]) == {"off", "compile", "compile+frameconv+nhwc+precompiled"}
    assert {"setting", "runs", "median_total_s", "median_s_per_step", "median_peak_allocated_gib",
            "mean_quality_score", "step_speedup_vs_off"} <= set(table.columns)
    assert len(at.get("plotly_chart")) == 1


def test_speed_modes_tab_chart_follows_the_chosen_measure(page, history):
    import json

    at = analytics_on(page, "Speed modes")
    at.get("button_group")[0].set_value("peak memory")
    at.run()
    no_exception(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "peak memory" in spec["layout"]["title"]["text"]
    assert {t["name"] for t in spec["data"]} == {"off", "compile", "compile+frameconv+nhwc+precompiled"}


def test_speed_modes_tab_says_how_to_compare_when_every_run_had_one_mode(paths, page, now):
    records = [dataclasses.replace(r, speed_mode="off") for r in app_synthetic.run_records(12, now, days=1)]
    _write(paths, records)
    at = analytics_on(page, "Speed modes")
    no_exception(at)
    assert "ran under two speed modes" in texts(at)
    assert not at.get("plotly_chart")


def test_history_groups_runs_by_speed_mode(page, history):
    at = analytics_on(page)
    at.get("button_group")[0].set_value("speed_mode")
    at.run()
    no_exception(at)
    table = at.dataframe[0].value
    assert dict(zip(table["speed_mode"], table["runs"])) == {
        m: sum(r.speed_mode == m for r in history) for m in {r.speed_mode for r in history}}


def test_compare_two_settings_tells_speed_modes_apart(page, history):
    at = analytics_on(page)
    at.multiselect(key="an_models").set_value(["svd"])
    at.run()
    open_tab(at, "Compare two settings")
    no_exception(at)
    labels = at.selectbox(key="an_cmp_a").options
    assert len(labels) == 3
    assert {next(p for p in label.split(" · ") if p.startswith("speed ")) for label in labels} == {
        "speed off", "speed compile", "speed compile+frameconv+nhwc+precompiled"}


def test_fastest_per_setting_keeps_each_speed_mode_apart(page, history):
    at = analytics_on(page, "Fastest per setting")
    no_exception(at)
    table = at.dataframe[0].value
    svd = table[table["model"] == "svd"]
    assert sorted(svd["speed_mode"]) == ["compile", "compile+frameconv+nhwc+precompiled", "off"]
