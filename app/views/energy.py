"""Energy and cost per video, and software versions: a line in the job panel, and the Analytics tab "Energy &
versions" (energy per setting; the runs of one version; a setting's figures before and after an upgrade).

The figures are the run records' (collector/job_energy.py measures, engine/worker/versions.py names); this module
only formats and draws them."""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from app.views import formatting as fmt
from data.schemas import RUN_VERSION_COLUMNS
from engine.queue import Job
from engine.queue.models import JobResult

METHODS = {"counter": "NVML energy counter", "power_x_time": "power × time"}
VERSION_LABELS = {"i2vmon_version": "i2vmon", "torch_version": "torch", "diffusers_version": "diffusers",
                  "cuda_version": "CUDA", "driver_version": "NVIDIA driver"}
ENERGY_COLUMNS = {
    "runs": st.column_config.NumberColumn("runs", format="%d"),
    "runs_with_energy": st.column_config.NumberColumn("with energy", format="%d"),
    "median_wh_per_video": st.column_config.NumberColumn("Wh / video", format="%.3f"),
    "median_wh_per_video_second": st.column_config.NumberColumn("Wh / s of video", format="%.3f"),
    "median_j_per_frame": st.column_config.NumberColumn("J / frame", format="%.1f"),
    "median_cost_per_video": st.column_config.NumberColumn("cost / video", format="%.5f"),
    "median_s_per_step": st.column_config.NumberColumn("s/step", format="%.3f"),
    "median_total_s": st.column_config.NumberColumn("median time", format="%.1f s"),
    "median_peak_allocated_bytes": st.column_config.NumberColumn("median peak (bytes)", format="%d"),
    "mean_quality_score": st.column_config.NumberColumn("quality", format="%.3f"),
}


def energy_text(r: JobResult, frames: int | None) -> str:
    """'GPU energy 2.00 Wh (7.2 kJ, NVML energy counter) · 450 J per frame · cost 0.0006 USD', or why there is
    none ('GPU energy N/A — CPU job: no GPU, so no GPU energy')."""
    if r.energy_j is None:
        return f"GPU energy {fmt.NA}" + (f" — {r.energy_note}" if r.energy_note else "")
    method = METHODS.get(r.energy_method or "", r.energy_method or "")
    parts = [f"GPU energy {r.energy_j / 3600:.2f} Wh ({r.energy_j / 1000:.1f} kJ{', ' + method if method else ''})"]
    if frames:
        parts.append(f"{r.energy_j / frames:.0f} J per frame")
    if r.energy_cost is not None:
        parts.append(f"cost {r.energy_cost:.4f} {r.energy_currency or ''}".rstrip())
    return " · ".join(parts)


def job_energy(job: Job, r: JobResult) -> None:
    """The job panel's energy line (a job that ended)."""
    st.caption(energy_text(r, job.params.frames))


def _filtered(window: Any, versions: tuple[tuple[str, str], ...]) -> Any:
    """The page's window with the version filter added (the same class: its answers are shared and cached alike)."""
    return type(window)(window.root, dataclasses.replace(window.run_filter, versions=versions))


def version_filter(window: Any) -> tuple[tuple[str, str], ...]:
    """A version column and the values of it to keep; () keeps every run."""
    c1, c2 = st.columns([1, 3])
    column = c1.selectbox("Version of", RUN_VERSION_COLUMNS, format_func=VERSION_LABELS.get, key="an_version_column")
    values = c2.multiselect(f"Only runs with {VERSION_LABELS[column]}", window.ask("version_values", column),
                            key="an_version_values", placeholder="every version")
    return tuple((column, value) for value in values)


def tab(window: Any) -> None:
    """The Analytics tab: energy per setting and a comparison by version, both under a filter by software version.
    `window`: the page's shared window (its `ask` answers data.analytics' questions over its runs)."""
    versions = version_filter(window)
    shown = _filtered(window, versions) if versions else window
    st.subheader("Energy and cost per video")
    energy = shown.ask("energy_per_setting").to_pandas()
    if energy.empty:
        st.info("No succeeded runs in this window" + (" with that version." if versions else "."))
    else:
        st.dataframe(energy, hide_index=True, column_config=ENERGY_COLUMNS)
        st.caption("Succeeded runs per setting: the GPU's energy over each job (NVML's energy counter read at the "
                   "job's start and end; power × time on GPUs without the counter), median per video, per second "
                   "of video (frames / fps) and per generated frame; the cost at `engine.energy_price_per_kwh`. "
                   "CPU jobs have no GPU energy ('with energy' counts the runs that have a figure).")
    st.subheader("Before and after a version changed")
    column = st.session_state.get("an_version_column") or RUN_VERSION_COLUMNS[0]
    compared = shown.ask("version_comparison", column).to_pandas()
    if compared.empty:
        st.info(f"No setting in this window ran under two {VERSION_LABELS[column]} versions. Every run record names "
                "its i2vmon, torch, diffusers, CUDA and driver versions; after an upgrade, run a setting again to "
                "compare.")
        return
    st.dataframe(compared, hide_index=True, column_config=ENERGY_COLUMNS)
    st.caption(f"Settings run under two {VERSION_LABELS[column]} versions or more, oldest version first "
               "(succeeded runs; 'not recorded': runs older than the version columns).")
