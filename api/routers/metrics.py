"""/api/metrics: the latest sample of every GPU and host, GPU history from Parquet, and alerts."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api import sse
from api.deps import ApiContext, context
from api.encode import plain
from api.errors import responses
from api.examples import example
from api.window import window
from data import live
from data.schemas import schema_for
from engine.intake.validation import InputError

router = APIRouter(tags=["metrics"])

GPU_FIELDS = tuple(schema_for("gpu_samples").names)
FIELDS_HELP = f"columns, comma-separated or repeated; known: {', '.join(GPU_FIELDS)}"


class HostLatest(BaseModel):
    hostname: str
    ts: datetime
    age_s: float
    host: dict[str, Any]
    gpus: list[dict[str, Any]]
    processes: list[dict[str, Any]]


class LatestOut(BaseModel):
    hosts: list[HostLatest]


class SamplesOut(BaseModel):
    since: datetime
    until: datetime
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool


class AlertsOut(BaseModel):
    active: list[dict[str, Any]]
    events: list[dict[str, Any]]


@router.get("/api/metrics/latest", response_model=LatestOut, responses=example("latest"), summary="the latest sample of every GPU and of each host")
def latest(ctx: ApiContext = Depends(context)) -> Any:
    hosts = []
    for snap in live.read_snapshots(ctx.paths):
        body = snap.to_json()
        hosts.append({"hostname": snap.host.host, "ts": snap.ts, "age_s": round(snap.age_s(), 3), **body})
    return {"hosts": plain(hosts)}


@router.get("/api/metrics", response_model=SamplesOut, responses=responses(400) | example("metrics"),
            summary="GPU samples between since and until (default: the last 10 minutes)")
def history(
    since: datetime | None = Query(None, description="ISO 8601; no zone means UTC"),
    until: datetime | None = Query(None, description="ISO 8601; default now"),
    gpu: list[int] | None = Query(None, description="GPU indices (repeat the parameter)"),
    host: str | None = Query(None, max_length=253, description="only this host"),
    fields: list[str] | None = Query(None, description=FIELDS_HELP),
    limit: int = Query(100_000, ge=1, le=1_000_000, description="at most this many rows (oldest first)"),
    ctx: ApiContext = Depends(context),
) -> Any:
    span = window(since, until, timedelta(minutes=10))
    chosen = [f.strip() for value in (fields or []) for f in value.split(",") if f.strip()]
    if any(not 0 <= g < 1024 for g in gpu or []):
        raise InputError(f"gpu must be GPU indices between 0 and 1023, not {gpu}")
    try:
        table = ctx.store.gpu_samples(span.since, span.until, gpus=gpu, host=host, fields=chosen or None)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    truncated = table.num_rows > limit
    return {"since": span.since, "until": span.until, "columns": table.column_names,
            "rows": plain(table.slice(0, limit).to_pylist()), "truncated": truncated}


@router.get("/api/alerts", response_model=AlertsOut, responses=responses(400) | example("alerts"),
            summary="alerts firing now on every host, and alert events between since and until (default: the last day)")
def alerts(
    since: datetime | None = Query(None, description="ISO 8601; no zone means UTC"),
    until: datetime | None = Query(None),
    ctx: ApiContext = Depends(context),
) -> Any:
    span = window(since, until, timedelta(days=1))
    events = ctx.store.alert_events(span.since, span.until).to_pylist()
    return {"active": active_alerts(ctx), "events": plain(events)}


def active_alerts(ctx: ApiContext) -> list[dict]:
    # An active alert is the AlertEvent that fired it, with `since` (its ts) as this route has always named it.
    return plain([dataclasses.asdict(a) | {"since": a.ts}
                  for a in live.read_active_alerts(ctx.paths, max_age=live.alert_max_age(ctx.settings))])


@router.get("/api/alerts/events", response_class=StreamingResponse, responses=example("alert_events", sse.MEDIA_TYPE),
            summary="the alerts firing now as server-sent events: the current set first, then each change")
def alert_events(request: Request, ctx: ApiContext = Depends(context)) -> StreamingResponse:
    return sse.response(sse.alert_events(request, lambda: active_alerts(ctx)))
