"""One job from submission to its end: a live progress bar with cancel (and, for a mixture of experts, the expert
running), then its video, stage and step timings (each step's expert), peaks of GPU memory and host RAM, and scores."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from app.views import charts, formatting as fmt, resources, video
from app.views.frame import live_fragment
from collector import capacity
from data.schemas import STAGES
from engine.queue import Job, JobNotFound, JobQueue
from engine.queue.models import CANCELLED, COMPILING_DECODER_STAGE, COMPILING_STAGE, QUEUED, JobResult, expert_runs
from engine.registry import MODELS

# A mixture of experts' denoisers in the order they run (Wan 2.2 A14B: `transformer` while the noise is high,
# then `transformer_2`).
EXPERT_ROLES = ("high-noise expert", "low-noise expert")
_AFTER_DENOISING = set(STAGES[STAGES.index("denoising_loop") + 1:])


def expert_label(model: str, name: str | None) -> str | None:
    """'low-noise expert (transformer_2)' for a denoiser of a mixture of experts; the bare name for another
    model's; None for none."""
    if not name:
        return None
    spec = MODELS.get(model)
    if spec is not None and len(spec.denoisers) == len(EXPERT_ROLES) and name in spec.denoisers:
        return f"{EXPERT_ROLES[spec.denoisers.index(name)]} ({name})"
    return name


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
    expert = expert_label(job.params.model, p.expert) if p.stage not in _AFTER_DENOISING else None
    running = f" · ▶ {expert}" if expert else ""
    return fraction, (f"step {p.step}/{total} · {stage}{running} · elapsed {fmt.seconds(elapsed)} · "
                      f"ETA {fmt.seconds(p.eta_s)}{cancelling}")


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
                 f"{job.params.frames} frames · {job.params.steps} steps · "
                 f"{fmt.memory_mode(job.params.offload, job.params.weights)}")
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
            video.play(r.video_path, smoke_test=bool(r.smoke_test), audio_duration_s=r.audio_duration_s if r.has_audio else None)
        if stages:
            st.plotly_chart(charts.stage_timeline(stages, current=r.failed_stage), key=f"stages_{job.id}")
        step_timeline(job, r)
    with right:
        predicted = job.predicted or {}
        st.caption(f"{job.model} · {fmt.resolution(job.params.height, job.params.width)} · {job.params.frames} "
                   f"frames · {job.params.steps} steps · {fmt.memory_mode(job.params.offload, job.params.weights)}")
        st.dataframe(pd.DataFrame([
            {"figure": "total time", "measured": fmt.seconds(r.total_s), "predicted": fmt.seconds(predicted.get("seconds"))},
            {"figure": "peak allocated", "measured": fmt.gib(r.peak_allocated_bytes),
             "predicted": fmt.gib(predicted.get("peak_allocated_bytes"))},
            {"figure": "peak reserved", "measured": fmt.gib(r.peak_reserved_bytes),
             "predicted": fmt.gib(predicted.get("peak_reserved_bytes"))},
            {"figure": "peak host RAM", "measured": fmt.gib(r.peak_host_rss_bytes),
             "predicted": fmt.gib(predicted.get("host_peak_bytes"))},
            *([{"figure": "pinned host RAM", "measured": fmt.gib(r.host_pinned_bytes), "predicted": fmt.NA}]
              if r.host_pinned_bytes else []),
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


def step_timeline(job: Job, r: JobResult) -> None:
    """Each denoising step's seconds; for a mixture of experts each step's expert and where it switched."""
    if not r.step_times_s:
        return
    experts = list(r.step_experts[:len(r.step_times_s)])
    moe = len(set(experts)) > 1 or (job.params.model in MODELS and len(MODELS[job.params.model].denoisers) > 1)
    runs = expert_runs(experts) if moe and experts else []
    switch_after = runs[0][2] if len(runs) > 1 else None
    switched_to = expert_label(job.params.model, runs[1][0]) if switch_after is not None else None
    switch_label = f"→ {switched_to}" if switched_to else ""
    groups = [expert_label(job.params.model, name) or "" for name in experts] if runs else None
    st.plotly_chart(charts.step_timeline(r.step_times_s, groups, switch_after=switch_after, switch_label=switch_label),
                    key=f"steps_{job.id}")
    if runs:
        text = "; ".join(f"step{'s' if last > first else ''} {first}{f'–{last}' if last > first else ''}: "
                         f"{expert_label(job.params.model, name)}" for name, first, last in runs)
        switch = f" — switched to the {switched_to} after step {switch_after}" if switched_to else " — no switch"
        st.caption(f"Experts: {text}{switch}.")
