"""The queue as a table: waiting jobs in run order with move and cancel, running jobs, the latest ended."""

from __future__ import annotations

import streamlit as st

from app.views import formatting as fmt
from app.views.job_panel import progress_line
from engine.queue import Job, JobQueue, QueueError

SHOWN_QUEUED = (10, 50, 200)  # waiting jobs listed: the first choice unless asked (each row is ~20 elements)
SHOWN_ENDED = 10
STATE_ICONS = {"queued": "⏳", "running": "▶️", "succeeded": "✅", "failed": "❌", "cancelled": "⏹️"}


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
    return f"{p.model} · {fmt.resolution(p.height, p.width)} · {p.frames} fr · {p.steps} steps"


def _row(queue: JobQueue, job: Job, *, position: int | None, previous: str | None, last: bool) -> None:
    cols = st.columns([0.4, 1.2, 2.6, 3.0, 0.6, 0.6, 0.6, 0.6, 0.6], vertical_alignment="center")
    cols[0].write(STATE_ICONS.get(job.state, "?") if position is None else f"{position}.")
    cols[1].markdown(f"`{job.id[:8]}`")
    cols[2].write(_describe(job))
    if job.state in ("queued", "running"):
        cols[3].caption(progress_line(job)[1])
    else:
        cols[3].caption(f"{job.state} {fmt.age(job.finished_at)}"
                        + (f" · {job.error_kind}" if job.state == "failed" and job.error_kind else ""))
    key = job.id
    if job.state == "queued":
        cols[4].button("", icon=":material/vertical_align_top:", key=f"q_top_{key}", help="move to the top", on_click=_act, args=("top", queue, job.id),
                       disabled=position == 1)
        cols[5].button("", icon=":material/arrow_upward:", key=f"q_up_{key}", help="move up one", on_click=_act, args=("up", queue, job.id, previous),
                       disabled=previous is None)
        cols[6].button("", icon=":material/vertical_align_bottom:", key=f"q_bottom_{key}", help="move to the bottom", on_click=_act,
                       args=("bottom", queue, job.id), disabled=last)
    if job.state in ("queued", "running"):
        cols[7].button("", icon=":material/close:", key=f"q_cancel_{key}", help="cancel", on_click=_act, args=("cancel", queue, job.id),
                       disabled=job.cancel_requested)
    cols[8].button("", icon=":material/visibility:", key=f"q_follow_{key}", help="show this job above", on_click=_act, args=("follow", queue, job.id))


def draw(queue: JobQueue) -> None:
    notice = st.session_state.pop("queue_notice", None)
    if notice:
        st.info(notice)
    running = queue.list(states=("running",), limit=20)
    limit = st.session_state.get("q_shown", SHOWN_QUEUED[0])
    queued = queue.list(states=("queued",), limit=limit + 1)
    ended = queue.list(states=("succeeded", "failed", "cancelled"), limit=SHOWN_ENDED)
    if not (running or queued or ended):
        st.caption("The queue is empty: upload an image above and press Generate.")
        return
    for job in running:
        _row(queue, job, position=None, previous=None, last=True)
    shown = queued[:limit]
    for i, job in enumerate(shown):
        _row(queue, job, position=i + 1, previous=shown[i - 1].id if i else None, last=i == len(queued) - 1)
    if len(queued) > limit or limit != SHOWN_QUEUED[0]:
        waiting = queue.counts().get("queued", len(queued))
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption(f"{waiting} waiting; the first {min(limit, waiting)} are shown.")
        c2.selectbox("Waiting jobs shown", SHOWN_QUEUED, key="q_shown", label_visibility="collapsed",
                     format_func=lambda n: f"show {n}")
    if ended:
        st.caption("Latest ended")
        for job in ended:
            _row(queue, job, position=None, previous=None, last=True)
