"""/api/jobs: submit through multipart with a real PNG, list, status, cancel, video; bad input → 4xx with a plain message."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from engine.queue import Progress
from tests.api.synthetic_host import png_bytes, write_live

TINY = {"model": "tiny", "prompt": "a cat walking", "height": 64, "width": 64, "frames": 2, "steps": 2}


def post_job(client, params: object = TINY, image: bytes | None = None, **form) -> object:
    data = {"params": params if isinstance(params, str) else json.dumps(params), **{k: str(v) for k, v in form.items()}}
    return client.post("/api/jobs", files={"image": ("cat.png", png_bytes() if image is None else image, "image/png")}, data=data)


def test_submit_queues_the_job_with_its_image_and_prediction(client, paths):
    r = post_job(client, priority=3)
    assert r.status_code == 201, r.text
    body = r.json()
    job = body["job"]
    assert (job["state"], job["model"], job["priority"], job["params"]["frames"]) == ("queued", "tiny", 3, 2)
    assert job["params"]["guidance"] == 9.0  # the registry's default filled in, as the CLI does
    assert body["preflight"] and body["prediction"]["model"] == "tiny"
    assert (paths.job_dir(job["id"]) / "input.png").is_file()

    detail = client.get(f"/api/jobs/{job['id']}").json()
    assert detail["state"] == "queued" and [e["state"] for e in detail["events"]] == ["queued"]
    listed = client.get("/api/jobs").json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["counts"]["queued"] == 1


def test_status_shows_stage_step_eta_then_timings_and_video(client, paths):
    job_id = post_job(client).json()["job"]["id"]
    queue = client.app.state.ctx.queue
    queue.claim("w1", 0, 30)
    queue.heartbeat(job_id, "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2, eta_s=4.5, elapsed_s=2.0))
    running = client.get(f"/api/jobs/{job_id}").json()
    assert (running["state"], running["stage"], running["step"], running["total_steps"], running["eta_s"]) == (
        "running", "denoising_loop", 1, 2, 4.5)
    assert running["video_url"] is None
    r = client.get(f"/api/jobs/{job_id}/video")
    assert r.status_code == 404 and "running" in r.json()["detail"]

    video = paths.job_dir(job_id) / "video.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    stages = {"model_load": 0.5, "denoising_loop": 1.25, "export_video": 0.1}
    queue.finish(job_id, "w1", "succeeded", result={"stages": stages, "step_times_s": [0.6, 0.65], "total_s": 1.85,
                                                     "video_path": str(video), "smoke_test": True})
    done = client.get(f"/api/jobs/{job_id}").json()
    assert (done["timings"], done["total_s"], done["video_url"]) == (stages, 1.85, f"/api/jobs/{job_id}/video")
    assert [e["state"] for e in done["events"]] == ["queued", "running", "succeeded"]

    r = client.get(done["video_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4" and r.content == video.read_bytes()

    video.unlink()  # deleted by hand
    r = client.get(done["video_url"])
    assert r.status_code == 404 and "deleted" in r.json()["detail"]


def test_a_finished_jobs_progress_is_final(client):
    job_id = post_job(client).json()["job"]["id"]
    queue = client.app.state.ctx.queue
    queue.claim("w1", 0, 30)
    # The last heartbeat came a moment before the end: step 1 of 2, the ETA still counting down.
    queue.heartbeat(job_id, "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2, eta_s=0.42,
                                               elapsed_s=4.7, eta_margin_s=0.1))
    running = client.get(f"/api/jobs/{job_id}").json()
    assert (running["eta_s"], running["eta_margin_s"]) == (0.42, 0.1)
    queue.finish(job_id, "w1", "succeeded", result={"stages": {"denoising_loop": 1.3}, "total_s": 1.3})
    done = client.get(f"/api/jobs/{job_id}").json()
    assert (done["stage"], done["step"], done["total_steps"], done["eta_s"], done["eta_margin_s"]) == ("done", 2, 2, 0.0, 0.0)
    assert done["elapsed_s"] >= 4.7
    listed = next(j for j in client.get("/api/jobs").json()["jobs"] if j["id"] == job_id)
    assert (listed["stage"], listed["step"], listed["eta_s"]) == ("done", 2, 0.0)


def test_a_cancelled_jobs_progress_stops_where_it_stopped_with_no_eta(client):
    job_id = post_job(client).json()["job"]["id"]
    queue = client.app.state.ctx.queue
    queue.claim("w1", 0, 30)
    queue.heartbeat(job_id, "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2, eta_s=3.0, elapsed_s=2.0))
    queue.finish(job_id, "w1", "cancelled", error_kind="cancelled", error_message="cancelled through the API")
    done = client.get(f"/api/jobs/{job_id}").json()
    assert (done["stage"], done["step"], done["eta_s"], done["eta_margin_s"]) == ("denoising_loop", 1, None, None)
    assert done["elapsed_s"] >= 2.0


def test_cancel_queued_and_running_jobs(client):
    queued = post_job(client).json()["job"]["id"]
    running = post_job(client).json()["job"]["id"]
    queue = client.app.state.ctx.queue
    queue.move(running, to="top")
    assert queue.claim("w1", 0, 30).id == running

    r = client.delete(f"/api/jobs/{queued}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = client.delete(f"/api/jobs/{running}", params={"reason": "no longer needed"})
    assert r.json()["state"] == "running" and "next step" in r.json()["message"]
    assert queue.heartbeat(running, "w1", 30).cancel_reason == "no longer needed"
    assert client.delete(f"/api/jobs/{queued}").json()["message"].endswith("nothing to cancel")
    r = client.get(f"/api/jobs/{queued}/video")
    assert r.status_code == 404 and "cancelled" in r.json()["detail"]
    assert [j["id"] for j in client.get("/api/jobs", params={"state": "cancelled"}).json()["jobs"]] == [queued]


def test_unknown_job_is_404_with_a_message(client):
    for method, url in (("GET", "/api/jobs/0123abcd"), ("DELETE", "/api/jobs/0123abcd"), ("GET", "/api/jobs/0123abcd/video")):
        r = client.request(method, url)
        assert r.status_code == 404 and r.json()["detail"] == "no job '0123abcd'"
        assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("params, image, status, message", [
    ("{not json", None, 400, "params is not valid JSON"),
    ("[1, 2]", None, 400, "params must be a JSON object, not list"),
    ({"model": "no-such-model"}, None, 400, "no-such-model"),
    ({**TINY, "height": 70}, None, 400, "height 70 is not a multiple of"),
    ({**TINY, "colour": "red"}, None, 400, "unknown parameter(s): colour"),
    ({**TINY, "steps": "many"}, None, 400, "steps must be a whole number"),
    (TINY, b"GIF89a this is not an image", 400, "not an image PIL can read"),
    (TINY, b"", 400, "is empty"),
])
def test_bad_input_is_refused_with_a_plain_message(client, params, image, status, message):
    r = post_job(client, params, image)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert client.get("/api/jobs").json()["counts"]["queued"] == 0


def test_missing_fields_and_bad_query_values_are_422_with_a_plain_message(client):
    r = client.post("/api/jobs", data={"params": json.dumps(TINY)})
    assert r.status_code == 422 and r.json()["detail"] == "form field 'image': Field required"
    r = client.get("/api/jobs", params={"limit": 0})
    assert r.status_code == 422 and r.json()["detail"].startswith("query parameter 'limit': Input should be greater than or equal to 1")
    r = client.get("/api/jobs", params={"state": "sleeping"})
    assert r.status_code == 422 and "query parameter 'state" in r.json()["detail"]


def test_preflight_refusal_is_409_with_settings_that_fit(client, paths):
    write_live(paths, free_gib=2.0)  # an H100 with 2 GiB free
    r = post_job(client, {"model": "svd"})
    assert r.status_code == 409
    body = r.json()
    assert body["detail"].startswith("does not fit") and body["suggestions"] and body["prediction"]["model"] == "svd"
    assert post_job(client, {"model": "svd"}, force="true").status_code == 201


def test_upload_beyond_the_limit_is_413(settings, monkeypatch):
    monkeypatch.setenv("I2VMON_API__MAX_UPLOAD_MB", "1")
    from config import load_settings

    with TestClient(create_app(load_settings())) as client:
        big = png_bytes() + b"\0" * (2 * 2**20)
        r = post_job(client, TINY, big)
        assert r.status_code == 413 and "the limit is 1 MiB" in r.json()["detail"]

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(3):
                yield b"\0" * 2**20

        r = client.post("/api/jobs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413 and "larger than" in r.json()["detail"]
        assert post_job(client).status_code == 201  # under the limit: accepted


def test_an_unexpected_error_is_a_plain_500_without_traceback(settings, monkeypatch, caplog):
    app = create_app(settings)

    def broken() -> dict:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app.state.ctx.queue, "counts", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/jobs")
    assert r.status_code == 500
    assert r.json()["detail"] == "internal error; the API's log has the details" and r.json()["status"] == 500
    assert "secret internal detail" in caplog.text  # logged server-side, whole


def test_old_or_odd_result_rows_still_answer(client):
    """A row written by an older or newer worker (keys missing, unknown keys, nulls, a value of the wrong type)
    answers 200 with the defaults where a value does not fit, never a 500."""
    rows = [{"stages": {"model_load": 1.0}, "failed_stage": "decode_video"}, {"stages": None, "step_times_s": None,
            "total_s": 3, "expert": "low_noise"}, {"stages": "garbage", "total_s": "n/a", "step_times_s": [1, None]}]
    queue = client.app.state.ctx.queue
    ids = [post_job(client).json()["job"]["id"] for _ in rows]
    for result in rows:
        queue.finish(queue.claim("w1", 0, 30).id, "w1", "succeeded", result=result)
    assert client.get("/api/jobs").status_code == 200
    answers = {job_id: client.get(f"/api/jobs/{job_id}").json() for job_id in ids}
    seen = sorted(json.dumps([a["timings"], a["step_times_s"], a["total_s"], a["video_url"]]) for a in answers.values())
    assert seen == sorted(json.dumps(x) for x in ([{"model_load": 1.0}, [], None, None], [{}, [], 3.0, None], [{}, [1.0, None], None, None]))
    assert all(client.get(f"/api/jobs/{job_id}/video").status_code == 404 for job_id in ids)


def test_list_pages_with_a_cursor_and_an_honest_total(client):
    """Issue 26: /api/jobs pages with `cursor` (its answer's next_cursor) and says how many jobs there are."""
    queue = client.app.state.ctx.queue
    submitted = [post_job(client).json()["job"]["id"] for _ in range(5)]
    assert [j.id for j in queue.list()] == submitted
    seen, cursor, pages = [], None, 0
    while True:
        body = client.get("/api/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert body["total"] == 5 and body["counts"]["queued"] == 5
        seen += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (submitted, 3)
    only = client.get("/api/jobs", params={"state": "cancelled"}).json()
    assert (only["jobs"], only["total"], only["next_cursor"]) == ([], 0, None)
    for bad in ("-1", "x", "9" * 19):  # 19 digits could overflow SQLite's 64-bit integers
        assert client.get("/api/jobs", params={"cursor": bad}).status_code == 422
