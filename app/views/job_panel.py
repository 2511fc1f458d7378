"""One job from submission to its end: a live progress bar with cancel (and, for a mixture of experts, the expert
running), then its video, stage and step timings (each step's expert), peaks of GPU memory and host RAM, and scores."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from app.views import charts, energy, formatting as fmt, resources, speed_mode, video
from app.views.frame import live_fragment
from collector import capacity
from data.schemas import STAGES
from engine.queue import Job, JobNotFound, JobQueue
from engine.queue.models import (
    CANCELLED,
    COMPILING_DECODER_STAGE,
    COMPILING_STAGE,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    JobResult,
    expert_runs,
)
from engine.registry import MODELS

# A mixture of experts' denoisers in the order they run (Wan 2.2 A14B: `transformer` while the noise is high,
# then `transformer_2`).
EXPERT_ROLES = ("high-noise expert", "low-noise expert")
_AFTER_DENOISING = set(STAGES[STAGES.index("denoising_loop") + 1:])
LIVE_REFRESH_S = 1  # a job not yet ended
WATCH_REFRESH_S = 2  # an ended job shown while no other runs: how soon the panel notices one that starts


def expert_label(model: str, name: str | None) -> str | None:
    """'low-noise expert (transformer_2)' for a denoiser of a mixture of experts; the bare name for another
    model's; None for none."""
    if not name:
        return None
    spec = MODELS.get(model)
    if spec is not None and len(spec.denoisers) == len(EXPERT_ROLES) and name in spec.denoisers:
        return f"{EXPERT_ROLES[spec.denoisers.index(name)]} ({name})"
    return name


def elapsed_s(job: Job, now: datetime) -> float | None:
    """Seconds the job has run: the worker's own reading carried forward by the time since it wrote it (so the
    figure ticks between heartbeats), never less than the wall time since it was claimed; a job that ended, its
    run from claim to end."""
    p = job.progress
    wall_end = job.finished_at if job.is_final and job.finished_at else now
    wall = (wall_end - job.started_at).total_seconds() if job.started_at else None
    carried = None
    if p.elapsed_s is not None:
        since = (now - job.progress_at).total_seconds() if job.progress_at and not job.is_final else 0.0
        carried = p.elapsed_s + max(0.0, since)
    readings = [v for v in (wall, carried) if v is not None]
    return max(readings) if readings else None


def remaining_s(job: Job, now: datetime) -> float | None:
    """The worker's ETA counted down by the time since it was written (it is rewritten every step)."""
    p = job.progress
    if p.eta_s is None:
        return None
    since = (now - job.progress_at).total_seconds() if job.progress_at else 0.0
    return max(0.0, p.eta_s - max(0.0, since))


def progress_line(job: Job, now: datetime | None = None, largest_gpu_bytes: int | None = None,
                  elapsed_floor: float | None = None, running_now: int = 0) -> tuple[float, str]:
    """(fraction done, 'step i/N · stage · elapsed · ETA') of a queued or running job. `largest_gpu_bytes`: the
    largest reserve a serving worker's GPU takes (a queued job predicted larger waits for a larger GPU's worker);
    `elapsed_floor`: the elapsed time this screen showed last (the figure never goes backwards); `running_now`:
    jobs running now (a queued job waits for a worker to be free of them)."""
    now = now or datetime.now(timezone.utc)
    if job.state == QUEUED:
        need = job.predicted.get("peak_reserved_bytes")
        if largest_gpu_bytes is not None and need and need > largest_gpu_bytes and not job.predicted.get("forced"):
            return 0.0, (f"queued {fmt.age(job.created_at, now)} · waiting for a GPU that holds {fmt.gib(need, 1)}: "
                         f"the engine workers running now take up to {fmt.gib(largest_gpu_bytes, 1)} — start one on "
                         "a larger GPU, or cancel and submit smaller settings")
        if running_now:
            return 0.0, (f"queued {fmt.age(job.created_at, now)} · waiting for a free engine worker ({running_now} "
                         f"job{'s' if running_now > 1 else ''} running)")
        return 0.0, f"queued {fmt.age(job.created_at, now)} · waiting for an engine worker"
    p = job.progress
    total = p.total_steps or job.params.steps
    elapsed = elapsed_s(job, now)
    if elapsed_floor is not None:
        elapsed = max(elapsed or 0.0, elapsed_floor)
    fraction = min(1.0, p.step / total) if total else 0.0
    stage = p.stage or "starting"
    if stage == COMPILING_STAGE:
        stage = "compiling the model for this resolution (once per machine: 2–3 min on an H100)"
    elif stage == COMPILING_DECODER_STAGE:
        stage = "compiling the VAE decoder for this resolution (once per machine: 15–30 s on an H200)"
    cancelling = " · cancelling…" if job.cancel_requested else ""
    expert = expert_label(job.params.model, p.expert) if p.stage not in _AFTER_DENOISING else None
    running = f" · ▶ {expert}" if expert else ""
    margin = getattr(p, "eta_margin_s", None)  # the engine's uncertainty, where it gives one
    return fraction, (f"step {p.step}/{total} · {stage}{running} · elapsed {fmt.seconds(elapsed)} · "
                      f"ETA {fmt.eta(remaining_s(job, now), margin)}{cancelling}")


def _floor(job_id: str, elapsed: float | None) -> float | None:
    """The largest elapsed time this session has shown for the job, raised to `elapsed`."""
    shown = st.session_state.setdefault("job_elapsed_shown", {})
    if elapsed is not None:
        shown[job_id] = max(elapsed, shown.get(job_id, 0.0))
    return shown.get(job_id)


def largest_job_reserve() -> int | None:
    """The largest reserve a serving engine worker's GPU takes now (None: unknown), for `progress_line`."""
    current = resources.settings()
    return capacity.largest_job_reserve(resources.paths(current), current.engine.safety_margin_gib, settings=current)


def _cancel(queue: JobQueue, job_id: str) -> None:
    outcome = queue.cancel(job_id)
    st.session_state["job_panel_notice"] = outcome.message


def follow(job_id: str | None, *, mine: bool = False) -> None:
    """Show `job_id` in the job panel (None: follow the running job again); `mine`: this session submitted it."""
    ss = st.session_state
    ss["gen_job_id"] = job_id
    if mine and job_id:
        ss.setdefault("gen_my_jobs", [])
        if job_id not in ss["gen_my_jobs"]:
            ss["gen_my_jobs"].append(job_id)


def my_jobs() -> list[str]:
    """The jobs this browser session submitted, oldest first."""
    return list(st.session_state.get("gen_my_jobs", []))


def shown_job(queue: JobQueue) -> tuple[Job | None, str]:
    """The job the panel shows and why: the one picked (or submitted here), else the running job, else the next
    to run, else the latest that ended."""
    picked = st.session_state.get("gen_job_id")
    if picked:
        try:
            return queue.get(picked), "picked"
        except JobNotFound:
            st.session_state["gen_job_id"] = None
    for states, why in (((RUNNING,), "follow"), ((QUEUED,), "next"), (FINAL_STATES, "ended")):
        jobs = queue.list(states=states, limit=1)
        if jobs:
            return jobs[0], why
    return None, "none"


_WHY = {"follow": "following the running job", "next": "the next job to run (none is running)",
        "ended": "the latest job that ended (none is running or waiting)"}


def section(queue: JobQueue) -> None:
    """The 'Job' section of Generate: the job picked, or the one running — refreshed on its own."""
    job, why = shown_job(queue)
    if job is None:
        return
    st.subheader("Job")
    left, right = st.columns([4, 1], vertical_alignment="center")
    if why == "picked":
        mine = " (submitted here)" if job.id in my_jobs() else ""
        left.caption(f"Showing job `{job.id[:8]}`{mine}, as picked. Pick another in the queue below.")
        right.button("Follow the running job", key="job_follow_running", on_click=follow, args=(None,))
    else:
        left.caption(f"Showing `{job.id[:8]}`: {_WHY[why]}. Pick another in the queue below.")
    st.caption(f"**Parameters:** {job_summary(job)}")
    draw(queue, job.id, watch=why != "picked")


def job_summary(job: Job) -> str:
    from app.views.param_checks import summary

    prompt = job.params.prompt.strip()
    shown = f" · “{prompt[:80]}{'…' if len(prompt) > 80 else ''}”" if prompt else ""
    return summary(job.params) + shown


def _moved_on(queue: JobQueue, job_id: str) -> bool:
    """Whether the panel, following the running job, should now show another one."""
    job, why = shown_job(queue)
    return job is not None and job.id != job_id


def live_progress(queue: JobQueue, job_id: str, watch: bool = False) -> None:
    """The progress of a job not yet ended, with how fresh it is; reruns the whole page once it ends (or, when
    following the running job, once another one runs)."""
    try:
        job = queue.get(job_id)
    except JobNotFound:
        st.info(f"Job {job_id} is no longer in the queue.")
        return
    if job.is_final or (watch and _moved_on(queue, job_id)):
        st.rerun()
    now = datetime.now(timezone.utc)
    waits_on_size = job.state == QUEUED and job.predicted.get("peak_reserved_bytes")
    floor = _floor(job.id, elapsed_s(job, now)) if job.state != QUEUED else None
    running_now = len(queue.list(states=(RUNNING,), limit=50)) if job.state == QUEUED else 0
    fraction, text = progress_line(job, now, largest_gpu_bytes=largest_job_reserve() if waits_on_size else None,
                                   elapsed_floor=floor, running_now=running_now)
    st.progress(fraction, text=text)
    left, right = st.columns([4, 1])
    fresh = (f" · progress updated {fmt.age(job.progress_at, now)}" if job.progress_at and job.state == RUNNING
             else "")
    left.caption(f"job `{job.id}` · {job.state}{fresh} · refreshed every {LIVE_REFRESH_S} s")
    if job.predicted.get("compiles_in_background"):
        left.caption(BACKGROUND_NOTE)
    right.button("Cancel job", key=f"cancel_{job.id}", on_click=_cancel, args=(queue, job.id),
                 disabled=job.cancel_requested)


# A job whose size speed mode had not compiled here when it was submitted (engine.speed.background_compile).
BACKGROUND_NOTE = ("Speed mode had not compiled this size on this machine when the job was queued: it runs uncompiled, "
                   "at the stock pace, while another process compiles the size; the next job at it runs compiled.")


def watch_ended(queue: JobQueue, job_id: str) -> None:
    """While the panel shows an ended job it was not asked for: rerun the page once another job runs."""
    if _moved_on(queue, job_id):
        st.rerun()


def draw(queue: JobQueue, job_id: str, watch: bool = False) -> None:
    try:
        job = queue.get(job_id)
    except JobNotFound:
        st.info(f"Job {job_id} is no longer in the queue.")
        return
    notice = st.session_state.pop("job_panel_notice", None)
    if notice:
        st.toast(notice)
    if not job.is_final:
        live_fragment(live_progress, LIVE_REFRESH_S, queue, job_id, watch)
        return
    if watch:
        live_fragment(watch_ended, WATCH_REFRESH_S, queue, job_id)
    result(job)


def result(job: Job) -> None:
    """A job that ended: its video, stage timings and quality, or why it did not finish."""
    r = JobResult.from_stored(job.result)
    stages = ran_stages(r, finished=job.succeeded)
    elapsed = _floor(job.id, elapsed_s(job, datetime.now(timezone.utc)))
    if job.succeeded:
        # The live bar may last be drawn short of the end (it refreshes once a second); close it. Elapsed is the
        # job's whole run, as the live bar counted it, so it never goes backwards at the end.
        steps = len(r.step_times_s) or job.params.steps
        st.progress(1.0, text=f"step {steps}/{steps} · done · elapsed {fmt.seconds(elapsed)} · ETA 0 s")
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
        speed = speed_text(job, r)
        if speed:
            st.caption(speed)
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
        energy.job_energy(job, r)
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


def speed_text(job: Job, r: JobResult) -> str | None:
    """How the job's speed mode went: its label, how it had its compiled code, the quality trades it asked for and
    the parts that did not apply. `compile_state` and `speed_fallbacks` are the run record's; a result that does not
    carry them (a worker older than them) leaves them out."""
    return speed_mode.run_speed_text(r.speed_mode, getattr(r, "compile_state", None),
                                     getattr(r, "speed_fallbacks", None), job.params.speed_trades)


def ran_stages(r: JobResult, *, finished: bool = False) -> dict[str, float]:
    """The stages the job reached: those of a cancelled or failed job after the one it stopped in never ran
    (the worker may record them as 0.00 s), nor do the zero-second ones it never got to."""
    stages = {k: v for k, v in r.stages.items() if v is not None}
    if finished:
        return stages
    if r.failed_stage in STAGES:
        last = STAGES.index(r.failed_stage)
        stages = {k: v for k, v in stages.items() if k not in STAGES or STAGES.index(k) <= last}
    ordered = sorted(stages, key=lambda k: STAGES.index(k) if k in STAGES else len(STAGES))
    while ordered and ordered[-1] != r.failed_stage and stages[ordered[-1]] < 0.005:
        stages.pop(ordered.pop())
    return stages


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
