"""Analytics says what its charts hold: predicted against measured for GPU runs apart from CPU smoke-test runs,
a single day's history from zero on a one-day axis, an empty chart that says so, the GPU CSV named for the GPU
window."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd

from app.views import charts
from tests.app.conftest import no_exception, texts
from tests.app.test_app_analytics import analytics_on


def test_predicted_vs_measured_shows_gpu_runs_apart_from_cpu_smoke_test_runs(page, history):
    at = analytics_on(page, "Predicted vs measured")
    no_exception(at)
    runs_on = next(b for b in at.get("button_group") if b.key == "an_pred_device")
    assert runs_on.value == "GPU"
    assert "GPU runs with a prediction" in texts(at)
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert "tiny" not in json.dumps(spec["data"][0].get("text"))  # the smoke-test model's runs are not among them
    runs_on.set_value("CPU smoke test")
    at.run()
    no_exception(at)
    assert "CPU smoke test runs with a prediction" in texts(at)


def test_the_device_class_is_derived_from_the_run_where_the_store_gives_none():
    from app.views.device_class import device_classes

    pairs = pd.DataFrame({"model": ["tiny", "svd", "svd"], "gpu_name": ["NVIDIA H100", "NVIDIA H100", None]})
    assert list(device_classes(pairs)) == ["CPU smoke test", "GPU", "CPU"]


def test_a_single_day_s_history_starts_at_zero_on_a_one_day_axis():
    day = pd.Timestamp("2026-12-04")
    fig = charts.group_measure(pd.DataFrame({"day": [day], "median_total_s": [12.0]}), "day", "median_total_s",
                               "Median generation time", "s", kind="line")
    assert fig.layout.yaxis.rangemode == "tozero"
    lo, hi = (pd.Timestamp(v) for v in fig.layout.xaxis.range)
    assert hi - lo == timedelta(days=1) and len(fig.layout.xaxis.tickvals) == 1


def test_a_chart_with_nothing_to_draw_says_so():
    frame = pd.DataFrame({"model": ["tiny"], "max_peak_allocated_gib": [float("nan")]})
    fig = charts.group_measure(frame, "model", "max_peak_allocated_gib", "Max peak memory", "GiB",
                               empty_note="no GPU memory measured")
    assert [a.text for a in fig.layout.annotations] == ["no GPU memory measured"]
    empty = pd.DataFrame({"model": [], "predicted_seconds": [], "total_s": []})
    fig = charts.predicted_vs_measured(empty, "predicted_seconds", "total_s", title="Total time", unit="s")
    assert "no run with both" in fig.layout.annotations[0].text


def test_the_stage_timeline_leaves_room_for_the_last_label():
    fig = charts.stage_timeline({"model_load": 1.0, "denoising_loop": 8.0, "export_video": 0.1})
    assert fig.layout.xaxis.range[1] > 9.1 * 1.1 and fig.data[0].cliponaxis is False


def test_the_gpu_csv_is_named_for_the_gpu_window_not_the_runs_window(page, history):
    until = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    since = until - timedelta(hours=1)  # the GPU-history tab's window before it is set
    at = analytics_on(page, "Export")
    no_exception(at)
    assert f"1 s samples {since.astimezone():%Y-%m-%d %H:%M}" in texts(at)
