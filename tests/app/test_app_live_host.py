"""Live monitor without a GPU: the host (CPU, RAM, load, free disk, the collector's own cost) charted over the
window chosen, the missing GPU said once, and the running job apart from the last job that ended."""

from __future__ import annotations

import json
from datetime import timedelta

from benchmarks import app_synthetic
from data.parquet_store import write_rows
from data.schemas import HostSample
from tests.app.conftest import no_exception, texts


def _host_history(paths, now, minutes: int = 30) -> None:
    """A sample every 10 s over the last `minutes`, flushed to the Parquet history as the collector does."""
    rows = [HostSample(ts=now - timedelta(seconds=10 * i), host=app_synthetic.HOST, cpu_percent=20.0 + i % 7,
                       load_1=0.5, ram_used_bytes=6 * 2**30, ram_total_bytes=16 * 2**30, disk_free_bytes=80 * 2**30,
                       collector_cpu_percent=1.5, collector_rss_bytes=90 * 2**20)
            for i in range(minutes * 6, 0, -1)]
    write_rows(paths, "host_samples", rows, app_synthetic.HOST)


def _host_chart(at) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.key.startswith("live_host_")]
    assert len(charts) == 1, [c.key for c in at.get("plotly_chart")]
    return json.loads(charts[0].proto.spec)


def test_without_a_gpu_the_host_is_charted_and_the_missing_gpu_said_once(page, paths, now):
    app_synthetic.write_live(paths, now, gpus=0)
    _host_history(paths, now)
    at = page("live")
    at.run()
    no_exception(at)
    assert texts(at).count("has no NVIDIA GPU") == 1
    figure = _host_chart(at)
    names = {trace["name"] for trace in figure["data"]}
    assert {"host CPU", "collector", "used", "free", "collector RSS"} <= names


def test_the_window_slider_changes_the_host_chart_s_time_range(page, paths, now):
    app_synthetic.write_live(paths, now, gpus=0)
    _host_history(paths, now)
    at = page("live")
    at.run()
    at.slider(key="live_minutes").set_value(5)
    at.run()
    short = _host_chart(at)["layout"]["xaxis"]["range"]
    at.slider(key="live_minutes").set_value(20)
    at.run()
    no_exception(at)
    long = _host_chart(at)["layout"]["xaxis"]["range"]
    assert round((short[1] - short[0]) / 60_000) == 5 and round((long[1] - long[0]) / 60_000) == 20


def test_the_last_ended_job_is_shown_apart_from_the_running_one(page, paths, now, queue, png_file):
    from engine.queue import JobParams

    app_synthetic.write_live(paths, now, gpus=0)
    job = queue.submit(JobParams(model="tiny", prompt="a", height=64, width=64, frames=8, steps=4), str(png_file),
                       job_id="fa" * 16)
    queue.claim("w1", None, 10)
    queue.finish(job.id, "w1", "cancelled", result={"stages": {"model_load": 1.0, "denoising_loop": 0.5,
                                                               "decode_video": 0.0}})
    at = page("live")
    at.run()
    no_exception(at)
    headers = [h.value for h in at.subheader]
    assert headers.index("Running job") < headers.index("Last ended job")
    assert "No job is running." in texts(at)
    stages = json.loads(next(c for c in at.get("plotly_chart") if c.key == "live_last_stages").proto.spec)
    assert stages["data"][0]["y"] == ["model_load", "denoising_loop"]  # decode_video never ran
