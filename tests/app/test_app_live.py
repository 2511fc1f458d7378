"""Live monitor: charts per GPU with gaps as gaps, processes, alerts, the running job; the collector down."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from benchmarks import app_synthetic
from tests.app.conftest import no_exception, texts


def test_collector_down_says_how_to_start_it(page):
    at = page("live")
    at.run()
    no_exception(at)
    assert any("collector is down" in e.value and "python -m collector" in e.value for e in at.error)
    assert "No GPU samples" in texts(at)


def test_stale_snapshot_counts_as_down(page, paths, now):
    app_synthetic.write_live(paths, now - timedelta(minutes=2))
    at = page("live")
    at.run()
    no_exception(at)
    assert any("collector is down" in e.value and "last sample" in e.value for e in at.error)


def test_charts_processes_alerts_per_gpu(page, collector_live):
    at = page("live")
    at.run()
    no_exception(at)
    charts = [c for c in at.get("plotly_chart") if not c.key.startswith("live_host_")]
    assert len(charts) == 2  # one per GPU
    assert not at.error
    assert any("GPU memory above 85%" in w.value for w in at.warning)
    frames = [d.value for d in at.dataframe]
    assert any("python -m engine serve" in set(f["process"]) for f in frames)


def test_longer_window_reads_the_history_too(page, paths, now, history, collector_live):
    at = page("live")
    at.run()
    at.slider(key="live_minutes").set_value(20)
    at.run()
    no_exception(at)
    assert len([c for c in at.get("plotly_chart") if not c.key.startswith("live_host_")]) == 2


def test_no_gpu_host_says_so(page, paths, now):
    app_synthetic.write_live(paths, now, gpus=0)
    at = page("live")
    at.run()
    no_exception(at)
    assert "has no NVIDIA GPU" in texts(at)


def test_running_job_stage_strip(page, queue, png_file, collector_live):
    from engine.queue import JobParams, Progress

    job = queue.submit(JobParams(model="tiny", prompt="a", height=64, width=64, frames=8, steps=4), str(png_file),
                       job_id="ef" * 16)
    queue.claim("w1", 0, 10)
    queue.heartbeat(job.id, "w1", 10, Progress(stage="decode_video", step=4, total_steps=4, eta_s=0.5, elapsed_s=3.0))
    at = page("live")
    at.run()
    no_exception(at)
    shown = texts(at)
    assert "**▶ decode_video**" in shown and "✓ denoising_loop" in shown
    assert any("step 4/4 · decode_video" in p.proto.text for p in at.get("progress"))


def test_with_gaps_breaks_the_line():
    from app.views.charts import with_gaps

    ts = pd.to_datetime(["2026-01-01 00:00:00", "2026-01-01 00:00:01", "2026-01-01 00:00:10", "2026-01-01 00:00:11"], utc=True)
    frame = pd.DataFrame({"ts": ts, "v": [1.0, 2.0, 3.0, 4.0]})
    out = with_gaps(frame, max_gap_s=3)
    assert len(out) == 5 and out["v"].isna().sum() == 1
    assert out["v"].isna().tolist() == [False, False, True, False, False]
    assert len(with_gaps(frame.iloc[:2], max_gap_s=3)) == 2


def test_a_running_mixture_of_experts_job_shows_the_expert_running(page, queue, png_file, collector_live):
    from engine.queue import JobParams, Progress

    job = queue.submit(JobParams(model="tiny-wan-moe", prompt="a", height=32, width=32, frames=9, steps=4,
                                 offload="group", weights="fp8"), str(png_file), job_id="ab" * 16)
    queue.claim("w1", 0, 10)
    queue.heartbeat(job.id, "w1", 10, Progress(stage="denoising_loop", step=3, total_steps=4, eta_s=0.5,
                                               elapsed_s=3.0, expert="transformer_2"))
    at = page("live")
    at.run()
    no_exception(at)
    assert "running the **low-noise expert (transformer_2)** (step 3 of 4)" in texts(at)
    assert any("step 3/4 · denoising_loop · ▶ low-noise expert (transformer_2)" in p.proto.text
               for p in at.get("progress"))
    assert "group offload · fp8 weights" in texts(at)
