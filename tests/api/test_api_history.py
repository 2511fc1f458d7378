"""Metrics (latest and history), alerts, runs (JSON and CSV), predict and recommend, read through data/."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from data import live
from tests.api.synthetic_host import H100, HOST, UUID0, run_record, write_gpu_history, write_live, write_runs


def test_latest_has_every_gpu_and_the_host(client, paths):
    write_live(paths, gpus=2)
    (host,) = client.get("/api/metrics/latest").json()["hosts"]
    assert host["hostname"] == HOST and host["age_s"] < 60
    assert host["host"]["cpu_percent"] == 12.5 and host["host"]["gpu_count"] == 2
    assert [g["gpu_index"] for g in host["gpus"]] == [0, 1]
    assert host["gpus"][0]["gpu_uuid"] == UUID0 and host["gpus"][0]["memory_used_percent"] == 25.0


def test_history_filters_by_time_gpu_and_fields(client, paths):
    now = write_gpu_history(paths, minutes=5, gpus=2)
    r = client.get("/api/metrics", params={"since": (now - timedelta(minutes=10)).isoformat()})
    body = r.json()
    assert r.status_code == 200 and len(body["rows"]) == 10 and not body["truncated"]

    r = client.get("/api/metrics", params=[("since", (now - timedelta(minutes=2, seconds=30)).isoformat()),
                                           ("until", now.isoformat()), ("gpu", "1"), ("fields", "gpu_util_percent,temp_c")])
    body = r.json()
    assert body["columns"] == ["ts", "host", "gpu_index", "gpu_uuid", "gpu_name", "gpu_util_percent", "temp_c"]
    # oldest first; the synthetic utilisation is the sample's age in minutes
    assert [(row["gpu_index"], row["gpu_util_percent"]) for row in body["rows"]] == [(1, 2.0), (1, 1.0), (1, 0.0)]

    naive = (now - timedelta(minutes=10)).replace(tzinfo=None).isoformat()  # no zone: UTC
    assert len(client.get("/api/metrics", params={"since": naive, "limit": 3}).json()["rows"]) == 3


def test_history_refuses_unknown_fields_and_backwards_windows(client, paths):
    write_gpu_history(paths, minutes=1)
    r = client.get("/api/metrics", params={"fields": "gpu_util_percent,bogus"})
    assert r.status_code == 400 and r.json()["detail"].startswith("unknown metric field(s) bogus; known:")
    r = client.get("/api/metrics", params={"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"})
    assert r.status_code == 400 and "is after until" in r.json()["detail"]
    r = client.get("/api/metrics", params={"since": "0001-01-01T00:00:00-14:00"})
    assert r.status_code == 400 and "out of range" in r.json()["detail"]
    r = client.get("/api/metrics", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["detail"].startswith("query parameter 'since'")


def test_alerts_active_and_history(client, paths):
    now = datetime.now(timezone.utc)
    live.write_active_alerts(paths, HOST, [{"host": HOST, "gpu_index": 0, "rule": "gpu_memory_high", "level": "warning",
                                            "value": 91.0, "since": now.isoformat(), "message": "GPU memory above 85%", "action": ""}])
    body = client.get("/api/alerts").json()
    assert [a["rule"] for a in body["active"]] == ["gpu_memory_high"] and body["events"] == []


def test_runs_filter_and_csv(client, paths):
    write_runs(paths, [run_record("a1", total_s=3.0), run_record("b2", model="tiny-svd", total_s=5.0),
                       run_record("c3", state="failed", error_kind="oom")])
    body = client.get("/api/runs").json()
    assert body["count"] == 3
    assert body["runs"][0]["clip_score"] is None  # NaN in Parquet: null in JSON
    assert [r["job_id"] for r in client.get("/api/runs", params={"model": "tiny-svd"}).json()["runs"]] == ["b2"]
    assert [r["job_id"] for r in client.get("/api/runs", params={"state": "failed"}).json()["runs"]] == ["c3"]
    assert client.get("/api/runs", params={"height": 128}).json()["count"] == 0
    assert client.get("/api/runs", params={"until": "2000-01-01T00:00:00Z"}).json()["count"] == 0

    r = client.get("/api/runs", params={"state": "succeeded"}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["job_id"] for row in rows) == ["a1", "b2"]
    assert rows[0]["step_times_s"] == "[0.2, 0.3]" and rows[0]["gpu_name"] == H100 and rows[0]["clip_score"] == ""


def test_predict_and_recommend(client, paths):
    write_live(paths, free_gib=20.0)  # an H100 with 20 GiB free
    p = client.get("/api/predict", params={"model": "svd", "height": 576, "width": 1024, "frames": 14}).json()
    assert p["gpu_name"] == H100 and p["peak_reserved_gib"] > 1 and p["memory_source"].startswith("calibration")
    r = client.get("/api/predict", params={"model": "nope", "height": 64, "width": 64, "frames": 2})
    assert r.status_code == 400 and "unknown model 'nope'" in r.json()["detail"]
    plain = client.get("/api/predict", params={"model": "svd", "height": 576, "width": 1024, "frames": 14,
                                               "guidance": 1.0}).json()
    assert (p["batch"], plain["batch"]) == (2, 1) and plain["s_per_step"] < p["s_per_step"]

    rec = client.get("/api/recommend", params={"model": "svd"}).json()
    assert rec["fits"] and rec["free_gib"] == 20.0 and rec["prediction"]["required_free_gib"] + 1.0 <= 20.0
    r = client.get("/api/recommend", params={"model": "svd", "time_budget_s": -1})
    assert r.status_code == 422
