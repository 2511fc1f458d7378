"""The notification panel: each configured target, what reached it, and the deliveries failing now (with the
receiver's answer), read from the outbox the collector delivers from."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from app.views import formatting as fmt, resources
from app.views.frame import live_fragment
from config.settings import EVENT_KINDS, NotificationTarget
from data.outbox import Outbox

REFRESH_S = 10


@st.cache_resource(show_spinner=False, max_entries=8)
def _outbox(path: str) -> Outbox:
    return Outbox(Path(path))


def where(target: NotificationTarget) -> str:
    """Where a target points, without what may be a secret (a token in a path, an Apprise URL's credentials)."""
    if target.kind == "apprise":
        return ", ".join(f"{url.split('://')[0]}://…" for url in target.url.split())
    parts = urlsplit(target.url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def _filters(target: NotificationTarget) -> str:
    out = []
    if target.only_failures:
        out.append("failures only")
    if target.min_level != "info":
        out.append(f"level ≥ {target.min_level}")
    if target.submitted_by:
        out.append(f"jobs of {', '.join(target.submitted_by)}")
    if len(target.events) < len(EVENT_KINDS):
        out.append(", ".join(target.events))
    return "; ".join(out) or "every event"


def panel() -> None:
    settings = resources.settings()
    targets = settings.notifications.targets
    st.subheader("Notifications")
    if not targets:
        st.caption("No notification targets. Add `[[notifications.targets]]` to the settings to send job ends, alerts "
                   "and worker restarts to a webhook, Alertmanager receiver, chat, e-mail or push (README, "
                   "'Notifications'); `python -m collector notify test` checks them.")
        return
    db = resources.paths(settings).notifications_db
    outbox = _outbox(str(db)) if db.exists() else None
    summary = {s.target: s for s in outbox.summary()} if outbox else {}
    rows = []
    for target in targets:
        s = summary.get(target.name)
        rows.append({
            "target": target.name, "kind": target.kind, "to": where(target), "filters": _filters(target),
            "delivered": s.delivered if s else 0, "pending": s.pending if s else 0,
            "retrying": s.failing if s else 0, "given up": s.dead if s else 0,
            "last delivered": fmt.age(s.last_delivered_at) if s and s.last_delivered_at else "never",
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)
    for s in summary.values():
        if s.failing or s.dead:
            st.error(f"**{s.target}**: {s.failing} deliveries retrying, {s.dead} given up; last error "
                     f"{fmt.age(s.last_error_at)}: {s.last_error}", icon="📭")
    failures = outbox.failures(limit=20) if outbox else []
    if failures:
        st.caption("Deliveries failing now (retried with back-off until they reach their target):")
        st.dataframe(pd.DataFrame([{
            "event": f.title, "target": f.target, "attempts": f.attempts, "error": f.last_error,
            "last attempt": fmt.timestamp(f.last_attempt_at),
            "next attempt": fmt.timestamp(f.next_attempt_at) if f.next_attempt_at else "given up",
        } for f in failures]), hide_index=True, use_container_width=True)
    elif outbox is None:
        st.caption("Nothing sent yet: the collector delivers events as they happen.")


def notifications_panel() -> None:
    """The panel, refreshed in place (the Live monitor's hook)."""
    live_fragment(panel, REFRESH_S)
