"""The shared frame: the sidebar's service status, the active-alert banner, and the page guard."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import streamlit as st

from app.views import formatting as fmt, resources
from app.views.status import ServiceStatus, collector_status, engine_status
from config import load_settings
from data import live
from data.paths import DataPaths
from engine.queue import QueueError, QueueUnavailable
from engine.queue.models import JOB_STATES

log = logging.getLogger(__name__)

SIDEBAR_REFRESH_S = 3
SERVICES_TTL_S = 2  # the sidebar's status is read once per this for every session (it refreshes every 3 s)


def guarded(main: Callable[[], None]) -> None:
    """Run a page; a failure becomes a message that says what went wrong, never a traceback."""
    try:
        main()
    except QueueUnavailable as exc:
        st.error(f"The job queue cannot be opened: {exc}. Check `queue_url` in i2vmon.toml and that the data "
                 "directory is writable.")
    except QueueError as exc:
        st.error(f"The job queue refused: {exc}")
    except OSError as exc:
        st.error(f"The data directory could not be read or written: {exc}")
    except Exception as exc:  # the page must still render; the traceback goes to the log
        log.exception("page failed")
        st.error(f"This page hit an unexpected error: {type(exc).__name__}: {exc}. The details are in the app's log.")


def live_fragment(fn: Callable[..., None], run_every: float | None, *args: object) -> None:
    """Run `fn(*args)` as a fragment refreshed every `run_every` seconds, guarded like a page."""

    @functools.wraps(fn)
    def body(*inner: object) -> None:
        guarded(lambda: fn(*inner))

    st.fragment(run_every=run_every)(body)(*args)


def alert_banner(paths: DataPaths) -> int:
    """One line per firing alert with its suggested action; returns how many are firing."""
    alerts = live.read_active_alerts(paths, max_age=live.alert_max_age(resources.settings()))
    for a in alerts:
        where = f"GPU {a.gpu_index} on {a.host}" if a.gpu_index is not None else a.host
        text = (f"**{a.message or a.rule}** ({where}"
                f"{', now ' + fmt.number(a.value, '.1f') if a.value is not None else ''}) — {a.action or 'no action given'}")
        if a.level in ("critical", "fatal"):
            st.error(text, icon="🚨")
        else:
            st.warning(text, icon="⚠️")
    return len(alerts)


@st.cache_data(ttl=SERVICES_TTL_S, max_entries=8, show_spinner=False)
def _services(root: str, queue_url: str, lease_s: float,
              sample_max_age_s: float) -> tuple[list[ServiceStatus], dict, str | None, datetime]:
    """Collector and engine status, the queue's counts, or why the queue cannot be read, and when they were
    read: read once for every session (each sidebar asks every 3 s; twenty sessions would ask seven times a
    second)."""
    read_at = datetime.now(timezone.utc)
    status = [collector_status(DataPaths(Path(root)), max_age_s=sample_max_age_s)]
    try:
        queue = resources.queue(load_settings(data_dir=root, queue_url=queue_url))
        status.append(engine_status(queue, lease_s))
        return status, queue.counts(), None, read_at
    except QueueError as exc:
        return status, {}, str(exc), read_at


def service_lines() -> None:
    """Collector and engine status with how to start what is down."""
    settings = resources.settings()
    status, counts, queue_error, read_at = _services(str(resources.paths(settings).root), settings.queue_url,
                                            settings.engine.lease_s, live.sample_max_age_s(settings))
    if queue_error is not None:
        st.markdown(f"🔴 **Queue** — cannot be opened: {queue_error}")
    for s in status:
        st.markdown(f"{s.icon} **{s.name.capitalize()}** — {s.message}")
        if s.how_to_start:
            st.caption(f"start it: `{s.how_to_start}` (or `python -m app`, which supervises both)")
    if counts:
        st.caption(" · ".join(f"{k} {counts.get(k, 0)}" for k in JOB_STATES))
    st.caption(f"updated {fmt.age(read_at)} · refreshes every {SIDEBAR_REFRESH_S} s")


def sidebar() -> None:
    paths = resources.paths()
    with st.sidebar:
        st.caption(f"Data directory: `{paths.root}`")
        live_fragment(service_lines, SIDEBAR_REFRESH_S)


def banner() -> None:
    paths = resources.paths()
    live_fragment(alert_banner, 2, paths)
