"""One job from submission to its end: a live progress bar with cancel, then its video, timings and scores."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from app.views import charts, formatting as fmt, resources, video
from app.views.frame import live_fragment
from collector import capacity
from engine.queue import Job, JobNotFound, JobQueue
from engine.queue.models import CANCELLED, COMPILING_DECODER_STAGE, COMPILING_STAGE, QUEUED, JobResult


def progress_line(job: Job, now: datetime | None = None, largest_gpu_bytes: int | None = None) -> tuple[float, str]:
    """(fraction done, 'step i/N · stage · elapsed · ETA') of a queued or running job. `largest_gpu_bytes`: the
    largest reserve a serving worker's GPU takes (a queued job predicted larger waits for a larger GPU's worker)."""
    now = now or datetime.now(timezone.utc)
    if job.state == QUEUED:
        need = job.predicted.get("peak_reserved_bytes")
        if largest_gpu_bytes is not None and need and need > largest_gpu_bytes and not job.predicted.get("forced"):
            return 0.0, (f"queued {fmt.age(job.created_at, now)} · waiting for a GPU that holds {fmt.gib(need, 1)}: "
                         f"the engine workers running now take up to {fmt.gib(largest_gpu_bytes, 1)} — start one on "
                         "a larger GPU, or cancel and submit smaller settings")
        return 0.0, f"queued {fmt.age(job.created_at, now)} · waiting for an engine worker"
    p = job.progress
    total = p.total_steps or job.params.steps
    elapsed = p.elapsed_s if p.elapsed_s is not None else (
        (now - job.started_at).total_seconds() if job.started_at else None)
    fraction = min(1.0, p.step / total) if total else 0.0
    stage = p.stage or "starting"
    if stage == COMPILING_STAGE:
        stage = "compiling the model for this resolution (once per machine: 2–3 min on an H100)"
    elif stage == COMPILING_DECODER_STAGE:
        stage = "compiling the VAE decoder for this resolution (once per machine: 15–30 s on an H200)"
    cancelling = " · cancelling…" if job.cancel_requested else ""
    return fraction, f"step {p.step}/{total} · {stage} · elapsed {fmt.seconds(elapsed)} · ETA {fmt.seconds(p.eta_s)}{cancelling}"


def largest_job_reserve() -> int | None:
    """The largest reserve a serving engine worker's GPU takes now (None: unknown), for `progress_line`."""
    current = resources.settings()
    return capacity.largest_job_reserve(resources.paths(current), current.engine.safety_margin_gib, settings=current)


def _cancel(queue: JobQueue, job_id: str) -> None:
    outcome = queue.cancel(job_id)
    st.session_state["job_panel_notice"] = outcome.message


def live_progress(queue: JobQueue, job_id: str) -> None:
    """The progress of a job not yet ended; reruns the whole page once it ends."""
    try:
        job = queue.get(job_id)
    except JobNotFound:
        st.info(f"Job {job_id} is no longer in the queue.")
        return
    if job.is_final:
        st.rerun()
    waits_on_size = job.state == QUEUED and job.predicted.get("peak_reserved_bytes")
    fraction, text = progress_line(job, largest_gpu_bytes=largest_job_reserve() if waits_on_size else None)
    st.progress(fraction, text=text)
    left, right = st.columns([4, 1])
    left.caption(f"job `{job.id}` · {job.model} · {fmt.resolution(job.params.height, job.params.width)} · "
                 f"{job.params.frames} frames · {job.params.steps} steps")
    right.button("Cancel job", key=f"cancel_{job.id}", on_click=_cancel, args=(queue, job.id),
                 disabled=job.cancel_requested)


def draw(queue: JobQueue, job_id: str) -> None:
    try:
        job = queue.get(job_id)
    except JobNotFound:
        st.info(f"Job {job_id} is no longer in the queue.")
        return
    notice = st.session_state.pop("job_panel_notice", None)
    if notice:
        st.toast(notice)
    if not job.is_final:
        live_fragment(live_progress, 1, queue, job_id)
        return
    result(job)


def result(job: Job) -> None:
    """A job that ended: its video, stage timings and quality, or why it did not finish."""
    r = JobResult.from_stored(job.result)
    stages = {k: v for k, v in r.stages.items() if v is not None}
    if job.succeeded:
        # The live bar may last be drawn short of the end (it refreshes once a second); close it.
        steps = len(r.step_times_s) or job.params.steps
        st.progress(1.0, text=f"step {steps}/{steps} · done · elapsed {fmt.seconds(r.total_s)}")
        st.success(f"Job `{job.id}` finished in {fmt.seconds(r.total_s)}.")
    elif job.state == CANCELLED:
        st.warning(f"Job `{job.id}` was cancelled: {job.error_message or job.cancel_reason or 'by request'}.")
    else:
        failed_in = r.failed_stage
        st.error(f"Job `{job.id}` failed{' in ' + failed_in if failed_in else ''}: "
                 f"{job.error_kind or 'error'} — {job.error_message or 'no message recorded'}")
    left, right = st.columns([3, 2])
    with left:
        if job.succeeded:
            video.play(r.video_path, smoke_test=bool(r.smoke_test))
        if stages:
            st.plotly_chart(charts.stage_timeline(stages, current=r.failed_stage), key=f"stages_{job.id}")
    with right:
        predicted = job.predicted or {}
        st.dataframe(pd.DataFrame([
            {"figure": "total time", "measured": fmt.seconds(r.total_s), "predicted": fmt.seconds(predicted.get("seconds"))},
            {"figure": "peak allocated", "measured": fmt.gib(r.peak_allocated_bytes),
             "predicted": fmt.gib(predicted.get("peak_allocated_bytes"))},
            {"figure": "peak reserved", "measured": fmt.gib(r.peak_reserved_bytes),
             "predicted": fmt.gib(predicted.get("peak_reserved_bytes"))},
        ]), hide_index=True)
        if stages:
            st.dataframe(pd.DataFrame([{"stage": k, "seconds": fmt.number(v, ".2f")} for k, v in stages.items()]),
                         hide_index=True)
        flat = video.flatten_report(r.quality)
        if flat:
            if flat.get("low_quality"):
                st.warning(f"Low quality: {video.reasons_text(flat.get('reasons'))}")
            st.dataframe(video.quality_frame(flat), hide_index=True)
        elif job.succeeded:
            st.caption("No quality scores (quality scoring is off or failed for this job).")
