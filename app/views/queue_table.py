"""The queue as a table — running jobs, the waiting ones in run order, the latest ended — and one row of
actions (move, cancel, show) on the job picked."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.views import formatting as fmt
from app.views.job_panel import largest_job_reserve, progress_line
from engine.queue import Job, JobQueue, QueueError
from engine.queue.models import CANCELLED, FAILED, FINAL_STATES, QUEUED, RUNNING, SUCCEEDED, JobState

SHOWN_QUEUED = (10, 50, 200)  # waiting jobs listed: the first choice unless asked
SHOWN_ENDED = 10
STATE_ICONS: dict[JobState, str] = {QUEUED: "⏳", RUNNING: "▶️", SUCCEEDED: "✅", FAILED: "❌", CANCELLED: "⏹️"}


def _act(action: str, queue: JobQueue, job_id: str, other: str | None = None) -> None:
    try:
        if action == "top":
            queue.move(job_id, to="top")
        elif action == "bottom":
            queue.move(job_id, to="bottom")
        elif action == "up" and other:
            queue.move(job_id, before=other)
        elif action == "cancel":
            st.session_state["queue_notice"] = queue.cancel(job_id).message
        elif action == "follow":
            st.session_state["gen_job_id"] = job_id
    except QueueError as exc:  # the job started or ended meanwhile
        st.session_state["queue_notice"] = str(exc)


def _describe(job: Job) -> str:
    p = job.params
    mode = "" if p.offload == "none" and not p.weights else f" · {fmt.memory_mode(p.offload, p.weights)}"
    return f"{p.model} · {fmt.resolution(p.height, p.width)} · {p.frames} fr · {p.steps} steps{mode}"


def _status(job: Job, largest_gpu_bytes: int | None = None) -> str:
    if not job.is_final:
        return progress_line(job, largest_gpu_bytes=largest_gpu_bytes)[1]
    return f"{job.state} {fmt.age(job.finished_at)}" + (
        f" · {job.error_kind}" if job.state == FAILED and job.error_kind else "")


def _table(running: list[Job], queued: list[Job], ended: list[Job], largest_gpu_bytes: int | None = None) -> pd.DataFrame:
    """`largest_gpu_bytes`: the largest reserve a serving worker takes (a waiting job predicted larger says so)."""
    rows = [(STATE_ICONS[RUNNING], job) for job in running]
    rows += [(f"{i + 1}.", job) for i, job in enumerate(queued)]
    rows += [(STATE_ICONS.get(job.state, "?"), job) for job in ended]
    return pd.DataFrame([{"": mark, "job": job.id[:8], "what": _describe(job),
                          "status": _status(job, largest_gpu_bytes)} for mark, job in rows])


def _actions(queue: JobQueue, running: list[Job], queued: list[Job], ended: list[Job], *, more_waiting: bool) -> None:
    """One row of actions on the job picked: a table plus one picker costs a rerun a handful of elements where
    a row of buttons per job cost ~15 each (with 20 sessions the page missed 2 s on that alone)."""
    jobs = {job.id: job for job in running + queued + ended}
    position = {job.id: i for i, job in enumerate(queued)}

    def label(job_id: str) -> str:  # not the job's place or state: a picked job's label would lag behind them
        return f"{job_id[:8]} · {_describe(jobs[job_id])}"

    cols = st.columns([4.4, 0.6, 0.6, 0.6, 0.6, 0.6], vertical_alignment="center")
    picked = cols[0].selectbox("Job", list(jobs), format_func=label, key="q_pick", label_visibility="collapsed")
    if picked is None:
        return
    job, i = jobs[picked], position.get(picked)
    previous = queued[i - 1].id if i else None
    last = i is not None and i == len(queued) - 1 and not more_waiting
    cols[1].button("", icon=":material/vertical_align_top:", key="q_top", help="move to the top", on_click=_act,
                   args=("top", queue, picked), disabled=i is None or i == 0)
    cols[2].button("", icon=":material/arrow_upward:", key="q_up", help="move up one", on_click=_act,
                   args=("up", queue, picked, previous), disabled=previous is None)
    cols[3].button("", icon=":material/vertical_align_bottom:", key="q_bottom", help="move to the bottom", on_click=_act,
                   args=("bottom", queue, picked), disabled=i is None or last)
    cols[4].button("", icon=":material/close:", key="q_cancel", help="cancel", on_click=_act, args=("cancel", queue, picked),
                   disabled=job.is_final or job.cancel_requested)
    cols[5].button("", icon=":material/visibility:", key="q_follow", help="show this job above", on_click=_act,
                   args=("follow", queue, picked))


def draw(queue: JobQueue) -> None:
    notice = st.session_state.pop("queue_notice", None)
    if notice:
        st.info(notice)
    running = queue.list(states=(RUNNING,), limit=20)
    limit = st.session_state.get("q_shown", SHOWN_QUEUED[0])
    queued = queue.list(states=(QUEUED,), limit=limit + 1)
    ended = queue.list(states=FINAL_STATES, limit=SHOWN_ENDED)
    if not (running or queued or ended):
        st.caption("The queue is empty: upload an image above and press Generate.")
        return
    shown = queued[:limit]
    largest = largest_job_reserve() if any(job.predicted.get("peak_reserved_bytes") for job in shown) else None
    st.dataframe(_table(running, shown, ended, largest), hide_index=True, use_container_width=True)
    if len(queued) > limit or limit != SHOWN_QUEUED[0]:
        waiting = queue.counts().get(QUEUED, len(queued))
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption(f"{waiting} waiting; the first {min(limit, waiting)} are shown.")
        c2.selectbox("Waiting jobs shown", SHOWN_QUEUED, key="q_shown", label_visibility="collapsed",
                     format_func=lambda n: f"show {n}")
    _actions(queue, running, shown, ended, more_waiting=len(queued) > limit)
