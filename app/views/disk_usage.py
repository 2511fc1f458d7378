"""What takes the data directory's space, kind by kind, beside how long the retention settings keep each
(data/retention.py measures; this only draws). Shown at the bottom of the Live monitor."""

from __future__ import annotations

import shutil

import pandas as pd
import streamlit as st

from app.views import formatting as fmt, resources
from data.paths import paths_for
from data.retention import (
    ALERT_EVENTS,
    COMPILE_CACHE,
    LOGS,
    QUEUE_ROWS,
    RAW_SAMPLES,
    ROLLUPS,
    RUN_RECORDS,
    VIDEOS,
    SpaceUse,
    disk_usage,
)

_SETTING = {  # kind → its retention setting (days), for the "kept" column
    RAW_SAMPLES: "raw_samples_days", ROLLUPS: "rollups_days", ALERT_EVENTS: "alert_events_days",
    RUN_RECORDS: "runs_days", VIDEOS: "videos_days", QUEUE_ROWS: "queue_days", LOGS: "logs_days",
    COMPILE_CACHE: "compile_cache_days",
}
_ALWAYS = {"ratings": "always (rated videos are never pruned)", "live files": "replaced as they go",
           "quarantine": "until moved by hand"}


@st.cache_data(ttl=300, show_spinner="Measuring the data directory…")
def _usage(root: str) -> list[SpaceUse]:
    """Cached for 5 minutes: measuring walks every file of the data directory."""
    return disk_usage(paths_for(root))


def _kept(kind: str, retention: object) -> str:
    if kind in _ALWAYS:
        return _ALWAYS[kind]
    if kind not in _SETTING:
        return "forever"
    days = getattr(retention, _SETTING[kind])
    kept = f"{days:g} days" if days else "forever"
    if kind == VIDEOS and retention.videos_max_gb:  # type: ignore[attr-defined]
        kept += f", at most {retention.videos_max_gb:g} GB"  # type: ignore[attr-defined]
    return f"{kept} (retention.{_SETTING[kind]})"


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes < 2**30 else fmt.gib(nbytes)


def disk_usage_panel() -> None:
    """An expander: the data directory's total and the disk's free space, then each kind's size, files, oldest day
    and how long it is kept."""
    settings = resources.settings()
    paths = resources.paths(settings)
    with st.expander("Disk usage of the data directory"):
        uses = _usage(str(paths.root))
        total = sum(u.bytes for u in uses)
        disk = shutil.disk_usage(paths.root)
        st.caption(f"`{paths.root}`: {_size(total)} in all; {fmt.gib(disk.free)} free of {fmt.gib(disk.total)} on its "
                   "disk. Measured every 5 minutes.")
        st.dataframe(pd.DataFrame([{
            "what": u.kind, "size": _size(u.bytes), "share": fmt.percent(100 * u.bytes / total if total else None),
            "files": u.files, "oldest day": u.oldest.isoformat() if u.oldest else "",
            "kept": _kept(u.kind, settings.retention),
        } for u in uses if u.bytes or u.files]), hide_index=True, width="stretch")
        st.caption(f"The collector prunes once a day at {settings.retention.prune_hour_utc:02d}:00 UTC; "
                   "`python -m collector prune --dry-run` shows what would go now and how much it frees.")
