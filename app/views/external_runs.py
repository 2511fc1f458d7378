"""Runs of users' own scripts and notebooks (`engine.instrument`), labelled external: one table, shown on the Live
monitor (the latest) and in Analytics (the window's), so they sit beside the engine's jobs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from app.views import formatting as fmt, resources
from data import analytics, live
from data.store import Store

HOW_TO = ("Your own diffusers script shows here with two lines: `from engine import instrument` and "
          "`pipe = instrument(pipe)` (README, *Instrument your own script*; example: `examples/instrument_smoke.py`).")


# A script's progress file not updated for this long is of a script killed mid-run (a step of a large model on a
# slow GPU can take minutes, so not much less).
RUNNING_MAX_AGE = timedelta(minutes=10)
RECENT = timedelta(days=7)  # without a window (the Live monitor): the runs of the last week
TTL_S = 5  # the Live monitor refreshes every second: one read of the history per TTL for every session


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner=False)
def _latest(root: str, since: datetime, limit: int) -> list[dict]:
    return analytics.external_runs(resources._store(root), since=since, limit=limit).to_pylist()


def running_external_runs(store: Store) -> None:
    """The runs under way in users' scripts now: script, model, stage, step."""
    for p in live.read_external_progress(store.paths, max_age=RUNNING_MAX_AGE):
        step = f" · step {p.step}/{p.total_steps}" if p.total_steps else (f" · step {p.step}" if p.step else "")
        st.markdown(f"▶️ external · **{p.label}** (pid {p.pid} on {p.host}) · {p.model} · {p.stage or 'under way'}{step} · "
                    f"started {fmt.age(p.started_at)}")
        if p.total_steps:
            st.progress(min(1.0, p.step / p.total_steps))


def external_runs_table(store: Store, *, since: datetime | None = None, limit: int = 20, title: str = "External runs",
                        running: bool = False) -> None:
    """The latest external runs as a table (script, model, state, size, time, s/step, peaks, energy), or how to
    get some; with `running`, the ones under way first."""
    st.subheader(title)
    if running:
        running_external_runs(store)
    if since is None:  # a whole day, so that the cache key changes once a day, not every second
        since = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - RECENT
    rows = _latest(str(store.paths.root), since, limit)
    if not rows:
        st.caption(f"No external run yet. {HOW_TO}")
        return
    st.dataframe(pd.DataFrame([{
        "source": f"external · {r['source_label'] or 'script'}",
        "run": r["job_id"][:8],
        "ended": fmt.age(r["finished_at"]),
        "model": r["model"] + (" (smoke test)" if r["smoke_test"] else ""),
        "state": r["state"] + (f" · {r['error_kind']}" if r["error_kind"] else ""),
        "size": f"{fmt.resolution(r['height'], r['width'])} · {r['frames'] if r['frames'] is not None else fmt.NA} fr",
        "steps": r["steps"],
        "time": fmt.seconds(r["total_s"]),
        "s/step": fmt.number(r["s_per_step"], ".3f"),
        "denoise": fmt.seconds(r["stage_denoising_loop_s"]),
        "decode": fmt.seconds(r["stage_decode_video_s"]),
        "GPU peak": fmt.gib(r["peak_allocated_bytes"]),
        "host peak": fmt.gib(r["peak_host_rss_bytes"]),
        "energy": fmt.number(r["energy_j"], ".0f", "J"),
        "GPU": r["gpu_name"] or fmt.NA,
    } for r in rows]), hide_index=True)
    st.caption(HOW_TO)
