"""The queue as a table — running jobs, the waiting ones in run order, the latest ended — each row with its
prompt, input thumbnail, model, size, state and ETA; picking a row shows that job in the job panel; one row of
actions (move, cancel, show) on the job picked. It refreshes on its own: every second while a job is queued or
running, now and then while the queue is idle (a job submitted elsewhere shows up)."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import streamlit as st

from app.views import formatting as fmt
from app.views.frame import live_fragment
from app.views.job_panel import follow, largest_job_reserve, my_jobs, progress_line, remaining_s
from engine.queue import Job, JobNotFound, JobQueue, QueueError
from engine.queue.models import CANCELLED, FAILED, FINAL_STATES, QUEUED, RUNNING, SUCCEEDED, JobState

SHOWN_QUEUED = (10, 50, 200)  # waiting jobs listed: the first choice unless asked
SHOWN_ENDED = 10
STATE_ICONS: dict[JobState, str] = {QUEUED: "⏳", RUNNING: "▶️", SUCCEEDED: "✅", FAILED: "❌", CANCELLED: "⏹️"}
ACTIVE_REFRESH_S = 1  # a job is queued or running
IDLE_REFRESH_S = 3  # none is: to notice soon a job submitted from elsewhere (the CLI, the API)
THUMB_SIDE = 48
SCOPES = ("all jobs", "my jobs")  # everyone's, or this browser session's submissions


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
            follow(job_id)
            st.session_state["q_show_picked"] = True
    except QueueError as exc:  # the job started or ended meanwhile
        st.session_state["queue_notice"] = str(exc)


def _describe(job: Job) -> str:
    p = job.params
    mode = "" if p.offload == "none" and not p.weights else f" · {fmt.memory_mode(p.offload, p.weights)}"
    return f"{p.model} · {fmt.resolution(p.height, p.width)} · {p.frames} fr · {p.steps} steps{mode}"


def _status(job: Job, largest_gpu_bytes: int | None = None, now: datetime | None = None, running_now: int = 0) -> str:
    if not job.is_final:
        return progress_line(job, now, largest_gpu_bytes=largest_gpu_bytes, running_now=running_now)[1]
    return f"{job.state} {fmt.age(job.finished_at, now)}" + (
        f" · {job.error_kind}" if job.state == FAILED and job.error_kind else "")


@st.cache_data(max_entries=512, show_spinner=False)
def thumbnail(path: str) -> str | None:
    """The input image as a small PNG data URI for the table's image column (None: it is gone)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="PNG")
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _eta(job: Job, now: datetime) -> str:
    if job.is_final:
        return "—"
    if job.state == QUEUED:
        seconds, error = job.predicted.get("seconds"), job.predicted.get("expected_error")
        if not seconds:
            return fmt.NA
        return fmt.eta(seconds, seconds * error if error else None) + " (predicted)"
    return fmt.eta(remaining_s(job, now), getattr(job.progress, "eta_margin_s", None))


def _table(running: list[Job], queued: list[Job], ended: list[Job], largest_gpu_bytes: int | None = None,
           now: datetime | None = None) -> pd.DataFrame:
    """`largest_gpu_bytes`: the largest reserve a serving worker takes (a waiting job predicted larger says so)."""
    now = now or datetime.now(timezone.utc)
    rows = [(STATE_ICONS[RUNNING], job) for job in running]
    rows += [(f"{i + 1}.", job) for i, job in enumerate(queued)]
    rows += [(STATE_ICONS.get(job.state, "?"), job) for job in ended]
    mine = set(my_jobs()) if st.runtime.exists() else set()
    return pd.DataFrame([{
        "": mark, "input": thumbnail(job.input_image) if Path(job.input_image).is_file() else None,
        "prompt": job.params.prompt or "(no prompt)", "model": job.params.model,
        "size": f"{fmt.resolution(job.params.height, job.params.width)} · {job.params.frames} fr · "
                f"{job.params.steps} steps", "state": job.state, "ETA": _eta(job, now),
        "status": _status(job, largest_gpu_bytes, now, len(running)), "job": job.id[:8] + (" · mine" if job.id in mine else ""),
        "id": job.id} for mark, job in rows],
        columns=["", "input", "prompt", "model", "size", "state", "ETA", "status", "job", "id"])


def _actions(queue: JobQueue, running: list[Job], queued: list[Job], ended: list[Job], *, more_waiting: bool) -> None:
    """One row of actions on the job picked: a table plus one picker costs a rerun a handful of elements where
    a row of buttons per job cost ~15 each (with 20 sessions the page missed 2 s on that alone). The picker
    starts on the job the panel shows (or on none), never on an old ended job with every action disabled."""
    jobs = {job.id: job for job in running + queued + ended}
    position = {job.id: i for i, job in enumerate(queued)}

    def label(job_id: str) -> str:  # not the job's place or state: a picked job's label would lag behind them
        return f"{job_id[:8]} · {_describe(jobs[job_id])}"

    ss = st.session_state
    if ss.get("q_pick") not in jobs:
        shown = ss.get("gen_job_id")
        ss["q_pick"] = shown if shown in jobs else None
    cols = st.columns([4.4, 0.6, 0.6, 0.6, 0.6, 0.6], vertical_alignment="center")
    picked = cols[0].selectbox("Job", list(jobs), format_func=label, key="q_pick", label_visibility="collapsed",
                               index=None, placeholder="pick a job to move, cancel or show…")
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


def _on_row_picked(ids: list[str]) -> None:
    """A row picked in the table: the job panel shows that job (the page reruns, the panel above included)."""
    rows = st.session_state.get("q_table", {}).get("selection", {}).get("rows", [])
    if rows and rows[0] < len(ids):
        follow(ids[rows[0]])
        st.session_state["q_pick"] = ids[rows[0]]
        st.session_state["q_show_picked"] = True


def _rows(queue: JobQueue, scope: str, limit: int) -> tuple[list[Job], list[Job], list[Job], bool]:
    """(running, queued (at most `limit`), ended, more waiting) — of this session's jobs only for 'my jobs'."""
    if scope == SCOPES[1]:
        jobs = []
        for job_id in reversed(my_jobs()[-200:]):
            try:
                jobs.append(queue.get(job_id))
            except JobNotFound:
                continue
        queued = [j for j in jobs if j.state == QUEUED]
        queued.sort(key=lambda j: (-j.priority, j.position))
        ended = [j for j in jobs if j.is_final][:SHOWN_ENDED]
        return [j for j in jobs if j.state == RUNNING], queued[:limit], ended, len(queued) > limit
    running = queue.list(states=(RUNNING,), limit=20)
    queued = queue.list(states=(QUEUED,), limit=limit + 1)
    ended = queue.list(states=FINAL_STATES, limit=SHOWN_ENDED)
    return running, queued[:limit], ended, len(queued) > limit


def _busy(queue: JobQueue) -> bool:
    """Whether any job, anyone's, is queued or running."""
    return bool(queue.list(states=(RUNNING,), limit=1) or queue.list(states=(QUEUED,), limit=1))


def table(queue: JobQueue, refresh_s: float) -> None:
    """The table and its actions, as of now; reruns the page when the queue goes from idle to busy or back (the
    refresh rate changes with it)."""
    if st.session_state.pop("q_show_picked", False):  # a row or 👁 picked: the panel above shows it
        st.rerun()
    scope = st.session_state.get("q_scope") or SCOPES[0]
    limit = st.session_state.get("q_shown", SHOWN_QUEUED[0])
    running, shown, ended, more = _rows(queue, scope, limit)
    busy = bool(running or shown) if scope == SCOPES[0] else _busy(queue)
    if (refresh_s == ACTIVE_REFRESH_S) != busy:
        st.rerun()
    now = datetime.now(timezone.utc)
    if not (running or shown or ended):
        st.caption("No job submitted from this browser session yet." if scope == SCOPES[1] else
                   "The queue is empty: upload an image above and press Generate.")
        return
    largest = largest_job_reserve() if any(job.predicted.get("peak_reserved_bytes") for job in shown) else None
    frame = _table(running, shown, ended, largest, now)
    ids = list(frame.pop("id"))
    st.dataframe(frame, hide_index=True, use_container_width=True, key="q_table", on_select=lambda: _on_row_picked(ids),
                 selection_mode="single-row", row_height=THUMB_SIDE + 8,
                 column_config={"input": st.column_config.ImageColumn("input", width="small"),
                                "prompt": st.column_config.TextColumn("prompt", width="medium"),
                                "status": st.column_config.TextColumn("status", width="large")})
    st.caption(f"Updated {now.astimezone().strftime('%H:%M:%S')} — "
               + (f"refreshes every {ACTIVE_REFRESH_S} s while a job is queued or running."
                  if busy else f"refreshes every {IDLE_REFRESH_S} s while the queue is idle.")
               + " Pick a row to show that job above.")
    if more or limit != SHOWN_QUEUED[0]:
        waiting = queue.counts().get(QUEUED, len(shown))
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption(f"{waiting} waiting; the first {min(limit, waiting)} are shown.")
        c2.selectbox("Waiting jobs shown", SHOWN_QUEUED, key="q_shown", label_visibility="collapsed",
                     format_func=lambda n: f"show {n}")
    _actions(queue, running, shown, ended, more_waiting=more)


def draw(queue: JobQueue) -> None:
    notice = st.session_state.pop("queue_notice", None)
    if notice:
        st.info(notice)
    st.segmented_control("Jobs", SCOPES, key="q_scope", default=SCOPES[0], label_visibility="collapsed",
                         help="all jobs: everyone's; my jobs: those submitted from this browser session")
    refresh = ACTIVE_REFRESH_S if _busy(queue) else IDLE_REFRESH_S
    live_fragment(table, refresh, queue, refresh)
