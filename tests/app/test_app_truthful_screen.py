"""Generate tells the truth: what is typed is what is checked and queued, the queue and the job panel are
current and say how fresh they are, elapsed never goes backwards, an ETA carries its margin, a prediction
says how far to trust it, and the job panel shows the job picked or the one running."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image

from app.views import formatting as fmt
from app.views.job_panel import progress_line, ran_stages
from engine.intake.validation import InputError, check_params
from engine.queue.models import Job, JobParams, JobResult, Progress
from tests.app.conftest import no_exception, texts


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _ready(at, prompt: str = "a cat turns its head"):
    at.run()
    at.file_uploader(key="gen_image").set_value(("cat.png", _png(), "image/png"))
    at.run()
    at.text_area(key="gen_prompt").input(prompt)
    at.run()
    return at


def _engine_message(**values) -> str:
    with pytest.raises(InputError) as refused:
        check_params({"model": "tiny", "prompt": "p", **values})
    return str(refused.value)


def test_an_out_of_range_frame_count_is_kept_as_typed_and_refused_with_the_engine_s_message(page, queue):
    at = _ready(page("generate"))
    at.number_input(key="gen_frames").set_value(100000)
    at.run()
    no_exception(at)
    message = _engine_message(frames=100000)
    assert at.number_input(key="gen_frames").value == 100000
    assert any(e.value == message for e in at.error), [e.value for e in at.error]
    assert at.button(key="gen_submit").disabled and at.button(key="gen_submit").help == message
    assert queue.list() == []


def test_a_custom_height_beyond_the_limit_disables_generate_with_the_reason(page, queue):
    at = _ready(page("generate"))
    at.selectbox(key="gen_resolution").set_value("custom")
    at.run()
    at.number_input(key="gen_height").set_value(99999)
    at.run()
    no_exception(at)
    assert at.number_input(key="gen_height").value == 99999
    assert at.button(key="gen_submit").disabled
    assert "height 99999" in at.button(key="gen_submit").help
    assert "Nothing is queued until this is fixed" in texts(at)


def test_two_bad_values_are_both_named_beside_their_fields(page):
    at = _ready(page("generate"))
    at.number_input(key="gen_steps").set_value(0)
    at.number_input(key="gen_fps").set_value(500)
    at.run()
    errors = [e.value for e in at.error]
    assert _engine_message(steps=0) in errors and _engine_message(fps=500) in errors


def test_the_form_is_drawn_at_its_values_not_at_the_widgets_minimum_first(page):
    at = page("generate")
    at.run()
    frames = at.number_input(key="gen_frames")
    assert frames.proto.default == frames.value == 8  # the browser's first paint is the default it is sent


def test_the_parameters_are_shown_before_queueing_and_the_stored_ones_after(page, queue):
    at = _ready(page("generate"))
    assert "**Will queue:** tiny · 64×64 · 8 frames · 4 steps" in texts(at)
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    job = queue.list()[0]
    assert f"**Parameters:** tiny · 64×64 · {job.params.frames} frames · {job.params.steps} steps" in texts(at)
    assert "submitted here" in texts(at)


def _running_elsewhere(queue, png_file, job_id: str, predicted: dict | None = None) -> None:
    """A job a worker runs, at step 1 of 4, submitted from elsewhere (not this browser session)."""
    params = JobParams(model="tiny", prompt="elsewhere", height=64, width=64, frames=8, steps=4)
    job = queue.submit(params, str(png_file), job_id=job_id, predicted=predicted)
    queue.claim("w1", None, 10)
    queue.heartbeat(job.id, "w1", 10, Progress(stage="denoising_loop", step=1, total_steps=4, eta_s=9.0,
                                               elapsed_s=1.0))


def test_the_job_panel_follows_the_running_job_when_none_was_picked(page, queue, png_file):
    _running_elsewhere(queue, png_file, "ef" * 16)
    at = page("generate")
    at.run()
    no_exception(at)
    assert "following the running job" in texts(at)
    assert any("step 1/4 · denoising_loop" in p.proto.text for p in at.get("progress"))


def test_a_running_job_whose_size_compiles_in_the_background_says_it_runs_at_the_stock_pace(page, queue, png_file):
    from app.views.job_panel import BACKGROUND_NOTE

    _running_elsewhere(queue, png_file, "ab" * 16, predicted={"compiles_in_background": True})
    at = page("generate")
    at.run()
    no_exception(at)
    assert BACKGROUND_NOTE in texts(at)


def test_the_queue_table_shows_a_running_job_as_running_with_prompt_model_and_size(page, queue, png_file):
    params = JobParams(model="tiny", prompt="a red kite", height=64, width=64, frames=8, steps=4)
    job = queue.submit(params, str(png_file), job_id="aa" * 16)
    queue.claim("w1", None, 10)
    queue.heartbeat(job.id, "w1", 10, Progress(stage="denoising_loop", step=2, total_steps=4, eta_s=3.0,
                                               elapsed_s=2.0))
    at = page("generate")
    at.run()
    table = at.dataframe[0].value
    row = table.iloc[0]
    assert (row["prompt"], row["model"], row["state"]) == ("a red kite", "tiny", "running")
    assert row["size"].startswith("64×64 · 8 fr")
    assert row["input"].startswith("data:image/png;base64,")
    assert "waiting for an engine worker" not in row["status"] and row["status"].startswith("step 2/4")
    assert "refreshes every 1 s while a job is queued or running" in texts(at)


def test_my_jobs_lists_only_what_this_session_submitted(page, queue, png_file):
    queue.submit(JobParams(model="tiny", prompt="someone else's", height=64, width=64, frames=8, steps=4),
                 str(png_file), job_id="bb" * 16)
    at = _ready(page("generate"), prompt="mine")
    at.button(key="gen_submit").click()
    at.run()
    assert len(at.dataframe[0].value) == 2
    at.session_state["q_scope"] = "my jobs"
    at.run()
    no_exception(at)
    assert list(at.dataframe[0].value["prompt"]) == ["mine"]


def test_the_queue_picker_does_not_default_to_an_old_ended_job(page, queue, png_file):
    job = queue.submit(JobParams(model="tiny", prompt="old", height=64, width=64, frames=8, steps=4),
                       str(png_file), job_id="cc" * 16)
    queue.cancel(job.id)
    at = page("generate")
    at.run()
    no_exception(at)
    assert at.selectbox(key="q_pick").value is None
    assert not [b for b in at.button if b.key == "q_cancel"]  # no row of disabled actions


def test_picking_a_job_in_the_queue_shows_it_in_the_job_panel(page, queue, png_file):
    ids = [queue.submit(JobParams(model="tiny", prompt=f"p{i}", height=64, width=64, frames=8, steps=4),
                        str(png_file), job_id=f"{i:02d}" * 16).id for i in range(2)]
    at = page("generate")
    at.run()
    assert "the next job to run" in texts(at) and f"`{ids[0][:8]}`" in texts(at)
    at.selectbox(key="q_pick").set_value(ids[1])
    at.run()
    at.button(key="q_follow").click()
    at.run()
    no_exception(at)
    assert f"Showing job `{ids[1][:8]}`" in texts(at)


def _running(eta_s: float, elapsed_s: float, progress_age_s: float, margin: float | None = None) -> tuple[Job, datetime]:
    now = datetime(2026, 1, 1, 12, 0, 10, tzinfo=timezone.utc)
    progress = Progress(stage="denoising_loop", step=2, total_steps=4, eta_s=eta_s, elapsed_s=elapsed_s)
    if margin is not None:
        progress.eta_margin_s = margin  # the engine's new field (issue 22), where it gives one
    job = Job(id="j", state="running", input_image="x.png", progress=progress,
              params=JobParams(model="tiny", prompt="p", height=64, width=64, frames=8, steps=4),
              started_at=now - timedelta(seconds=elapsed_s + progress_age_s + 1),
              progress_at=now - timedelta(seconds=progress_age_s))
    return job, now


def test_the_eta_is_shown_with_its_margin_when_the_engine_gives_one():
    assert fmt.eta(240, 20) == "about 4 min, ±20 s"
    job, now = _running(eta_s=240, elapsed_s=30, progress_age_s=0, margin=20)
    assert "ETA about 4 min, ±20 s" in progress_line(job, now)[1]


def test_the_eta_counts_down_between_progress_readings_and_stops_at_any_moment():
    job, now = _running(eta_s=10, elapsed_s=5, progress_age_s=3)
    assert "ETA about 7 s" in progress_line(job, now)[1]
    job, now = _running(eta_s=2, elapsed_s=5, progress_age_s=3)
    assert "ETA any moment" in progress_line(job, now)[1]


def test_elapsed_ticks_between_readings_and_never_goes_below_what_was_shown():
    job, now = _running(eta_s=10, elapsed_s=5, progress_age_s=3)
    assert "elapsed 9.0 s" in progress_line(job, now)[1]  # the wall time since the claim, 1 s before the clock
    assert "elapsed 20.0 s" in progress_line(job, now, elapsed_floor=20.0)[1]


def test_a_cancelled_job_s_timeline_omits_the_stages_it_never_reached():
    r = JobResult(stages={"model_load": 1.0, "denoising_loop": 2.0, "decode_video": 0.0, "export_video": 0.0})
    assert ran_stages(r) == {"model_load": 1.0, "denoising_loop": 2.0}
    r = JobResult(stages={"model_load": 1.0, "decode_video": 0.0}, failed_stage="decode_video")
    assert ran_stages(r) == {"model_load": 1.0, "decode_video": 0.0}


def test_a_prediction_says_where_it_comes_from_and_how_far_off_it_may_be():
    assert fmt.trust({"source": "calibration on NVIDIA H100", "expected_error": 0.12}) == \
        "±12%, from calibration on NVIDIA H100"
    assert fmt.trust({"time_source": "history"}) == "from history; expected error not known"


def test_the_generate_page_shows_the_prediction_s_trust(page):
    at = page("generate")
    at.run()
    assert any(c.value.startswith("How far to trust it: ") for c in at.caption)


def test_a_job_queued_behind_a_running_one_says_the_worker_is_busy():
    job, now = _running(eta_s=10, elapsed_s=5, progress_age_s=1)
    job.state, job.created_at = "queued", now - timedelta(seconds=4)
    assert progress_line(job, now, running_now=1)[1] == "queued 4.0 s ago · waiting for a free engine worker (1 job running)"
    assert progress_line(job, now)[1].endswith("waiting for an engine worker")


def test_a_job_no_worker_here_can_run_is_refused_with_the_reason_and_can_be_queued_anyway(page, monkeypatch, queue):
    import engine.intake.submission as submission

    class CannotRunHere(submission.PreflightRefused):  # the engine's refusal of what cannot run here (issue 22)
        pass

    real_submit = submission.submit

    def refusing(settings, q, raw, image, *, force=False, **kw):
        if not force:
            raise CannotRunHere("cannot run here: no engine worker serves a GPU; start one with a GPU", [],
                                {"seconds": 40.0, "source": "calibration on NVIDIA H100", "expected_error": 0.12})
        return real_submit(settings, q, raw, image, force=force, **kw)

    monkeypatch.setattr(submission, "submit", refusing)
    at = _ready(page("generate"))
    at.button(key="gen_submit").click()
    at.run()
    no_exception(at)
    assert any("cannot run here: no engine worker serves a GPU" in e.value for e in at.error)
    assert "±12%, from calibration on NVIDIA H100" in texts(at)
    assert at.checkbox(key="gen_force").label.startswith("Queue it anyway")
    assert queue.list() == []
    at.checkbox(key="gen_force").check()
    at.run()
    at.button(key="gen_submit").click()
    at.run()
    assert len(queue.list()) == 1
