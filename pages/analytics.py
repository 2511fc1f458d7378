"""Analytics: the run history by day, model, resolution, frames and steps; stage breakdown; the fastest run
of each setting; predicted against measured; two settings side by side; GPU history of any past window;
CSV export of runs and metrics."""

import sys
from pathlib import Path

if (_root := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _root)

import dataclasses  # noqa: E402
from datetime import datetime, time, timedelta, timezone  # noqa: E402

import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

from app.views import charts, export, resources  # noqa: E402
from app.views import formatting as fmt  # noqa: E402
from app.views.frame import guarded  # noqa: E402
from data import analytics  # noqa: E402
from data.analytics import GROUPINGS, SETTING_KEYS, RunFilter, RunWindow  # noqa: E402
from data.schemas import STAGES  # noqa: E402
from data.store import Store  # noqa: E402

GIB = 2**30
DEFAULT_DAYS = 30
MAX_CHART_POINTS = 1500  # per GPU in the history chart; the bucket grows with the window

NUMBER_COLUMNS = {
    "runs": st.column_config.NumberColumn("runs", format="%d"),
    "succeeded": st.column_config.NumberColumn("ok", format="%d"),
    "failed": st.column_config.NumberColumn("failed", format="%d"),
    "ooms": st.column_config.NumberColumn("OOMs", format="%d"),
    "failure_rate": st.column_config.NumberColumn("failure rate", format="%.1f %%"),
    "oom_rate": st.column_config.NumberColumn("OOM rate", format="%.1f %%"),
    "median_total_s": st.column_config.NumberColumn("median time", format="%.1f s"),
    "fastest_total_s": st.column_config.NumberColumn("fastest", format="%.1f s"),
    "median_s_per_step": st.column_config.NumberColumn("s/step", format="%.3f"),
    "max_peak_allocated_gib": st.column_config.NumberColumn("max peak", format="%.2f GiB"),
    "mean_peak_allocated_gib": st.column_config.NumberColumn("mean peak", format="%.2f GiB"),
    "mean_quality_score": st.column_config.NumberColumn("quality", format="%.3f"),
}


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """Bytes as GiB and rates as percentages, for reading."""
    out = frame.copy()
    for col in [c for c in out.columns if c.endswith("_bytes")]:
        out[col.replace("_bytes", "_gib")] = out.pop(col).astype("float64") / GIB
    for col in ("failure_rate", "oom_rate"):
        if col in out:
            out[col] = out[col].astype("float64") * 100
    return out


def window_controls(store: Store) -> tuple[RunFilter, RunWindow]:
    """The window and filters; the window's runs are read once, every tab asks them in memory."""
    today = datetime.now(timezone.utc).date()
    c1, c2, c3, c4 = st.columns([2, 3, 3, 1.3])
    picked = c1.date_input("Window (UTC days)", value=(today - timedelta(days=DEFAULT_DAYS - 1), today), key="an_window")
    days = list(picked) if isinstance(picked, (tuple, list)) else [picked]
    start, end = (days[0], days[-1]) if days else (today, today)
    since = datetime.combine(start, time(0), timezone.utc)
    until = datetime.combine(end, time(0), timezone.utc) + timedelta(days=1) - timedelta(microseconds=1)
    window = RunWindow.load(store, RunFilter(since=since, until=until))
    models = c2.multiselect("Models", analytics.distinct_values(window, "model"), key="an_models", placeholder="all models")
    gpus = c3.multiselect("GPUs", analytics.distinct_values(window, "gpu_name"), key="an_gpus", placeholder="all GPUs")
    smoke = c4.checkbox("Smoke tests", value=True, key="an_smoke")
    return RunFilter(since=since, until=until, models=tuple(models), gpu_names=tuple(gpus), include_smoke_test=smoke), window


def history(store: RunWindow, run_filter: RunFilter) -> None:
    by = st.segmented_control("Group by", list(GROUPINGS), default="day", key="an_by") or "day"
    summary = analytics.run_summary(store, run_filter, by).to_pandas()
    if summary.empty:
        st.info("No runs in this window.")
        return
    shown = _display(summary)
    c1, c2 = st.columns(2)
    kind = "line" if by == "day" else "bar"
    c1.plotly_chart(charts.group_measure(shown, by, "median_total_s", "Median generation time", "s", kind=kind), key="an_time")
    c2.plotly_chart(charts.group_measure(shown, by, "median_s_per_step", "Median seconds per step", "s/step", kind=kind), key="an_sps")
    c1.plotly_chart(charts.group_measure(shown, by, "max_peak_allocated_gib", "Max peak memory (allocated)", "GiB", kind=kind), key="an_mem")
    c2.plotly_chart(charts.group_measure(shown, by, "failure_rate", "Failure rate (OOM included)", "%", kind=kind), key="an_fail")
    c1.plotly_chart(charts.group_measure(shown, by, "oom_rate", "OOM rate", "%", kind=kind), key="an_oom")
    c2.plotly_chart(charts.group_measure(shown, by, "mean_quality_score", "Mean quality score", "0..1", kind=kind), key="an_quality")
    st.dataframe(shown, hide_index=True, column_config=NUMBER_COLUMNS)


def stages(store: RunWindow, run_filter: RunFilter) -> None:
    by = st.segmented_control("Group by", list(GROUPINGS), default="model", key="an_stage_by") or "model"
    table = analytics.stage_breakdown(store, run_filter, by).to_pandas()
    if table.empty:
        st.info("No succeeded runs in this window.")
        return
    st.plotly_chart(charts.stage_breakdown(table, by), key="an_stages")
    st.dataframe(table, hide_index=True, column_config={s: st.column_config.NumberColumn(s, format="%.2f s") for s in STAGES})


def fastest(store: RunWindow, run_filter: RunFilter) -> None:
    table = analytics.fastest_per_setting(store, run_filter).to_pandas()
    if table.empty:
        st.info("No succeeded runs in this window.")
        return
    st.dataframe(_display(table), hide_index=True, column_config=NUMBER_COLUMNS)


def predictions(store: RunWindow, run_filter: RunFilter) -> None:
    pairs = analytics.prediction_pairs(store, run_filter).to_pandas()
    if pairs.empty:
        st.info("No run in this window has both a prediction and a measurement.")
        return
    err = analytics.prediction_error(store, run_filter)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Memory: median error", fmt.ratio_percent(err.get("memory_median_rel_error")), help=f"{err.get('memory_pairs')} runs")
    c2.metric("Memory: 90th pct error", fmt.ratio_percent(err.get("memory_p90_rel_error")))
    c3.metric("Time: median error", fmt.ratio_percent(err.get("time_median_rel_error")), help=f"{err.get('time_pairs')} runs")
    c4.metric("Time: 90th pct error", fmt.ratio_percent(err.get("time_p90_rel_error")))
    shown = _display(pairs)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.predicted_vs_measured(shown, "predicted_peak_allocated_gib", "peak_allocated_gib",
                                                 title="Peak memory (allocated)", unit="GiB"), key="an_pred_mem")
    c2.plotly_chart(charts.predicted_vs_measured(shown, "predicted_seconds", "total_s", title="Total time", unit="s"),
                    key="an_pred_time")
    st.caption(f"The newest {len(pairs)} runs with a prediction.")


def _setting_label(s: dict) -> str:
    chunk = s.get("decode_chunk_size")
    return (f"{s['model']} · {fmt.resolution(s.get('height'), s.get('width'))} · {s.get('frames')} fr · {s.get('steps')} steps"
            f" · chunk {chunk if chunk is not None else 'all'} · offload {s.get('offload')} · {s.get('gpu_name') or 'unknown GPU'}"
            f" ({s['runs']} runs)")


PROFILE_ROWS = (
    ("runs", "runs", lambda v: fmt.number(v, "d")),
    ("failure rate", "failure_rate", fmt.ratio_percent),
    ("OOM rate", "oom_rate", fmt.ratio_percent),
    ("median time", "median_total_s", fmt.seconds),
    ("fastest", "fastest_total_s", fmt.seconds),
    ("s/step", "median_s_per_step", lambda v: fmt.number(v, ".3f")),
    ("max peak memory", "max_peak_allocated_bytes", fmt.gib),
    ("mean quality", "mean_quality_score", lambda v: fmt.number(v, ".3f")),
)


def compare(store: RunWindow, run_filter: RunFilter) -> None:
    seen = analytics.settings_seen(store, run_filter)
    if len(seen) < 1:
        st.info("No runs in this window.")
        return
    labels = [_setting_label(s) for s in seen]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Setting A", range(len(seen)), format_func=labels.__getitem__, key="an_cmp_a")
    b = c2.selectbox("Setting B", range(len(seen)), index=min(1, len(seen) - 1), format_func=labels.__getitem__, key="an_cmp_b")
    profiles = []
    for i in (a, b):
        equals = {k: seen[i][k] for k in SETTING_KEYS}
        profiles.append(analytics.setting_profile(store, dataclasses.replace(run_filter, equals=equals)))
    st.dataframe(pd.DataFrame([{"": name, "A": show(profiles[0].get(key)), "B": show(profiles[1].get(key))}
                               for name, key, show in PROFILE_ROWS]), hide_index=True)
    fig = go.Figure()
    for name, profile in zip(("A", "B"), profiles):
        fig.add_trace(go.Bar(x=list(STAGES), y=[profile.get(s) for s in STAGES], name=name))
    fig.update_layout(barmode="group", title="Mean stage time", yaxis_title="seconds", height=340,
                      margin={"l": 40, "r": 10, "t": 40, "b": 40})
    st.plotly_chart(fig, key="an_cmp_stages")


def gpu_history(store: Store) -> None:
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    start_default = now - timedelta(hours=1)
    c1, c2, c3, c4 = st.columns(4)
    d0 = c1.date_input("From (UTC)", value=start_default.date(), key="an_gpu_d0")
    t0 = c2.time_input("at", value=start_default.time(), key="an_gpu_t0")
    d1 = c3.date_input("To (UTC)", value=now.date(), key="an_gpu_d1")
    t1 = c4.time_input("at ", value=now.time(), key="an_gpu_t1")
    since = datetime.combine(d0, t0, timezone.utc)
    until = datetime.combine(d1, t1, timezone.utc)
    if until <= since:
        st.warning("The end of the window is before its start.")
        return
    st.session_state["an_gpu_window"] = (since, until)
    span = (until - since).total_seconds()
    bucket = max(1, int(span // MAX_CHART_POINTS))
    if bucket <= 1:
        table = store.gpu_samples(since, until)
    else:
        table = store.gpu_samples_bucketed(since, until, bucket_s=bucket)
    frame = charts.gpu_frame(table)
    if frame.empty:
        st.info("No GPU samples in this window (was the collector running, and does this host have a GPU?).")
        return
    st.caption(f"{'1 s samples' if bucket <= 1 else f'{bucket} s averages'} · {len(frame)} points")
    for (host, gpu_index), gpu in frame.groupby(["host", "gpu_index"], sort=True):
        st.plotly_chart(charts.gpu_timeline(gpu, max_gap_s=3 * max(bucket, 1), title=f"{host} · GPU {gpu_index}",
                                            x_range=(since, until), height=640),
                        key=f"an_gpu_{host}_{gpu_index}")


def export_panel(store: Store, run_filter: RunFilter) -> None:
    since, until = run_filter.since, run_filter.until
    gpu_since, gpu_until = st.session_state.get("an_gpu_window", (since, until))
    c1, c2 = st.columns(2)
    c1.download_button(
        "Runs of the window (CSV)", data=lambda: export.runs_csv(store, since, until),
        file_name=f"i2vmon-runs-{since:%Y%m%d}-{until:%Y%m%d}.csv", mime="text/csv", key="an_export_runs",
        on_click="ignore",
    )
    c1.caption(f"runs finished {fmt.timestamp(since)} – {fmt.timestamp(until)}, every column, with ratings")
    c2.download_button(
        "GPU metrics of the GPU-history window (CSV)", data=lambda: export.metrics_csv(store, gpu_since, gpu_until),
        file_name=f"i2vmon-gpu-{gpu_since:%Y%m%dT%H%M}-{gpu_until:%Y%m%dT%H%M}.csv", mime="text/csv",
        key="an_export_metrics", on_click="ignore",
    )
    c2.caption(f"1 s samples {fmt.timestamp(gpu_since)} – {fmt.timestamp(gpu_until)} (set it in the GPU history tab)")


def main() -> None:
    settings = resources.settings()
    store = resources.store(settings)
    st.title("Analytics")
    if not analytics.has_runs(store):
        st.info("No runs in the store yet. Generate a video on the **Generate** page (with an engine worker running: "
                "`python -m engine serve`); its record lands here when it ends. GPU history needs the collector "
                "(`python -m collector`).")
    run_filter, window = window_controls(store)
    tabs = st.tabs(["History", "Stages", "Fastest per setting", "Predicted vs measured", "Compare two settings",
                    "GPU history", "Export"])
    with tabs[0]:
        history(window, run_filter)
    with tabs[1]:
        stages(window, run_filter)
    with tabs[2]:
        fastest(window, run_filter)
    with tabs[3]:
        predictions(window, run_filter)
    with tabs[4]:
        compare(window, run_filter)
    with tabs[5]:
        gpu_history(store)
    with tabs[6]:
        export_panel(store, run_filter)


guarded(main)
