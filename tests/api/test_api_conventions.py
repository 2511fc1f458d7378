"""The API's conventions: errors are RFC 9457 problems, every operation documents an example, jobs can be reordered
and rated with the UI's semantics, and a job's progress and the alerts stream as server-sent events."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import httpx
import pytest
import uvicorn

from api.app import create_app
from data import live
from data.schemas import SUCCEEDED
from data.store import Store
from engine.queue import Progress
from tests.api.synthetic_host import HOST, free_port, run_record, write_runs
from tests.api.test_api_jobs import post_job

PROBLEM_KEYS = {"type", "title", "status", "detail"}


# -- problem details --------------------------------------------------------------------------------------
def test_a_domain_error_is_a_problem_with_type_title_status_and_detail(client):
    r = client.get("/api/jobs/0123abcd")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == 404 and body["type"] == "urn:i2vmon:problem:not-found"
    assert body["detail"] == "no job '0123abcd'"


def test_a_validation_error_is_a_problem_that_lists_each_bad_parameter(client):
    r = client.get("/api/jobs", params={"limit": 0})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:i2vmon:problem:invalid-request" and body["detail"].startswith("query parameter 'limit'")
    assert [e["where"] for e in body["errors"]] == ["query parameter 'limit'"]


def test_bad_input_is_a_400_problem(client):
    r = post_job(client, {"model": "nope"})
    assert r.status_code == 400 and r.json()["type"] == "urn:i2vmon:problem:bad-input" and "nope" in r.json()["detail"]


# -- OpenAPI examples -------------------------------------------------------------------------------------
def _has_example(node: dict) -> bool:
    return any("example" in media or media.get("examples") for media in (node.get("content") or {}).values())


def test_every_operation_has_an_example_answer_and_every_body_an_example(client):
    schema = client.app.openapi()
    missing = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            success = [r for code, r in op["responses"].items() if code.startswith("2")]
            if not any(_has_example(r) for r in success):
                missing.append(f"{method.upper()} {path}: answer")
            if "requestBody" in op and not _has_example(op["requestBody"]) and "multipart/form-data" not in op["requestBody"]["content"]:
                missing.append(f"{method.upper()} {path}: request body")
            for param in op.get("parameters", []):
                if param["in"] == "path" and not (param.get("examples") or param.get("example")):
                    missing.append(f"{method.upper()} {path}: path parameter {param['name']}")
    assert len(schema["paths"]) >= 14 and not missing, missing


def test_error_answers_are_documented_as_problem_json(client):
    op = client.app.openapi()["paths"]["/api/jobs/{job_id}"]["get"]
    example = op["responses"]["404"]["content"]["application/problem+json"]["example"]
    assert PROBLEM_KEYS <= set(example) and example["status"] == 404


# -- move and rate ----------------------------------------------------------------------------------------
def queued_order(client) -> list[str]:
    return [j["id"] for j in client.get("/api/jobs", params={"state": "queued"}).json()["jobs"]]


def test_move_puts_a_job_at_the_top_before_another_or_at_a_priority_as_the_ui_does(client):
    a, b, c = (post_job(client).json()["job"]["id"] for _ in range(3))
    r = client.post(f"/api/jobs/{c}/move", json={"to": "top"})
    assert r.status_code == 200 and r.json()["id"] == c
    assert queued_order(client) == [c, a, b]
    client.post(f"/api/jobs/{b}/move", json={"before": a})  # the queue table's "up" on b
    assert queued_order(client) == [c, b, a]
    client.post(f"/api/jobs/{c}/move", json={"to": "bottom"})
    assert queued_order(client) == [b, a, c]
    assert client.post(f"/api/jobs/{a}/move", json={"priority": 7}).json()["priority"] == 7
    assert queued_order(client) == [a, b, c]


def test_move_refuses_an_ambiguous_request_and_a_running_job(client):
    a = post_job(client).json()["job"]["id"]
    r = client.post(f"/api/jobs/{a}/move", json={"to": "top", "priority": 3})
    assert r.status_code == 400 and "exactly one of" in r.json()["detail"]
    client.app.state.ctx.queue.claim("w1", 0, 30)
    r = client.post(f"/api/jobs/{a}/move", json={"to": "top"})
    assert r.status_code == 409 and "only queued jobs can be reordered" in r.json()["detail"]
    assert client.post("/api/jobs/0123abcd/move", json={"to": "top"}).status_code == 404


def test_rating_a_finished_video_is_stored_and_the_latest_wins(client, paths):
    record = run_record("done1")
    record.video_path = str(paths.root / "video.mp4")
    write_runs(paths, [record])
    assert client.put("/api/jobs/done1/rating", json={"stars": 2}).status_code == 200
    r = client.put("/api/jobs/done1/rating", json={"stars": 4, "note": "  smooth  "})
    assert r.status_code == 200 and (r.json()["stars"], r.json()["note"]) == (4, "smooth")
    (run,) = Store(paths).runs().to_pylist()
    assert (run["rating"], run["rating_note"]) == (4, "smooth")


def test_rating_refuses_a_running_job_an_unknown_one_and_stars_out_of_range(client, paths):
    job = post_job(client).json()["job"]["id"]
    r = client.put(f"/api/jobs/{job}/rating", json={"stars": 3})
    assert r.status_code == 409 and "queued" in r.json()["detail"]
    assert client.put("/api/jobs/0123abcd/rating", json={"stars": 3}).status_code == 404
    r = client.put(f"/api/jobs/{job}/rating", json={"stars": 6})
    assert r.status_code == 422 and r.json()["errors"][0]["where"] == "JSON field 'stars'"


# -- server-sent events, read from a real server ----------------------------------------------------------
@pytest.fixture
def server(settings):
    """The app served by uvicorn on a free port in a thread; yields (base URL, app)."""
    app = create_app(settings)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def read_events(response, until: str, limit_s: float = 30) -> list[tuple[str, dict]]:
    """(event name, data) of each event on the stream, up to and including the first named `until`."""
    events, name, started = [], None, time.monotonic()
    for line in response.iter_lines():
        assert time.monotonic() - started < limit_s, events
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
            if name == until:
                return events
    return events


def test_a_jobs_event_stream_follows_it_through_its_states_and_ends_with_a_final_event(server):
    url, app = server
    with httpx.Client(base_url=url, timeout=30) as http:
        job_id = post_job(http).json()["job"]["id"]
        queue = app.state.ctx.queue

        def run_the_job() -> None:
            time.sleep(1.0)
            queue.claim("w1", 0, 30)
            for step in (1, 2):
                time.sleep(0.8)
                queue.heartbeat(job_id, "w1", 30, Progress(stage="denoising_loop", step=step, total_steps=2, eta_s=2.0 - step))
            time.sleep(0.8)
            queue.finish(job_id, "w1", SUCCEEDED, result={"total_s": 2.5, "stages": {"denoising_loop": 1.6}})

        worker = threading.Thread(target=run_the_job)
        worker.start()
        with http.stream("GET", f"/api/jobs/{job_id}/events") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = read_events(r, "end")
        worker.join()
    names = [name for name, _ in events]
    assert names[0] == "progress" and events[0][1]["state"] == "queued"
    assert names[-1] == "end" and names.count("end") == 1
    assert events[-1][1]["state"] == SUCCEEDED and events[-1][1]["total_s"] == 2.5
    steps = [data["step"] for name, data in events if name == "progress" and data["state"] == "running"]
    assert steps and steps == sorted(steps) and steps[-1] == 2


def test_a_finished_jobs_stream_is_one_final_event(server):
    url, app = server
    with httpx.Client(base_url=url, timeout=30) as http:
        job_id = post_job(http).json()["job"]["id"]
        http.delete(f"/api/jobs/{job_id}")
        with http.stream("GET", f"/api/jobs/{job_id}/events") as r:
            events = read_events(r, "end")
        assert [(name, data["state"]) for name, data in events] == [("end", "cancelled")]
        assert http.get("/api/jobs/0123abcd/events").status_code == 404


def test_the_alert_stream_sends_the_firing_set_then_each_change(server, paths):
    url, _ = server
    with httpx.Client(base_url=url, timeout=30) as http, http.stream("GET", "/api/alerts/events") as r:
        assert r.status_code == 200
        lines = r.iter_lines()

        def next_event() -> dict:
            for line in lines:
                if line.startswith("data: "):
                    return json.loads(line.removeprefix("data: "))
            raise AssertionError("the stream ended")

        assert next_event() == {"active": [], "fired": [], "resolved": []}
        now = datetime.now(timezone.utc).isoformat()
        live.write_active_alerts(paths, HOST, [{"host": HOST, "gpu_index": 0, "rule": "gpu_memory_high", "level": "warning",
                                                "value": 91.0, "since": now, "message": "GPU memory above 85%"}])
        fired = next_event()
        assert fired["fired"] == [f"{HOST}/0/gpu_memory_high"] and fired["active"][0]["rule"] == "gpu_memory_high"
        live.write_active_alerts(paths, HOST, [])
        assert next_event() == {"active": [], "fired": [], "resolved": [f"{HOST}/0/gpu_memory_high"]}
