"""/api/runs: finished runs from the Parquet history, filtered; JSON, or CSV with `Accept: text/csv`."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import ApiContext, context
from api.encode import plain
from api.errors import responses
from api.examples import EXAMPLES, JOB_ID
from api.window import EARLIEST, window
from engine.queue.models import SUCCEEDED, FinalState

router = APIRouter(tags=["runs"])

SIDE = Query(None, ge=1, le=16384)


class RunsOut(BaseModel):
    runs: list[dict[str, Any]]
    count: int


def to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else json.dumps(row[c]) if isinstance(row[c], (list, dict)) else row[c]
                         for c in columns])
    return out.getvalue()


def wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


@router.get(
    "/api/runs", response_model=RunsOut, responses=responses(400) | {200: {"content": {"application/json": {"example": EXAMPLES["runs"]}, "text/csv": {
        "example": f"job_id,model,state,total_s\n{JOB_ID},{EXAMPLES['runs']['runs'][0]['model']},{SUCCEEDED},6.4\n"}},
        "description": "runs"}},
    summary="run records, newest first (CSV with Accept: text/csv)",
)
def runs(
    request: Request,
    model: str | None = Query(None, max_length=100),
    state: FinalState | None = Query(None),
    gpu_name: str | None = Query(None, max_length=200),
    height: int | None = SIDE,
    width: int | None = SIDE,
    frames: int | None = Query(None, ge=1, le=10000),
    steps: int | None = Query(None, ge=1, le=10000),
    since: datetime | None = Query(None, description="finished at or after (ISO 8601; default: all)"),
    until: datetime | None = Query(None, description="finished at or before (default now)"),
    limit: int = Query(500, ge=1, le=100_000),
    ctx: ApiContext = Depends(context),
) -> Any:
    span = window(since or EARLIEST, until, timedelta(0))
    filters = {"model": model, "state": state, "gpu_name": gpu_name, "height": height, "width": width, "frames": frames, "steps": steps}
    table = ctx.store.runs(since=span.since, until=span.until, limit=limit, **filters)
    rows = plain(table.to_pylist())
    if wants_csv(request):
        return Response(to_csv(rows, table.column_names), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="runs.csv"'})
    return {"runs": rows, "count": len(rows)}
