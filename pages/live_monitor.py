"""Live monitor: every GPU's utilisation, memory, temperature, power and clocks, and every host's CPU, RAM, load,
free disk and the collector's own cost, over the window chosen, refreshed every second in place; the GPU
processes; the alerts firing now; the running job's stages (and, for a mixture of experts, the expert running),
and apart from it the last job that ended."""

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.views import charts, formatting as fmt, resources
from app.views.disk_usage import disk_usage_panel
from app.views.external_runs import external_runs_table
from app.views.frame import alert_banner, guarded, live_fragment
from app.views.job_panel import expert_label, progress_line, ran_stages
from app.views.notifications import notifications_panel
from app.views.status import START_COLLECTOR, collector_status
from data import live
from data.paths import DataPaths
from data.schemas import STAGES
from engine.queue import QueueError
from engine.queue.models import FINAL_STATES, RUNNING, JobResult

REFRESH_S = 1
CHART_FIELDS = charts.GPU_FIELDS


@st.cache_data(ttl=15, show_spinner=False)
def _history(root: str, minutes: int) -> pd.DataFrame:
    """Samples older than the live file holds, for windows longer than it (cached: they do not change)."""
    now = datetime.now(timezone.utc)
    table = resources._store(root).gpu_samples(now - timedelta(minutes=minutes), now, fields=CHART_FIELDS)
    return charts.gpu_frame(table)


def samples(paths: DataPaths, minutes: int, live_window_s: int, now: datetime) -> pd.DataFrame:
    """The window's GPU samples: the live file, and the history before it where the window is longer."""
    recent = live.read_recent(paths)
    frame = charts.gpu_frame(recent) if recent is not None else pd.DataFrame()
    if minutes * 60 > live_window_s:
        older = _history(str(paths.root), minutes)
        if not older.empty:
            if not frame.empty:
                older = older[older["ts"] < frame["ts"].min()]
            frame = pd.concat([older, frame], ignore_index=True) if not frame.empty else older
    if frame.empty:
        return frame
    return frame[frame["ts"] >= pd.Timestamp(now - timedelta(minutes=minutes))]


@st.cache_resource(ttl=5, max_entries=16, show_spinner=False)
def _gpu_charts(root: str, minutes: int, second: int, written: tuple, live_window_s: int,
                max_gap_s: float) -> list[tuple[str, go.Figure]]:
    """(key, figure) of every GPU over the window ending at `second`: built once for all the sessions that
    refresh in that second with the same live files (`written`: their modification times), not once each."""
    now = datetime.fromtimestamp(second, timezone.utc)
    frame = samples(DataPaths(Path(root)), minutes, live_window_s, now)
    if frame.empty:
        return []
    x_range = (now - timedelta(minutes=minutes), now)
    out = []
    for (host, gpu_index), gpu in frame.groupby(["host", "gpu_index"], sort=True):
        name = gpu["gpu_name"].dropna().iloc[-1] if gpu["gpu_name"].notna().any() else "GPU"
        out.append((f"live_{host}_{gpu_index}", charts.gpu_timeline(
            gpu, max_gap_s=max_gap_s, title=f"{host} · GPU {gpu_index} · {name}", x_range=x_range)))
    return out


def _written(paths: DataPaths) -> tuple:
    """The live sample files and when each was last written: a new sample makes a new cache key at once."""
    out = []
    for path in sorted(paths.live_dir.glob("*-recent.arrow")):
        try:
            out.append((path.name, path.stat().st_mtime_ns))
        except FileNotFoundError:  # replaced between the listing and the stat
            continue
    return tuple(out)


def host_samples(paths: DataPaths, minutes: int, now: datetime, snapshots: list[live.LiveSnapshot]) -> pd.DataFrame:
    """The window's host samples: the history the collector has flushed, and each host's live snapshot after it
    (the history lags by the collector's flush interval)."""
    table = resources._store(str(paths.root)).host_samples(now - timedelta(minutes=minutes), now)
    frame = table.to_pandas() if table.num_rows else pd.DataFrame()
    latest = [dataclasses.asdict(s.host) for s in snapshots]
    if latest:
        extra = pd.DataFrame(latest)
        extra["ts"] = pd.to_datetime(extra["ts"], utc=True)
        if not frame.empty:
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
            newest = frame.groupby("host")["ts"].max()
            extra = extra[[ts > newest.get(host, pd.Timestamp.min.tz_localize("UTC"))
                           for host, ts in zip(extra["host"], extra["ts"])]]
        frame = pd.concat([frame, extra], ignore_index=True) if not frame.empty else extra
    if frame.empty:
        return frame
    frame = frame[frame["ts"] >= pd.Timestamp(now - timedelta(minutes=minutes))]
    return charts.host_frame(frame)


@st.cache_resource(ttl=5, max_entries=16, show_spinner=False)
def _host_charts(root: str, minutes: int, second: int, written: tuple, max_gap_s: float) -> list[tuple[str, go.Figure]]:
    """(key, figure) of every host over the window ending at `second`, built once for the sessions that refresh
    in that second (`written`: the live snapshots' modification times)."""
    now = datetime.fromtimestamp(second, timezone.utc)
    paths = DataPaths(Path(root))
    frame = host_samples(paths, minutes, now, live.read_snapshots(paths))
    if frame.empty:
        return []
    x_range = (now - timedelta(minutes=minutes), now)
    return [(f"live_host_{host}", charts.host_timeline(rows, max_gap_s=max_gap_s, x_range=x_range,
                                                       title=f"{host} · host over the last {minutes} min"))
            for host, rows in frame.groupby("host", sort=True)]


def _snapshots_written(paths: DataPaths) -> tuple:
    out = []
    for path in sorted(paths.live_dir.glob("*.json")):
        try:
            out.append((path.name, path.stat().st_mtime_ns))
        except FileNotFoundError:
            continue
    return tuple(out)


def host_row(snapshots: list[live.LiveSnapshot]) -> None:
    for snap in snapshots:
        h = snap.host
        cols = st.columns(5)
        cols[0].metric(f"{h.host} CPU", fmt.percent(h.cpu_percent))
        cols[1].metric(f"RAM (of {fmt.gib(h.ram_total_bytes, 0)})", fmt.gib(h.ram_used_bytes, 1))
        cols[2].metric("Load (1 min)", fmt.number(h.load_1, ".2f"))
        cols[3].metric("Disk free", fmt.gib(h.disk_free_bytes, 1))
        cols[4].metric("GPUs", f"{h.gpu_count}" + ("" if h.gpu_status == "ok" else " (off)"),
                       help=None if h.gpu_status == "ok" else h.gpu_status)


def process_table(snapshots: list[live.LiveSnapshot]) -> None:
    rows = [{"host": p.host, "GPU": p.gpu_index, "pid": p.pid, "process": p.process_name or fmt.NA,
             "GPU memory": fmt.gib(p.used_memory_bytes)}
            for s in snapshots for p in s.processes]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption("No process is using a GPU.")


def stage_strip(current: str | None) -> str:
    """✓ for the stages before the current one, ▶ for it, · for those still to come."""
    index = STAGES.index(current) if current in STAGES else -1
    marks = []
    for i, stage in enumerate(STAGES):
        mark = "✓" if i < index else ("▶" if i == index else "·")
        marks.append(f"**{mark} {stage}**" if i == index else f"{mark} {stage}")
    return "  ".join(marks)


def running_jobs() -> None:
    """The running jobs, each with its progress and stages; then, under its own heading, the last job that
    ended (it does not belong to a running one)."""
    settings = resources.settings()
    try:
        queue = resources.queue(settings)
        running = queue.list(states=(RUNNING,), limit=10)
        last = queue.list(states=FINAL_STATES, limit=1)
    except QueueError as exc:
        st.warning(f"The job queue cannot be read: {exc}")
        return
    st.subheader("Running job" if len(running) <= 1 else f"Running jobs ({len(running)})")
    if not running:
        st.caption("No job is running.")
    for job in running:
        fraction, text = progress_line(job)
        st.markdown(f"`{job.id[:8]}` · {job.model} · {fmt.resolution(job.params.height, job.params.width)} · "
                    f"{job.params.frames} frames · {fmt.memory_mode(job.params.offload, job.params.weights)} · "
                    f"GPU {job.gpu_index if job.gpu_index is not None else fmt.NA}")
        st.progress(fraction, text=text)
        st.markdown(stage_strip(job.progress.stage))
        expert = expert_label(job.params.model, job.progress.expert)
        if expert and job.progress.stage == "denoising_loop":
            st.markdown(f"Mixture of experts: running the **{expert}** (step {job.progress.step} of "
                        f"{job.progress.total_steps or job.params.steps})")
    st.subheader("Last ended job")
    if not last:
        st.caption("No job has ended yet.")
        return
    job = last[0]
    result = JobResult.from_stored(job.result)
    st.caption(f"`{job.id[:8]}` · {job.model} · {job.state} {fmt.age(job.finished_at)}"
               + (f" · {job.error_kind}" if job.error_kind else ""))
    stages = ran_stages(result, finished=job.succeeded)
    if stages:
        st.plotly_chart(charts.stage_timeline(stages, current=result.failed_stage,
                                              title=f"Stages of {job.id[:8]} ({job.state})"),
                        key="live_last_stages")


def live_panel(minutes: int) -> None:
    settings = resources.settings()
    paths = resources.paths(settings)
    now = datetime.now(timezone.utc)
    status = collector_status(paths, now, max_age_s=live.sample_max_age_s(settings))
    if status.state != "up":
        st.error(f"The collector is down: {status.message}. Start it with `{START_COLLECTOR}` "
                 "(or `python -m app`, which supervises it). The charts show what it wrote last.")
    if alert_banner(paths) == 0:
        st.caption("No alert is firing.")
    snapshots = [s for s in live.read_snapshots(paths)]
    host_row(snapshots)
    gpu_charts = _gpu_charts(str(paths.root), minutes, int(now.timestamp()), _written(paths),
                             settings.collector.live_window_s, 3 * settings.collector.interval_s)
    no_gpu = [s.host for s in snapshots if s.host.gpu_count == 0]
    if not gpu_charts:
        if status.state == "up" and no_gpu:
            st.info(f"{', '.join(h.host for h in no_gpu)} has no NVIDIA GPU the collector can read "
                    f"({no_gpu[0].gpu_status}): the host is charted below.")
        else:
            st.info(f"No GPU samples in the last {minutes} minutes.")
    for key, figure in gpu_charts:
        # A stable key, but Streamlit 1.67 still derives a chart's identity from its figure, so each refresh
        # mounts the chart anew (streamlit/streamlit#16052 would update keyed charts in place).
        st.plotly_chart(figure, key=key)
    host_charts = _host_charts(str(paths.root), minutes, int(now.timestamp()), _snapshots_written(paths),
                               max(3 * settings.collector.interval_s, 3 * settings.collector.flush_interval_s))
    if not host_charts:
        st.info(f"No host samples in the last {minutes} minutes.")
    for key, figure in host_charts:
        st.plotly_chart(figure, key=key)
    st.subheader("GPU processes")
    if gpu_charts or not no_gpu:
        process_table(snapshots)
    else:
        st.caption("No GPU here, so no GPU processes.")
    running_jobs()
    external_runs_table(resources.store(settings), limit=5, title="External runs (your own scripts)", running=True)


def main() -> None:
    settings = resources.settings()
    st.title("Live monitor")
    minutes = st.slider("Window (minutes)", 1, 60, value=min(settings.app.live_minutes, 60), key="live_minutes")
    live_fragment(live_panel, REFRESH_S, minutes)
    notifications_panel()
    disk_usage_panel()


guarded(main)
