"""Analytics: the page on an empty and a filled store (only the open tab runs), its SQL answers checked against
the rows, the speed-mode comparison, CSV export."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import timedelta

import pytest

from tests.app.conftest import no_exception, texts

TABS = ("History", "Stages", "Fastest per setting", "Speed modes", "Memory modes", "Predicted vs measured",
        "Compare two settings", "GPU history", "Export")


def open_tab(at, name: str):
    """Click a tab: its label is the tabs widget's value; on_change='rerun' runs the page again."""
    at.session_state["an_tab"] = name
    return at.run()


def analytics_on(page, tab: str | None = None):
    """The Analytics page after its first run, on `tab` when one is named."""
    at = page("analytics")
    at.run()
    if tab is not None:
        open_tab(at, tab)
    return at


@pytest.mark.parametrize("tab", TABS)
def test_empty_store_says_what_to_do_on_every_tab(page, tab):
    at = analytics_on(page, tab)
    no_exception(at)
    assert "No runs in the store yet" in texts(at)


def test_export_tab_offers_both_downloads_on_an_empty_store(page):
    at = analytics_on(page, "Export")
    no_exception(at)
    assert len(at.get("download_button")) == 2


def test_first_run_draws_only_the_history_tab(page, history):
    at = analytics_on(page)
    no_exception(at)
    assert len(at.get("plotly_chart")) == 6
    assert not at.get("download_button")


@pytest.mark.parametrize(("tab", "charts", "downloads"), [
    ("Stages", 1, 0), ("Fastest per setting", 0, 0), ("Speed modes", 1, 0), ("Memory modes", 0, 0),
    ("Predicted vs measured", 2, 0),
    ("Compare two settings", 1, 0), ("GPU history", 2, 0), ("Export", 0, 2),
])
def test_opening_a_tab_draws_that_tab_alone(page, history, tab, charts, downloads):
    at = analytics_on(page, tab)
    no_exception(at)
    assert len(at.get("plotly_chart")) == charts
    assert len(at.get("download_button")) == downloads


def test_history_groups_by_model(page, history):
    at = analytics_on(page)
    at.get("button_group")[0].set_value("model")
    at.run()
    no_exception(at)
    table = at.dataframe[0].value
    assert set(table["model"]) == {"i2vgen-xl", "svd", "ltx-video", "tiny"}


def test_group_by_choice_survives_a_visit_to_another_tab(page, history):
    at = analytics_on(page)
    at.get("button_group")[0].set_value("model")
    at.run()
    open_tab(at, "Stages")
    open_tab(at, "History")
    no_exception(at)
    assert set(at.dataframe[0].value["model"]) == {"i2vgen-xl", "svd", "ltx-video", "tiny"}


def test_model_filter_and_compare(page, history):
    at = analytics_on(page)
    at.multiselect(key="an_models").set_value(["svd"])
    at.run()
    open_tab(at, "Compare two settings")
    no_exception(at)
    at.selectbox(key="an_cmp_b").set_value(0)
    at.run()
    no_exception(at)
    compare = next(d.value for d in at.dataframe if "A" in d.value.columns)
    most_run_mode = max({r.speed_mode for r in history}, key=lambda m: sum(r.model == "svd" and r.speed_mode == m for r in history))
    svd = [r for r in history if r.model == "svd" and r.speed_mode == most_run_mode]
    assert compare.iloc[0]["A"] == str(len(svd))


def test_summary_matches_the_rows(store_and_history):
    from data import analytics
    from data.analytics import RunFilter

    store, records = store_and_history
    table = analytics.run_summary(store, RunFilter(), "model").to_pylist()
    by_model = {r["model"]: r for r in table}
    for model in {r.model for r in records}:
        rows = [r for r in records if r.model == model]
        got = by_model[model]
        assert got["runs"] == len(rows)
        assert got["ooms"] == sum(r.error_kind == "oom" for r in rows)
        assert got["failure_rate"] == pytest.approx(sum(r.state == "failed" for r in rows) / len(rows))
        ok = [r.total_s for r in rows if r.state == "succeeded"]
        assert got["median_total_s"] == pytest.approx(statistics.median(ok))
        assert got["fastest_total_s"] == pytest.approx(min(ok))


def test_replayed_record_counts_once_and_fastest(store_and_history, paths):
    import dataclasses

    from data import analytics
    from data.analytics import RunFilter
    from data.parquet_store import write_rows

    store, records = store_and_history
    first = next(r for r in records if r.state == "succeeded")
    replay = dataclasses.replace(first, finished_at=first.finished_at + timedelta(seconds=1))
    write_rows(paths, "runs", [replay], "testhost")
    table = analytics.run_summary(store, RunFilter(), "model").to_pylist()
    assert sum(r["runs"] for r in table) == len(records)
    fastest = analytics.fastest_per_setting(store, RunFilter()).to_pylist()
    for row in fastest:
        same = [r for r in records if r.state == "succeeded" and all(getattr(r, k) == row[k] for k in analytics.SETTING_KEYS)]
        assert row["fastest_total_s"] == pytest.approx(min(r.total_s for r in same))


def test_window_and_prediction_error(store_and_history, now):
    from data import analytics
    from data.analytics import RunFilter

    store, records = store_and_history
    since = now - timedelta(days=1)
    recent = [r for r in records if r.finished_at >= since]
    table = analytics.run_summary(store, RunFilter(since=since, until=now), "day").to_pylist()
    assert sum(r["runs"] for r in table) == len(recent)
    err = analytics.prediction_error(store, RunFilter())
    assert 0 < err["memory_median_rel_error"] < 0.2 and 0 < err["time_median_rel_error"] < 0.3


def test_csv_exports(store_and_history, now):
    from app.views import export

    store, records = store_and_history
    runs = list(csv.DictReader(io.StringIO(export.runs_csv(store, now - timedelta(days=4), now).decode())))
    assert len(runs) == len(records)
    assert {"job_id", "total_s", "rating", "step_times_s"} <= set(runs[0])
    assert ";" in runs[0]["step_times_s"]
    metrics = list(csv.DictReader(io.StringIO(export.metrics_csv(store, now - timedelta(minutes=5), now).decode())))
    assert 500 <= len(metrics) <= 602  # 2 GPUs × ~300 s
    assert {"ts", "gpu_index", "memory_used_bytes"} <= set(metrics[0])


@pytest.fixture
def store_and_history(paths, history):
    from data.store import Store

    return Store(paths), history


def test_history_groups_by_memory_mode_with_host_ram_beside_gpu_memory(page, memory_mode_history):
    at = analytics_on(page)
    at.get("button_group")[0].set_value("memory_mode")
    at.run()
    no_exception(at)
    table = at.dataframe[0].value.set_index("memory_mode")
    assert set(table.index) == {"no offload", "group offload · fp8 weights", "model offload"}
    assert table.loc["group offload · fp8 weights", "max_peak_allocated_gib"] == pytest.approx(12.0)
    assert table.loc["model offload", "max_peak_host_rss_gib"] == pytest.approx(71.0)
    assert len(at.get("plotly_chart")) == 7  # the six measures and host RAM


def test_memory_modes_tab_compares_the_same_work_in_each_mode(page, memory_mode_history):
    at = analytics_on(page, "Memory modes")
    no_exception(at)
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value.set_index("memory_mode")
    assert list(table.index) == ["no offload", "group offload · fp8 weights", "model offload"]
    assert table.loc["no offload", "time_vs_no_offload"] == pytest.approx(1.0)
    assert table.loc["model offload", "time_vs_no_offload"] > 1.2
    assert table.loc["group offload · fp8 weights", "median_peak_host_rss_gib"] == pytest.approx(56.5)
    at.get("button_group")[0].set_value("host RAM")
    at.run()
    no_exception(at)
    assert "Median peak host RAM by memory mode" in at.get("plotly_chart")[0].proto.spec


def test_memory_mode_comparison_matches_the_rows(paths, memory_mode_history):
    from data import analytics
    from data.analytics import RunFilter
    from data.store import Store

    rows = analytics.memory_mode_comparison(Store(paths), RunFilter()).to_pylist()
    for row in rows:
        offload = {"no offload": "none", "group offload · fp8 weights": "group", "model offload": "model"}[row["memory_mode"]]
        same = [r for r in memory_mode_history if r.offload == offload]
        assert row["runs"] == len(same)
        assert row["median_total_s"] == pytest.approx(statistics.median(r.total_s for r in same))
        assert row["max_peak_host_rss_bytes"] == max(r.peak_host_rss_bytes for r in same)


def test_runs_csv_carries_the_memory_mode_host_ram_and_experts(paths, memory_mode_history, now):
    from app.views import export
    from data.store import Store

    runs = list(csv.DictReader(io.StringIO(export.runs_csv(Store(paths), now - timedelta(days=3), now).decode())))
    assert len(runs) == len(memory_mode_history)
    assert {"offload", "weights", "peak_host_rss_bytes", "predicted_host_peak_bytes", "step_experts"} <= set(runs[0])
    assert {(r["offload"], r["weights"]) for r in runs} == {("none", ""), ("group", "fp8"), ("model", "")}
    assert runs[0]["step_experts"].endswith("transformer;transformer_2;transformer_2;transformer_2;transformer_2")
