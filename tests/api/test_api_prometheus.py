"""GET /metrics: dcgm-exporter-named GPU gauges and i2vmon engine metrics, checked by the real promtool and
scraped by a real Prometheus server on loopback."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import uvicorn

from api.app import create_app
from data import live, parquet_store
from engine.queue import JobParams, open_queue
from tests.api.synthetic_host import HOST, UUID0, free_port, png_bytes, run_record, write_live, write_runs

GPU0 = f'gpu="0",hostname="{HOST}",model_name="NVIDIA H100 80GB HBM3",uuid="{UUID0}"'


def scrape(client) -> str:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def fill(client, paths) -> None:
    """What a host would hold: a live sample of 2 GPUs, an alert, run records, a queued job."""
    write_live(paths, gpus=2)
    live.write_active_alerts(paths, HOST, [
        {"host": HOST, "gpu_index": 0, "rule": "gpu_memory_high", "level": "warning"},
        {"host": HOST, "gpu_index": None, "rule": "repeated_oom", "level": "fatal"},
        {"host": "otherhost", "gpu_index": 3, "rule": "gpu_lost", "level": "critical"},
    ])
    write_runs(paths, [run_record("a1", total_s=3.0), run_record("b2", total_s=40.0, height=128, width=128),
                       run_record("c3", state="failed", error_kind="oom")])
    parquet_store.write_rows(paths, "runs", [run_record("d4", model="tiny-svd", host="otherhost")], "otherhost")
    r = client.post("/api/jobs", files={"image": ("a.png", png_bytes(), "image/png")}, data={"params": json.dumps({"model": "tiny", "prompt": "a cat"})})
    assert r.status_code == 201


def test_gpu_gauges_follow_dcgm_names_and_units(client, paths):
    fill(client, paths)
    text = scrape(client)
    for line in (
        f"DCGM_FI_DEV_GPU_UTIL{{{GPU0}}} 87.0",
        f"DCGM_FI_DEV_FB_USED{{{GPU0}}} 20480.0",  # MiB
        f"DCGM_FI_DEV_FB_FREE{{{GPU0}}} 61440.0",
        f"DCGM_FI_DEV_GPU_TEMP{{{GPU0}}} 61.0",
        f"DCGM_FI_DEV_POWER_USAGE{{{GPU0}}} 350.5",
        f"DCGM_FI_DEV_SM_CLOCK{{{GPU0}}} 1980.0",
        f"DCGM_FI_DEV_MEM_CLOCK{{{GPU0}}} 2619.0",
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{GPU0}}} 1.23456789e+08",  # mJ
    ):
        assert line in text, line
    assert text.count("DCGM_FI_DEV_GPU_UTIL{") == 2


def test_engine_metrics(client, paths):
    fill(client, paths)
    text = scrape(client)
    for line in (
        'i2vmon_queue_jobs{state="queued"} 1.0',
        'i2vmon_queue_jobs{state="running"} 0.0',
        'i2vmon_jobs_total{model="tiny",state="succeeded"} 2.0',
        'i2vmon_jobs_total{model="tiny",state="failed"} 1.0',
        'i2vmon_oom_total{model="tiny"} 1.0',
        'i2vmon_generation_seconds_bucket{le="5.0",model="tiny",resolution="64x64"} 1.0',
        'i2vmon_generation_seconds_bucket{le="30.0",model="tiny",resolution="128x128"} 0.0',
        'i2vmon_generation_seconds_bucket{le="60.0",model="tiny",resolution="128x128"} 1.0',
        'i2vmon_generation_seconds_sum{model="tiny",resolution="128x128"} 40.0',
        'i2vmon_step_seconds_bucket{le="0.25",model="tiny",resolution="64x64"} 1.0',
        'i2vmon_step_seconds_count{model="tiny",resolution="64x64"} 2.0',
        'i2vmon_alerts_active{gpu="0",level="warning",rule="gpu_memory_high"} 1.0',
        'i2vmon_alerts_active{gpu="",level="fatal",rule="repeated_oom"} 1.0',
    ):
        assert line in text, line
    assert "tiny-svd" not in text and "gpu_lost" not in text  # another host's runs and alerts: its own /metrics


def test_a_stale_sample_exports_no_gpu_gauges(client, paths):
    write_live(paths, ts=datetime.now(timezone.utc) - timedelta(minutes=5))
    text = scrape(client)
    assert "DCGM_FI_DEV_GPU_UTIL{" not in text
    assert f'i2vmon_collector_last_sample_timestamp_seconds{{hostname="{HOST}"}}' in text


def test_jobs_too_large_for_every_served_gpu_are_counted(client, settings, paths):
    write_live(paths, gpus=2)  # two 80 GiB GPUs; a worker serves only GPU 1
    live.write_worker(paths, live.WorkerPresence(host=HOST, gpu_index=1, pid=4242, worker_id="w1"))
    queue = open_queue(settings)
    gib = 2**30
    queue.submit(JobParams(model="tiny", prompt="a cat"), "/in/a.png", job_id="huge", predicted={"peak_reserved_bytes": 90 * gib})
    queue.submit(JobParams(model="tiny", prompt="a cat"), "/in/b.png", job_id="fits", predicted={"peak_reserved_bytes": 9 * gib})
    assert "i2vmon_queue_jobs_too_large 1.0" in scrape(client)


def test_no_too_large_count_without_a_serving_worker(client, paths):
    write_live(paths, gpus=1)  # a sample, but no engine worker announced: nothing to measure jobs against
    assert "i2vmon_queue_jobs_too_large" not in scrape(client)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package `prometheus`)")
def test_promtool_accepts_the_exposition(client, paths):
    fill(client, paths)
    text = scrape(client)
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@contextlib.contextmanager
def prometheus_scraping_api(settings, tmp_path) -> Iterator[str]:
    """The API served by uvicorn and a real Prometheus scraping its /metrics every second; the Prometheus
    HTTP API's base URL (its log: tmp_path/prometheus.log)."""
    api_port, prom_port = free_port(), free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=api_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: i2vmon\n    static_configs:\n      - targets: ['127.0.0.1:{api_port}']\n"
    )
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"),
    )
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        yield base
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        server.should_exit = True
        thread.join(timeout=10)


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian package `prometheus`)")
def test_a_real_prometheus_scrapes_it(settings, paths, tmp_path):
    write_live(paths, gpus=1)
    with prometheus_scraping_api(settings, tmp_path) as base:
        deadline = time.monotonic() + 60
        health, series = None, []
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                targets = _get_json(f"{base}/targets")["data"]["activeTargets"]
                health = targets[0]["health"] if targets else None
                if health == "up":
                    query = urllib.parse.quote('DCGM_FI_DEV_GPU_UTIL{gpu="0"}')
                    series = _get_json(f"{base}/query?query={query}")["data"]["result"]
                    if series:
                        break
            except OSError:
                continue  # not listening yet
        assert health == "up", (tmp_path / "prometheus.log").read_text()[-2000:]
        assert series and series[0]["metric"]["uuid"] == UUID0 and float(series[0]["value"][1]) == 87.0
        queue = _get_json(f"{base}/query?query=" + urllib.parse.quote('i2vmon_queue_jobs{state="queued"}'))["data"]["result"]
        assert queue and queue[0]["value"][1] == "0"
