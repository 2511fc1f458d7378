"""Plotly figures of the pages. They draw what data/ returns; unit conversion only, no metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from data.schemas import STAGES

GIB = 2**30
EPOCH = pd.Timestamp(0, tz="UTC")

# (title, unit, [(column, trace name)]) of the live and history charts, top to bottom.
GPU_PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Utilisation", "%", (("gpu_util_percent", "GPU util"),)),
    ("Memory", "GiB", (("memory_used_gib", "used"), ("memory_total_gib", "total"))),
    ("Temperature", "°C", (("temp_c", "temperature"),)),
    ("Power", "W", (("power_w", "power"), ("power_limit_w", "limit"))),
    ("Clocks", "MHz", (("sm_clock_mhz", "SM"), ("mem_clock_mhz", "memory"))),
)
# The sample columns those panels need (memory comes in bytes and is drawn in GiB).
GPU_FIELDS = ["gpu_util_percent", "memory_used_bytes", "memory_total_bytes", "temp_c", "power_w", "power_limit_w",
              "sm_clock_mhz", "mem_clock_mhz"]


def with_gaps(frame: pd.DataFrame, max_gap_s: float, ts: str = "ts") -> pd.DataFrame:
    """Insert an empty row wherever consecutive samples are more than `max_gap_s` apart, so a line breaks
    there (Plotly, connectgaps=False) instead of drawing across a time the collector was not sampling."""
    if frame.empty:
        return frame
    frame = frame.sort_values(ts, kind="stable")
    gap = frame[ts].diff().dt.total_seconds() > max_gap_s
    if not gap.any():
        return frame
    breaks = pd.DataFrame({ts: frame.loc[gap, ts] - pd.Timedelta(milliseconds=1)})
    return pd.concat([frame, breaks], ignore_index=True).sort_values(ts, kind="stable")


def gpu_frame(table: object) -> pd.DataFrame:
    """A GpuSample table (Arrow or pandas) with memory in GiB for the charts."""
    frame = table.to_pandas() if hasattr(table, "to_pandas") else pd.DataFrame(table)
    if frame.empty:
        return frame
    for col in ("memory_used_bytes", "memory_total_bytes"):
        if col in frame:
            frame[col.replace("_bytes", "_gib")] = frame[col].astype("float64") / GIB
    return frame


def _epoch_ms(values: object) -> np.ndarray:
    """Times as float milliseconds since the epoch (UTC): what a Plotly date axis reads, sent as a binary array."""
    ts = pd.to_datetime(pd.Series(values), utc=True)  # naive times are UTC here
    return ((ts - EPOCH) / pd.Timedelta(milliseconds=1)).to_numpy(dtype="float64")


def gpu_timeline(frame: pd.DataFrame, *, max_gap_s: float, title: str, height: int = 720,
                 x_range: tuple | None = None) -> go.Figure:
    """Utilisation, memory, temperature, power and clocks of one GPU, stacked on one shared time axis."""
    return stacked_timeline(frame, GPU_PANELS, max_gap_s=max_gap_s, title=title, height=height, x_range=x_range)


# (title, unit, [(column, trace name)]) of the host chart: the machine, and what the collector itself costs.
HOST_PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("CPU", "%", (("cpu_percent", "host CPU"), ("collector_cpu_percent", "collector"))),
    ("RAM", "GiB", (("ram_used_gib", "used"), ("ram_total_gib", "total"))),
    ("Load", "1 min", (("load_1", "load"),)),
    ("Disk free", "GiB", (("disk_free_gib", "free"),)),
    ("Collector memory", "MiB", (("collector_rss_mib", "collector RSS"),)),
)


def host_frame(table: object) -> pd.DataFrame:
    """A HostSample table (Arrow or pandas) with memory and disk in GiB, the collector's RSS in MiB."""
    frame = table.to_pandas() if hasattr(table, "to_pandas") else pd.DataFrame(table)
    if frame.empty:
        return frame
    for col in ("ram_used_bytes", "ram_total_bytes", "disk_free_bytes"):
        if col in frame:
            frame[col.replace("_bytes", "_gib")] = frame[col].astype("float64") / GIB
    if "collector_rss_bytes" in frame:
        frame["collector_rss_mib"] = frame["collector_rss_bytes"].astype("float64") / 2**20
    return frame


def host_timeline(frame: pd.DataFrame, *, max_gap_s: float, title: str, height: int = 640,
                  x_range: tuple | None = None) -> go.Figure:
    """A host's CPU (and the collector's share), RAM, load, free disk and the collector's memory over time."""
    return stacked_timeline(frame, HOST_PANELS, max_gap_s=max_gap_s, title=title, height=height, x_range=x_range)


def stacked_timeline(frame: pd.DataFrame, panels: tuple, *, max_gap_s: float, title: str, height: int,
                     x_range: tuple | None = None) -> go.Figure:
    """Panels of lines stacked on one shared time axis; a panel in % runs 0–100.

    Built from plain dicts (stacked y-axis domains) rather than make_subplots: it is redrawn every second. Times
    go as epoch milliseconds and values as float32, both binary arrays: the ISO strings they replace were three
    quarters of a 600-sample figure's 190 KB, sent and parsed again on every refresh."""
    frame = with_gaps(frame, max_gap_s)
    x = _epoch_ms(frame["ts"]) if not frame.empty else np.array([], dtype="float64")
    rows = len(panels)
    gap = 0.035
    band = (1 - gap * (rows - 1)) / rows
    data: list[dict] = []
    layout: dict = {
        "title": {"text": title}, "height": height, "margin": {"l": 40, "r": 10, "t": 60, "b": 20},
        "uirevision": title, "hovermode": "x unified", "showlegend": False, "annotations": [],
        "xaxis": {"type": "date", "anchor": f"y{rows}", "range": list(_epoch_ms(x_range)) if x_range is not None else None},
    }
    for row, (name, unit, traces) in enumerate(panels, start=1):
        axis = "y" if row == 1 else f"y{row}"
        top = 1 - (row - 1) * (band + gap)
        layout["yaxis" if row == 1 else f"yaxis{row}"] = {
            "domain": [top - band, top], "rangemode": "tozero", "anchor": "x",
            **({"range": [0, 100]} if unit == "%" else {}),
        }
        layout["annotations"].append({"text": f"{name} ({unit})", "xref": "paper", "yref": "paper", "x": 0.5, "y": top,
                                      "xanchor": "center", "yanchor": "bottom", "showarrow": False})
        for col, trace in traces:
            if col not in frame:
                continue
            dashed = trace in ("total", "limit")
            data.append({
                "type": "scatter", "mode": "lines", "x": x, "y": frame[col].to_numpy(dtype="float32", na_value=np.nan),
                "name": trace, "yaxis": axis,
                "xaxis": "x", "connectgaps": False,
                "line": {"width": 1 if dashed else 1.6, "dash": "dash" if dashed else "solid"},
                "hovertemplate": f"%{{y:.1f}} {unit}<extra>{trace}</extra>",
            })
    return go.Figure(data=data, layout=layout)


def stage_timeline(stages: dict[str, float], *, current: str | None = None, title: str = "Stage timeline") -> go.Figure:
    """The stages of one job as consecutive bars on a time axis (seconds from the job's start)."""
    names, starts, widths = [], [], []
    t = 0.0
    for stage in STAGES:
        if stage in stages and stages[stage] is not None:
            names.append(stage)
            starts.append(t)
            widths.append(stages[stage])
            t += stages[stage]
    colors = ["#f39c12" if n == current else "#4c78a8" for n in names]
    fig = go.Figure(go.Bar(y=names, x=widths, base=starts, orientation="h", marker_color=colors,
                           text=[f"{w:.2f} s" for w in widths], textposition="auto",
                           hovertemplate="%{y}: %{x:.2f} s<extra></extra>"))
    fig.update_traces(cliponaxis=False)
    fig.update_yaxes(autorange="reversed")
    # Room on the right for the last bar's label when it is drawn outside a short bar (it was clipped there).
    fig.update_xaxes(range=[0, max(t, 1e-3) * 1.18])
    fig.update_layout(title=title, xaxis_title="seconds from start", height=60 + 28 * max(len(names), 1),
                      margin={"l": 10, "r": 30, "t": 40, "b": 30})
    return fig


def step_timeline(step_times: list[float | None], groups: list[str] | None = None, *, switch_after: int | None = None,
                  switch_label: str = "", title: str = "Denoising steps") -> go.Figure:
    """Seconds of each denoising step (1-based on the x axis), one colour per group (a mixture of experts'
    expert for each step; None: one colour), with a dashed line after step `switch_after` labelled
    `switch_label`."""
    steps = list(range(1, len(step_times) + 1))
    seconds = [float("nan") if t is None else float(t) for t in step_times]
    labels = list(groups or [])
    labels = labels + [""] * (len(steps) - len(labels))
    fig = go.Figure()
    for name in dict.fromkeys(labels):  # first-seen order
        xs = [s for s, g in zip(steps, labels) if g == name]
        ys = [t for t, g in zip(seconds, labels) if g == name]
        fig.add_trace(go.Bar(x=xs, y=ys, name=name or "step",
                             hovertemplate="step %{x}: %{y:.2f} s<extra>" + (name or "") + "</extra>"))
    if switch_after is not None:
        fig.add_vline(x=switch_after + 0.5, line_dash="dash", line_color="grey")
        fig.add_annotation(x=switch_after + 0.5, y=1, yref="paper", text=switch_label, showarrow=False,
                           xanchor="left", yanchor="bottom")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="seconds", height=280, barmode="overlay",
                      showlegend=len(set(labels)) > 1, margin={"l": 40, "r": 10, "t": 50, "b": 30},
                      legend={"orientation": "h", "y": -0.3},
                      xaxis={"range": [0.5, len(steps) + 0.5]})  # the label must not widen the axis
    if switch_after is not None:
        fig.update_annotations(xanchor="right" if switch_after > len(steps) / 2 else "left")
    return fig


def stage_breakdown(frame: pd.DataFrame, key: str, title: str = "Mean stage time") -> go.Figure:
    """Stacked mean seconds per stage for each group in column `key`."""
    fig = go.Figure()
    x = frame[key].astype(str)
    for stage in STAGES:
        if stage in frame and frame[stage].notna().any():
            fig.add_trace(go.Bar(x=x, y=frame[stage], name=stage, hovertemplate="%{y:.2f} s<extra>" + stage + "</extra>"))
    fig.update_layout(barmode="stack", title=title, yaxis_title="seconds", xaxis_title=key, height=380,
                      margin={"l": 40, "r": 10, "t": 40, "b": 40}, xaxis={"type": "category"})
    return fig


NO_DATA = "no data in this window"


def no_data_note(fig: go.Figure, text: str = NO_DATA) -> go.Figure:
    """Say on an empty chart that it is empty, and why where known (a blank frame reads as a broken page)."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font={"size": 14, "color": "grey"})
    return fig


def group_measure(frame: pd.DataFrame, key: str, column: str, title: str, unit: str, *, kind: str = "bar",
                  empty_note: str = NO_DATA) -> go.Figure:
    x = frame[key] if key == "day" else frame[key].astype(str)
    trace = (go.Scatter(x=x, y=frame[column], mode="lines+markers", connectgaps=False) if kind == "line"
             else go.Bar(x=x, y=frame[column]))
    trace.update(hovertemplate=f"%{{x}}: %{{y:.3g}} {unit}<extra></extra>")
    fig = go.Figure(trace)
    # Every measure here is a count, a duration or a size: the axis starts at 0 (one point alone was drawn
    # with a y-range around it that went below zero).
    fig.update_layout(title=title, yaxis_title=unit, height=280, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      yaxis={"rangemode": "tozero"})
    if key != "day":
        fig.update_xaxes(type="category")
    elif len(frame) == 1:  # one day alone: Plotly would zoom to a millisecond around it, or show two days
        day = pd.Timestamp(frame[key].iloc[0])
        fig.update_xaxes(type="date", range=[day - pd.Timedelta(hours=12), day + pd.Timedelta(hours=12)],
                         tickvals=[day], ticktext=[day.strftime("%b %d")])
    if column not in frame or frame[column].isna().all():
        no_data_note(fig, empty_note)
    return fig


def predicted_vs_measured(frame: pd.DataFrame, predicted: str, measured: str, *, title: str, unit: str) -> go.Figure:
    """Each run a point; the diagonal is a perfect prediction."""
    pairs = frame.dropna(subset=[predicted, measured])
    fig = go.Figure(go.Scatter(
        x=pairs[measured], y=pairs[predicted], mode="markers", marker={"size": 6, "opacity": 0.6},
        text=pairs["model"], hovertemplate="%{text}<br>measured %{x:.2f} " + unit + "<br>predicted %{y:.2f} " + unit + "<extra></extra>",
    ))
    if not pairs.empty:
        top = float(max(pairs[measured].max(), pairs[predicted].max())) * 1.05
        fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line={"dash": "dot", "color": "grey"},
                                 hoverinfo="skip", name="exact"))
    else:
        no_data_note(fig, "no run with both a prediction and a measurement of this")
    fig.update_layout(title=title, xaxis_title=f"measured ({unit})", yaxis_title=f"predicted ({unit})", showlegend=False,
                      height=380, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return fig


def by_mode(frame: pd.DataFrame, column: str, title: str, unit: str, *, mode: str = "speed_mode",
            legend: str = "speed mode") -> go.Figure:
    """One bar per mode (column `mode`: a speed mode, a memory mode) within each setting (column `setting`),
    side by side."""
    fig = go.Figure()
    for value, rows in frame.groupby(mode, sort=False):
        fig.add_trace(go.Bar(x=rows["setting"], y=rows[column], name=str(value),
                             hovertemplate=f"%{{x}}<br>{value}: %{{y:.3g}} {unit}<extra></extra>"))
    fig.update_layout(barmode="group", title=title, yaxis_title=unit, height=380, legend_title_text=legend,
                      margin={"l": 40, "r": 10, "t": 40, "b": 40}, xaxis={"type": "category"})
    return fig


def by_speed_mode(frame: pd.DataFrame, column: str, title: str, unit: str) -> go.Figure:
    """One bar per speed mode within each setting (column `setting`), side by side."""
    return by_mode(frame, column, title, unit)


def part_speedups(frame: pd.DataFrame) -> go.Figure:
    """One bar per speed-mode part (column `part`): its median s/step speed-up (`step_speedup`, without ÷ with) over
    the settings that ran with and without it; a line at 1× (no change)."""
    fig = go.Figure(go.Bar(x=frame["part"], y=frame["step_speedup"], customdata=frame[["settings", "runs_with", "runs_without"]],
                           hovertemplate="%{x}: %{y:.2f}× per step<br>%{customdata[0]} settings, "
                                         "%{customdata[1]} runs with vs %{customdata[2]} without<extra></extra>"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(title="s/step speed-up per part (without ÷ with)", yaxis_title="×", height=340,
                      margin={"l": 40, "r": 10, "t": 40, "b": 40}, xaxis={"type": "category"})
    return fig
