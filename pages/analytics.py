"""Analytics: the run history by day, model, resolution, frames, steps, speed mode and memory mode (offload and
weight storage), GPU memory and host RAM among the measures; stage breakdown; the fastest run of each setting;
runs with and without speed mode; the same work in different memory modes; predicted against measured; two
settings side by side; GPU history of any past window; CSV export of runs and metrics.

Only the open tab runs (st.tabs with on_change="rerun"). The window's runs and the answers asked of them are
shared by every session for WINDOW_TTL_S (st.cache_resource / st.cache_data keyed by the window's days), so
twenty sessions on the same month pay for one read and one query each, not twenty."""

import dataclasses
from datetime import datetime, time, timedelta, timezone

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.views import charts, energy, export, formatting as fmt, resources
from app.views.device_class import DEVICE_ORDER, device_classes
from app.views.external_runs import external_runs_table
from app.views.frame import guarded
from data import analytics
from data.analytics import GROUPINGS, NO_OFFLOAD, NO_SPEED_MODE, SETTING_KEYS, RunFilter, RunWindow
from data.schemas import STAGES
from data.store import Store

GIB = 2**30
DEFAULT_DAYS = 30
MAX_CHART_POINTS = 1500  # per GPU in the history chart; the bucket grows with the window
WINDOW_TTL_S = 30  # how stale a shared window's runs and answers may be
TAB_KEY = "an_tab"
# Choices inside tabs that must survive while their tab is closed (Streamlit forgets an unrendered widget's state).
KEPT = {"an_by": "day", "an_stage_by": "model", "an_speed_measure": "s/step", "an_memory_measure": "time",
        "an_speed_view": "speed-mode label"}

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
    "median_peak_allocated_gib": st.column_config.NumberColumn("median peak", format="%.2f GiB"),
    "median_peak_reserved_gib": st.column_config.NumberColumn("median reserved", format="%.2f GiB"),
    "max_peak_host_rss_gib": st.column_config.NumberColumn("max host RAM", format="%.1f GiB"),
    "mean_peak_host_rss_gib": st.column_config.NumberColumn("mean host RAM", format="%.1f GiB"),
    "median_peak_host_rss_gib": st.column_config.NumberColumn("median host RAM", format="%.1f GiB"),
    "time_vs_no_offload": st.column_config.NumberColumn("time vs no offload", format="%.2f×"),
    "step_speedup_vs_off": st.column_config.NumberColumn("s/step speed-up vs off", format="%.2f×"),
    "total_speedup_vs_off": st.column_config.NumberColumn("time speed-up vs off", format="%.2f×"),
}


@st.cache_resource(ttl=WINDOW_TTL_S, max_entries=8, show_spinner=False)
def _window(root: str, since: datetime, until: datetime) -> RunWindow:
    """The runs of a window of whole days, read once for every session."""
    return RunWindow.load(resources._store(root), RunFilter(since=since, until=until))


@st.cache_data(ttl=WINDOW_TTL_S, max_entries=256, show_spinner=False)
def _ask(question: str, root: str, since: datetime, until: datetime, run_filter: RunFilter, *args: object) -> object:
    """analytics.<question>(window, run_filter, *args), answered once for every session asking the same."""
    return getattr(analytics, question)(_window(root, since, until), run_filter, *args)


class Window:
    """The shared window's questions, as the tabs ask them."""

    def __init__(self, root: str, run_filter: RunFilter) -> None:
        self.root, self.run_filter = root, run_filter

    def ask(self, question: str, *args: object, equals: dict | None = None):
        run_filter = self.run_filter if equals is None else dataclasses.replace(self.run_filter, equals=equals)
        return _ask(question, self.root, self.run_filter.since, self.run_filter.until, run_filter, *args)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """Bytes as GiB and rates as percentages, for reading."""
    out = frame.copy()
    for col in [c for c in out.columns if c.endswith("_bytes")]:
        out[col.replace("_bytes", "_gib")] = out.pop(col).astype("float64") / GIB
    for col in ("failure_rate", "oom_rate"):
        if col in out:
            out[col] = out[col].astype("float64") * 100
    return out


def window_controls(root: str) -> Window:
    """The window and filters; the window's runs are read once (for every session), every tab asks them in memory."""
    today = datetime.now(timezone.utc).date()
    c1, c2, c3, c4 = st.columns([2, 3, 3, 1.3])
    picked = c1.date_input("Window (UTC days)", value=(today - timedelta(days=DEFAULT_DAYS - 1), today), key="an_window")
    days = list(picked) if isinstance(picked, (tuple, list)) else [picked]
    start, end = (days[0], days[-1]) if days else (today, today)
    since = datetime.combine(start, time(0), timezone.utc)
    until = datetime.combine(end, time(0), timezone.utc) + timedelta(days=1) - timedelta(microseconds=1)
    whole = Window(root, RunFilter(since=since, until=until))
    models = c2.multiselect("Models", _choices(whole, "model"), key="an_models", placeholder="all models")
    gpus = c3.multiselect("GPUs", _choices(whole, "gpu_name"), key="an_gpus", placeholder="all GPUs")
    smoke = c4.checkbox("Smoke tests", value=True, key="an_smoke")
    return Window(root, RunFilter(since=since, until=until, models=tuple(models), gpu_names=tuple(gpus), include_smoke_test=smoke))


@st.cache_data(ttl=WINDOW_TTL_S, max_entries=64, show_spinner=False)
def _distinct(root: str, since: datetime, until: datetime, column: str) -> list:
    return analytics.distinct_values(_window(root, since, until), column)


def _choices(whole: Window, column: str) -> list:
    return _distinct(whole.root, whole.run_filter.since, whole.run_filter.until, column)


def history(window: Window) -> None:
    by = st.segmented_control("Group by", list(GROUPINGS), key="an_by") or "day"
    summary = window.ask("run_summary", by).to_pandas()
    if summary.empty:
        st.info("No runs in this window.")
        return
    shown = _display(summary)
    c1, c2 = st.columns(2)
    kind = "line" if by == "day" else "bar"
    c1.plotly_chart(charts.group_measure(shown, by, "median_total_s", "Median generation time", "s", kind=kind), key="an_time")
    c2.plotly_chart(charts.group_measure(shown, by, "median_s_per_step", "Median seconds per step", "s/step", kind=kind), key="an_sps")
    c1.plotly_chart(charts.group_measure(shown, by, "max_peak_allocated_gib", "Max peak memory (allocated)", "GiB", kind=kind,
                                         empty_note="no GPU memory measured: these runs ran on the CPU"), key="an_mem")
    c2.plotly_chart(charts.group_measure(shown, by, "failure_rate", "Failure rate (OOM included)", "%", kind=kind), key="an_fail")
    c1.plotly_chart(charts.group_measure(shown, by, "oom_rate", "OOM rate", "%", kind=kind), key="an_oom")
    c2.plotly_chart(charts.group_measure(shown, by, "mean_quality_score", "Mean quality score", "0..1", kind=kind), key="an_quality")
    if shown["max_peak_host_rss_gib"].notna().any():  # runs recorded before the host peak have none
        c1.plotly_chart(charts.group_measure(shown, by, "max_peak_host_rss_gib", "Max peak host RAM (the worker's)",
                                             "GiB", kind=kind), key="an_host")
    st.dataframe(shown, hide_index=True, column_config=NUMBER_COLUMNS)


def stages(window: Window) -> None:
    by = st.segmented_control("Group by", list(GROUPINGS), key="an_stage_by") or "model"
    table = window.ask("stage_breakdown", by).to_pandas()
    if table.empty:
        st.info("No succeeded runs in this window.")
        return
    st.plotly_chart(charts.stage_breakdown(table, by), key="an_stages")
    st.dataframe(table, hide_index=True, column_config={s: st.column_config.NumberColumn(s, format="%.2f s") for s in STAGES})


def fastest(window: Window) -> None:
    table = window.ask("fastest_per_setting").to_pandas()
    if table.empty:
        st.info("No succeeded runs in this window.")
        return
    # Above the table, not below: its toolbar (shown on hover) would otherwise cover the right-hand tabs.
    st.caption("The fastest succeeded run of each setting: model, GPU, resolution, frames, steps, decode chunk, "
               "memory mode (offload, weights) and speed mode.")
    st.dataframe(_display(table), hide_index=True, column_config=NUMBER_COLUMNS)


def _by_setting(table: pd.DataFrame) -> pd.DataFrame:
    """A mode comparison's rows for display, a `setting` column first (model · resolution · frames · steps)."""
    shown = _display(table)
    shown.insert(0, "setting", [f"{m} · {fmt.resolution(h, w)} · {f} fr · {s} steps"
                                for m, h, w, f, s in zip(shown["model"], shown["height"], shown["width"],
                                                         shown["frames"], shown["steps"])])
    return shown


SPEED_MEASURES = {  # choice -> (column, chart title, unit)
    "s/step": ("median_s_per_step", "Median seconds per step", "s/step"),
    "time": ("median_total_s", "Median generation time", "s"),
    "peak memory": ("median_peak_allocated_gib", "Median peak memory (allocated)", "GiB"),
    "quality": ("mean_quality_score", "Mean quality score", "0..1"),
}


SPEED_VIEWS = ("speed-mode label", "part")


def speed_modes(window: Window) -> None:
    """The runs of each speed-mode label side by side, or each part's effect (its word against the same label
    without it)."""
    view = st.radio("Compare by", SPEED_VIEWS, key="an_speed_view", horizontal=True,
                    help="a label ('compile+cache') is every part a run had; a part ('cache') is compared between "
                         "runs whose labels differ by its word alone, in the same setting and on the same GPU")
    if view == "part":
        speed_parts(window)
    else:
        speed_labels(window)


PART_COLUMNS = {
    "settings": st.column_config.NumberColumn("settings", format="%d"),
    "runs_with": st.column_config.NumberColumn("runs with", format="%d"),
    "runs_without": st.column_config.NumberColumn("runs without", format="%d"),
    "step_speedup": st.column_config.NumberColumn("s/step speed-up", format="%.2f×"),
    "total_speedup": st.column_config.NumberColumn("time speed-up", format="%.2f×"),
    "peak_ratio": st.column_config.NumberColumn("peak memory with ÷ without", format="%.2f"),
    "s_per_step_with": st.column_config.NumberColumn("s/step with", format="%.3f"),
    "s_per_step_without": st.column_config.NumberColumn("s/step without", format="%.3f"),
    "total_s_with": st.column_config.NumberColumn("time with", format="%.1f s"),
    "total_s_without": st.column_config.NumberColumn("time without", format="%.1f s"),
    "peak_allocated_gib_with": st.column_config.NumberColumn("peak with", format="%.2f GiB"),
    "peak_allocated_gib_without": st.column_config.NumberColumn("peak without", format="%.2f GiB"),
    **{f"{m}_delta": st.column_config.NumberColumn(f"{m} Δ", format="%+.4f") for m in analytics.PART_QUALITY_METRICS},
}


def speed_parts(window: Window) -> None:
    """Each speed-mode part's speed-up and quality deltas, per part over the settings and per setting, with CSV."""
    summary = window.ask("speed_part_summary").to_pandas()
    if summary.empty:
        st.info("No speed-mode part in this window ran both ways in one setting. A part (a word of the label: "
                "compile, regional, cache, fp8, …) is compared between runs of the same setting and GPU whose labels "
                "differ by that word alone: run a setting with and without it (a quality trade is chosen per job on "
                "Generate).")
        return
    st.plotly_chart(charts.part_speedups(summary), key="an_part_chart")
    st.dataframe(summary, hide_index=True, column_config=PART_COLUMNS)
    st.caption("Per part: the median over the settings that ran with it and without it (the same label minus its "
               "word, the same model, GPU, resolution, frames, steps, memory mode and guidance batch) of the speed-up "
               "(without ÷ with) and of the quality metrics' change (with minus without); succeeded runs only. "
               "Random-weight smoke-test runs show numeric deviation, not perceptual quality.")
    pairs = window.ask("speed_part_effects")
    shown = _by_setting(pairs.to_pandas())
    for side in ("with", "without"):  # bytes as GiB, as everywhere on this page
        shown[f"peak_allocated_gib_{side}"] = shown.pop(f"peak_allocated_bytes_{side}").astype("float64") / GIB
    first = ["setting", "gpu_name", "part", "with_mode", "without_mode", "runs_with", "runs_without", "step_speedup",
             "total_speedup"]
    shown = shown[first + [c for c in shown.columns if c not in first and c not in analytics.WORK_KEYS]]
    st.dataframe(shown, hide_index=True, column_config=PART_COLUMNS)
    st.download_button("Per-part comparison (CSV)", data=export.csv_bytes(pairs), key="an_part_csv",
                       file_name=f"i2vmon-speed-parts-{window.run_filter.since:%Y%m%d}-{window.run_filter.until:%Y%m%d}.csv",
                       mime="text/csv", on_click="ignore")


def speed_labels(window: Window) -> None:
    table = window.ask("speed_mode_comparison").to_pandas()
    if table.empty:
        st.info("No setting (model, resolution, frames, steps) in this window ran under two speed modes. Each run "
                "records its speed mode (`speed_mode` in the engine's settings); run a setting with it off and on "
                "to compare them here.")
        return
    shown = _by_setting(table)
    measure = st.segmented_control("Measure", list(SPEED_MEASURES), key="an_speed_measure") or "s/step"
    column, title, unit = SPEED_MEASURES[measure]
    st.plotly_chart(charts.by_speed_mode(shown, column, f"{title} by speed mode", unit), key="an_speed_chart")
    st.dataframe(shown.drop(columns=list(analytics.WORK_KEYS)), hide_index=True, column_config=NUMBER_COLUMNS)
    st.caption(f"Settings that ran under two speed modes or more; succeeded runs for time, s/step and memory. "
               f"'{NO_SPEED_MODE}': runs recorded before runs kept their speed mode, or that ended before their "
               "pipeline was ready.")


MEMORY_MEASURES = {  # choice -> (column, chart title, unit)
    "time": ("median_total_s", "Median generation time", "s"),
    "s/step": ("median_s_per_step", "Median seconds per step", "s/step"),
    "GPU memory": ("median_peak_reserved_gib", "Median peak GPU memory (reserved)", "GiB"),
    "host RAM": ("median_peak_host_rss_gib", "Median peak host RAM", "GiB"),
    "quality": ("mean_quality_score", "Mean quality score", "0..1"),
}


def memory_modes(window: Window) -> None:
    table = window.ask("memory_mode_comparison").to_pandas()
    if table.empty:
        st.info("No setting (model, resolution, frames, steps) in this window ran in two memory modes. A job's "
                "memory mode is its offload and, for the Wan models, its weight storage (bf16 or fp8), chosen on "
                "Generate; run a setting in two of them to see here what each costs in time, GPU memory and host RAM.")
        return
    shown = _by_setting(table)
    measure = st.segmented_control("Measure", list(MEMORY_MEASURES), key="an_memory_measure") or "time"
    column, title, unit = MEMORY_MEASURES[measure]
    st.plotly_chart(charts.by_mode(shown, column, f"{title} by memory mode", unit, mode="memory_mode",
                                   legend="memory mode"), key="an_memory_chart")
    first = ["setting", "memory_mode", "runs", "median_total_s", "time_vs_no_offload", "median_peak_reserved_gib",
             "median_peak_host_rss_gib", "max_peak_host_rss_gib"]
    shown = shown[first + [c for c in shown.columns if c not in first and c not in analytics.WORK_KEYS]]
    st.dataframe(shown, hide_index=True, column_config=NUMBER_COLUMNS)
    st.caption(f"Settings that ran in two memory modes or more; succeeded runs for time, s/step and memory. "
               f"Time against the same setting's '{NO_OFFLOAD}' runs where it has some. Offload moves the weights "
               "into host RAM: less GPU memory, more host RAM and time.")


def device_pairs(window: Window, pairs: pd.DataFrame) -> tuple[pd.DataFrame, str, dict]:
    """The runs of one device class, picked (GPU runs first: a CPU smoke test's time says nothing of a GPU's),
    its name and the prediction error of those runs."""
    classes = device_classes(pairs)
    present = [c for c in DEVICE_ORDER if (classes == c).any()] + sorted(set(classes) - set(DEVICE_ORDER))
    if st.session_state.get("an_pred_device") not in present:
        st.session_state["an_pred_device"] = present[0]
    device = st.segmented_control("Runs on", present, key="an_pred_device",
                                  help="GPU runs apart from CPU runs and CPU smoke-test runs (random weights): "
                                       "their errors mean different things") or present[0]
    if hasattr(analytics, "prediction_error_by_device"):
        err = window.ask("prediction_error", device)
    else:  # this store cannot tell the errors apart: they are of every run
        err = window.ask("prediction_error")
        st.caption("The error figures are of all runs; the charts are of the runs picked.")
    return pairs[classes == device], device, err


def predictions(window: Window) -> None:
    pairs = window.ask("prediction_pairs").to_pandas()
    if pairs.empty:
        st.info("No run in this window has both a prediction and a measurement.")
        return
    pairs, device, err = device_pairs(window, pairs)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Memory: median error", fmt.ratio_percent(err.get("memory_median_rel_error")), help=f"{err.get('memory_pairs')} runs")
    c2.metric("Memory: 90th pct error", fmt.ratio_percent(err.get("memory_p90_rel_error")))
    # The time prediction covers the pipeline (encode, steps, decode), not model loading, export or scoring:
    # judged against the same span (`pipeline_s`) where the store has it.
    time_key = "pipeline_time" if err.get("pipeline_time_median_rel_error") is not None else "time"
    time_help = f"{err.get('time_pairs')} runs" + ("; against the pipeline's span (encode, steps, decode), "
                                                   "which is what the prediction covers" if time_key == "pipeline_time" else "")
    c3.metric("Time: median error", fmt.ratio_percent(err.get(f"{time_key}_median_rel_error")), help=time_help)
    c4.metric("Time: 90th pct error", fmt.ratio_percent(err.get(f"{time_key}_p90_rel_error")))
    shown = _display(pairs)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.predicted_vs_measured(shown, "predicted_peak_allocated_gib", "peak_allocated_gib",
                                                 title="Peak memory (allocated)", unit="GiB"), key="an_pred_mem")
    measured_time = "pipeline_s" if "pipeline_s" in shown and shown["pipeline_s"].notna().any() else "total_s"
    c2.plotly_chart(charts.predicted_vs_measured(
        shown, "predicted_seconds", measured_time, unit="s",
        title="Pipeline time (encode, steps, decode)" if measured_time == "pipeline_s" else "Total time"),
        key="an_pred_time")
    if shown[["predicted_host_peak_gib", "peak_host_rss_gib"]].notna().all(axis=1).any():
        c1.plotly_chart(charts.predicted_vs_measured(shown, "predicted_host_peak_gib", "peak_host_rss_gib",
                                                     title="Peak host RAM", unit="GiB"), key="an_pred_host")
        c2.metric("Host RAM: median error", fmt.ratio_percent(err.get("host_median_rel_error")),
                  help=f"{err.get('host_pairs')} runs")
    st.caption(f"The newest {len(pairs)} {device} runs with a prediction.")


def _setting_label(s: dict) -> str:
    chunk = s.get("decode_chunk_size")
    return (f"{s['model']} · {fmt.resolution(s.get('height'), s.get('width'))} · {s.get('frames')} fr · {s.get('steps')} steps"
            f" · chunk {chunk if chunk is not None else 'all'} · {fmt.memory_mode(s.get('offload'), s.get('weights'))}"
            f" · speed {s.get('speed_mode') or NO_SPEED_MODE} · {s.get('gpu_name') or 'unknown GPU'} ({s['runs']} runs)")


PROFILE_ROWS = (
    ("runs", "runs", lambda v: fmt.number(v, "d")),
    ("failure rate", "failure_rate", fmt.ratio_percent),
    ("OOM rate", "oom_rate", fmt.ratio_percent),
    ("median time", "median_total_s", fmt.seconds),
    ("fastest", "fastest_total_s", fmt.seconds),
    ("s/step", "median_s_per_step", lambda v: fmt.number(v, ".3f")),
    ("max peak memory", "max_peak_allocated_bytes", fmt.gib),
    ("max peak host RAM", "max_peak_host_rss_bytes", fmt.gib),
    ("mean quality", "mean_quality_score", lambda v: fmt.number(v, ".3f")),
)


def compare(window: Window) -> None:
    seen = window.ask("settings_seen")
    if len(seen) < 1:
        st.info("No runs in this window.")
        return
    labels = [_setting_label(s) for s in seen]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Setting A", range(len(seen)), format_func=labels.__getitem__, key="an_cmp_a")
    b = c2.selectbox("Setting B", range(len(seen)), index=min(1, len(seen) - 1), format_func=labels.__getitem__, key="an_cmp_b")
    profiles = []
    for i in (a, b):
        profiles.append(window.ask("setting_profile", equals={k: seen[i][k] for k in SETTING_KEYS}))
    st.dataframe(pd.DataFrame([{"": name, "A": show(profiles[0].get(key)), "B": show(profiles[1].get(key))}
                               for name, key, show in PROFILE_ROWS]), hide_index=True)
    fig = go.Figure()
    for name, profile in zip(("A", "B"), profiles):
        fig.add_trace(go.Bar(x=list(STAGES), y=[profile.get(s) for s in STAGES], name=name))
    fig.update_layout(barmode="group", title="Mean stage time", yaxis_title="seconds", height=340,
                      margin={"l": 40, "r": 10, "t": 40, "b": 40})
    st.plotly_chart(fig, key="an_cmp_stages")


@st.cache_data(ttl=WINDOW_TTL_S, max_entries=32, show_spinner=False)
def _gpu_history(root: str, since: datetime, until: datetime, bucket: int) -> pd.DataFrame:
    """The GPU samples of a window for the chart, for every session asking the same minutes."""
    store = resources._store(root)
    if bucket <= 1:
        return charts.gpu_frame(store.gpu_samples(since, until, fields=charts.GPU_FIELDS))
    return charts.gpu_frame(store.gpu_samples_bucketed(since, until, bucket_s=bucket))


def gpu_default_window() -> tuple[datetime, datetime]:
    """The GPU-history window before one is set: the last hour, to the minute."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    return now - timedelta(hours=1), now


def gpu_history(store: Store) -> None:
    start_default, now = gpu_default_window()
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
    frame = _gpu_history(str(store.paths.root), since, until, bucket)
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
    # The GPU-history tab's window (its default where it was not opened), not the runs': the file's name says it.
    gpu_since, gpu_until = st.session_state.get("an_gpu_window") or gpu_default_window()
    c1, c2 = st.columns(2)
    c1.download_button(
        "Runs of the window (CSV)", data=lambda: export.runs_csv(store, since, until),
        file_name=f"i2vmon-runs-{since:%Y%m%d}-{until:%Y%m%d}.csv", mime="text/csv", key="an_export_runs",
        on_click="ignore",
    )
    c1.caption(f"runs finished {fmt.timestamp(since)} – {fmt.timestamp(until)}, every column (the memory mode as "
               "`offload` and `weights`, the host RAM peak as `peak_host_rss_bytes`, each step's expert in "
               "`step_experts`), with ratings")
    c2.download_button(
        "GPU metrics of the GPU-history window (CSV)", data=lambda: export.metrics_csv(store, gpu_since, gpu_until),
        file_name=f"i2vmon-gpu-{gpu_since:%Y%m%dT%H%M}-{gpu_until:%Y%m%dT%H%M}.csv", mime="text/csv",
        key="an_export_metrics", on_click="ignore",
    )
    c2.caption(f"1 s samples {fmt.timestamp(gpu_since)} – {fmt.timestamp(gpu_until)} (set it in the GPU history tab)")


TABS = ("History", "Stages", "Fastest per setting", "Speed modes", "Memory modes", "Predicted vs measured",
        "Compare two settings", "GPU history", "Export", "Energy & versions")


def main() -> None:
    settings = resources.settings()
    store = resources.store(settings)
    for key, default in KEPT.items():
        st.session_state[key] = st.session_state.get(key, default)  # kept while its tab is closed
    st.title("Analytics")
    if not analytics.has_runs(store):
        st.info("No runs in the store yet. Generate a video on the **Generate** page (with an engine worker running: "
                "`python -m engine serve`); its record lands here when it ends. GPU history needs the collector "
                "(`python -m collector`).")
    window = window_controls(str(store.paths.root))
    draw = (lambda: history(window), lambda: stages(window), lambda: fastest(window), lambda: speed_modes(window),
            lambda: memory_modes(window), lambda: predictions(window), lambda: compare(window), lambda: gpu_history(store),
            lambda: export_panel(store, window.run_filter), lambda: energy.tab(window))
    for tab, body in zip(st.tabs(TABS, key=TAB_KEY, on_change="rerun"), draw):
        if tab.open:  # only the open tab runs: the others would cost a query and their charts for nothing
            with tab:
                body()
    external_runs_table(store, since=window.run_filter.since)  # users' own scripts (engine.instrument), labelled


guarded(main)
