"""Energy and cost per video and software versions in the UI: the job panel's line, the Analytics tab
"Energy & versions" with its version filter, and the runs CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import timedelta

import pytest

from benchmarks import app_synthetic
from engine.queue.models import JobResult
from tests.app.conftest import no_exception, texts
from tests.app.test_app_analytics import analytics_on

TAB = "Energy & versions"


@pytest.fixture
def energy_history(paths, now):
    """12 succeeded i2vgen-xl runs of one setting on an H200, 2 Wh each (1 Wh on torch 2.7.0, which ran the last 4)."""
    from data.parquet_store import write_rows

    records = []
    for i, r in enumerate(app_synthetic.run_records(12, now, days=1)):
        newer = i >= 8
        joules = 3600.0 if newer else 7200.0
        records.append(dataclasses.replace(
            r, model="i2vgen-xl", gpu_name="NVIDIA H200", state="succeeded", error_kind=None, error_message=None,
            failed_stage=None, height=512, width=512, frames=16, steps=50, fps=8, speed_mode="off", total_s=60.0,
            s_per_step=0.9 if newer else 1.0, finished_at=now - timedelta(minutes=60 - i), energy_j=joules,
            energy_wh=joules / 3600, energy_method="counter", energy_cost=joules / 3.6e6 * 0.3, energy_currency="EUR",
            i2vmon_version="1.0", torch_version="2.7.0" if newer else "2.6.0", diffusers_version="0.35.1",
            cuda_version="12.4", driver_version="550.54.15"))
    write_rows(paths, "runs", records, app_synthetic.HOST)
    return records


def test_the_job_panel_line_gives_wh_kj_j_per_frame_and_cost():
    r = JobResult(energy_j=7200.0, energy_method="counter", energy_cost=0.0006, energy_currency="USD")
    from app.views.energy import energy_text

    assert energy_text(r, 16) == "GPU energy 2.00 Wh (7.2 kJ, NVML energy counter) · 450 J per frame · cost 0.0006 USD"


def test_the_job_panel_line_says_why_a_job_has_no_energy():
    from app.views.energy import energy_text

    r = JobResult(energy_note="CPU job: no GPU, so no GPU energy")
    assert energy_text(r, 4) == "GPU energy N/A — CPU job: no GPU, so no GPU energy"


def test_the_tab_on_an_empty_store_says_there_is_nothing_yet(page):
    at = analytics_on(page, TAB)
    no_exception(at)
    assert "No succeeded runs in this window" in texts(at)


def test_the_tab_shows_energy_per_setting_and_the_setting_before_and_after_an_upgrade(page, energy_history):
    at = analytics_on(page, TAB)
    no_exception(at)
    at.selectbox(key="an_version_column").set_value("torch_version").run()
    no_exception(at)
    energy, compared = (df.value for df in at.dataframe)
    (row,) = energy.to_dict("records")
    assert (row["runs"], row["runs_with_energy"], row["median_wh_per_video"]) == (12, 12, 2.0)
    assert row["median_wh_per_video_second"] == pytest.approx(1.0) and row["median_j_per_frame"] == pytest.approx(450.0)
    assert list(compared["version"]) == ["2.6.0", "2.7.0"] and list(compared["median_s_per_step"]) == [1.0, 0.9]


def test_the_version_filter_keeps_only_that_versions_runs(page, energy_history):
    at = analytics_on(page, TAB)
    at.selectbox(key="an_version_column").set_value("torch_version").run()
    at.multiselect(key="an_version_values").set_value(["2.7.0"]).run()
    no_exception(at)
    (row,) = at.dataframe[0].value.to_dict("records")
    assert (row["runs"], row["median_wh_per_video"]) == (4, 1.0)


def test_the_runs_csv_carries_energy_and_versions(paths, energy_history, now):
    from app.views import export
    from data.store import Store

    rows = list(csv.DictReader(io.StringIO(export.runs_csv(Store(paths), now - timedelta(days=1), now).decode())))
    assert {r["energy_method"] for r in rows} == {"counter"} and {r["torch_version"] for r in rows} == {"2.6.0", "2.7.0"}
    assert {float(r["energy_wh"]) for r in rows} == {1.0, 2.0} and all(r["energy_cost"] for r in rows)
