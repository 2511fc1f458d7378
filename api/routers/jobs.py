"""/api/jobs: submit (the same validation and pre-flight as the CLI), list, status, cancel, video, reorder (the
queue's own move / set_priority, as the UI's queue table and `engine move` call them), rate (data.ratings, as the
Quality review page), and the job's progress as server-sent events.

A job's answer (JobOut) is the API's flat view of the queue's Job, its Progress and its JobResult (renamed:
`timings` is the result's `stages`, `video_url` points at the video route); cancel answers the queue's
CancelOutcome itself.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, Path as PathParam, Query, Request, UploadFile
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from api import sse
from api.deps import ApiContext, context
from api.encode import plain
from api.errors import problem, responses
from api.examples import JOB_ID as EXAMPLE_JOB_ID, example
from data.ratings import MAX_NOTE_CHARS, RatingRefused, append_rating
from data.schemas import RatingEvent
from engine.intake.submission import PreflightRefused, submit
from engine.intake.validation import parse_params_json
from engine.queue.models import CancelOutcome, Job, JobResult, JobState

router = APIRouter(tags=["jobs"])

JOB_ID = PathParam(..., min_length=1, max_length=64, description="the job id (32 hex digits)",
                   openapi_examples={"a job": {"value": EXAMPLE_JOB_ID}})
PRIORITY_RANGE = (-1000, 1000)  # as `engine submit --priority` and `engine move --priority` take it


class JobOut(BaseModel):
    id: str
    state: JobState
    model: str
    params: dict[str, Any]
    priority: int
    position: float
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    worker_id: str | None
    gpu_index: int | None
    stage: str | None
    step: int
    total_steps: int
    eta_s: float | None
    eta_margin_s: float | None  # ± seconds around eta_s (the ETA's stated uncertainty); 0 once succeeded
    elapsed_s: float | None
    progress_at: datetime | None
    cancel_requested: bool
    cancel_reason: str | None
    error_kind: str | None
    error_message: str | None
    timings: dict[str, float | None]  # seconds per stage, named as in data.schemas.STAGES
    total_s: float | None
    step_times_s: list[float | None]
    step_experts: list[str]  # the denoiser of each step; a mixture of experts switches once
    expert: str | None  # a running mixture of experts: the denoiser of the latest step
    peak_host_rss_bytes: int | None  # the worker's peak host memory over the job (offload keeps weights there)
    predicted: dict[str, Any]
    smoke_test: bool | None
    video_url: str | None


class JobEvent(BaseModel):
    at: datetime | None
    state: str
    message: str | None


class JobDetailOut(JobOut):
    events: list[JobEvent]


class JobListOut(BaseModel):
    jobs: list[JobOut]
    counts: dict[str, int]
    total: int  # the jobs in the asked states, all pages together
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last one


class SubmittedOut(BaseModel):
    job: JobOut
    preflight: str
    prediction: dict[str, Any]


class PreflightRefusedOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    suggestions: list[dict[str, Any]]
    prediction: dict[str, Any]


def job_out(job: Job) -> dict:
    result = JobResult.from_stored(job.result)
    return plain({
        "id": job.id, "state": job.state, "model": job.model, "params": job.params.to_dict(), "priority": job.priority,
        "position": job.position, "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "attempts": job.attempts, "worker_id": job.worker_id, "gpu_index": job.gpu_index,
        "stage": job.progress.stage, "step": job.progress.step, "total_steps": job.progress.total_steps,
        "eta_s": job.progress.eta_s, "eta_margin_s": job.progress.eta_margin_s,
        "elapsed_s": job.progress.elapsed_s, "progress_at": job.progress_at,
        "cancel_requested": job.cancel_requested, "cancel_reason": job.cancel_reason,
        "error_kind": job.error_kind, "error_message": job.error_message,
        "timings": dict(result.stages), "total_s": result.total_s,
        "step_times_s": list(result.step_times_s), "step_experts": list(result.step_experts),
        "expert": job.progress.expert, "peak_host_rss_bytes": result.peak_host_rss_bytes,
        "predicted": dict(job.predicted or {}),
        "smoke_test": result.smoke_test,
        "video_url": f"/api/jobs/{job.id}/video" if job.succeeded and result.video_path else None,
    })


def _printable(name: str | None) -> str:
    cleaned = "".join(c for c in (name or "") if c.isprintable())[:100]
    return f"image {cleaned}" if cleaned else "the image"


@router.post(
    "/api/jobs", status_code=201, response_model=SubmittedOut, summary="submit a job",
    responses=responses(400, 413) | example("submit_job", status=201)
    | {409: {"model": PreflightRefusedOut, "description": "predicted not to fit the GPU's free memory"}},
)
def submit_job(
    image: UploadFile = File(..., description="the first frame: PNG, JPEG, WEBP, BMP, GIF or TIFF"),
    params: str = Form(..., description='JSON object: {"model": "svd", "height": 576, "width": 1024, "frames": 14, …}; '
                       '"speed_trades": ["fp8", "int8attn", "cache"] opts into the quality trades the model offers'),
    force: bool = Form(False, description="queue even if predicted not to fit the GPU's free memory"),
    priority: int = Form(0, ge=-1000, le=1000, description="higher runs first"),
    ctx: ApiContext = Depends(context),
) -> Any:
    raw = parse_params_json(params)
    try:
        submitted = submit(ctx.settings, ctx.queue, raw, image.file.read(), image_name=_printable(image.filename),
                           force=force, priority=priority)
    except PreflightRefused as exc:
        return problem(409, str(exc), suggestions=plain(exc.suggestions), prediction=plain(exc.prediction))
    return {"job": job_out(submitted.job), "preflight": submitted.preflight_message, "prediction": plain(submitted.prediction)}


@router.get("/api/jobs", response_model=JobListOut, responses=example("list_jobs"), summary="jobs: running, then queued in order, then finished")
def list_jobs(
    state: list[JobState] | None = Query(None, description="only these states (repeat the parameter)"),
    limit: int = Query(50, ge=1, le=1000, description="at most this many jobs on this page"),
    cursor: str | None = Query(None, max_length=18, pattern=r"^[0-9]+$",
                               description="the previous page's next_cursor: where this page starts"),
    ctx: ApiContext = Depends(context),
) -> Any:
    """A page of the list. The cursor is a position in the list's order, so a job that changes state between two
    pages can be shown twice or skipped; `total` and `counts` are read with the page."""
    states = tuple(state) if state else None
    offset = int(cursor) if cursor else 0
    jobs = ctx.queue.list(states, limit=limit, offset=offset)
    counts = ctx.queue.counts()
    total = sum(counts.values()) if not states else sum(counts.get(s, 0) for s in set(states))
    more = len(jobs) == limit and offset + limit < total
    return {"jobs": [job_out(j) for j in jobs], "counts": counts, "total": total,
            "next_cursor": str(offset + limit) if more else None}


@router.get("/api/jobs/{job_id}", response_model=JobDetailOut, responses=responses(404) | example("get_job"),
            summary="one job: state, stage, step, ETA, stage timings, events")
def get_job(job_id: str = JOB_ID, ctx: ApiContext = Depends(context)) -> Any:
    job = ctx.queue.get(job_id)
    return job_out(job) | {"events": plain(ctx.queue.events(job_id))}


@router.delete("/api/jobs/{job_id}", response_model=CancelOutcome, responses=responses(404) | example("cancel_job"),
               summary="cancel a queued job, or stop a running one at its next step")
def cancel_job(
    job_id: str = JOB_ID,
    reason: str = Query("cancelled through the API", min_length=1, max_length=200),
    ctx: ApiContext = Depends(context),
) -> Any:
    return ctx.queue.cancel(job_id, "".join(c for c in reason if c.isprintable()) or "cancelled through the API")


@router.get(
    "/api/jobs/{job_id}/video", response_class=FileResponse, summary="the job's MP4",
    responses=responses(404) | {200: {"content": {"video/mp4": {"example": "(the MP4's bytes)"}}, "description": "the H.264 MP4"}},
)
def get_video(job_id: str = JOB_ID, ctx: ApiContext = Depends(context)) -> FileResponse:
    job = ctx.queue.get(job_id)
    if not job.succeeded:
        hint = "; its video exists once it has succeeded" if not job.is_final else "; it has no video"
        raise HTTPException(404, f"job {job_id} is {job.state}{hint}")
    recorded = JobResult.from_stored(job.result).video_path
    if not recorded:
        raise HTTPException(404, f"job {job_id} succeeded but recorded no video")
    path = Path(recorded)
    if not path.is_file():
        # A data directory shared by several hosts may be mounted elsewhere here: the same name in this job's folder.
        try:
            local = ctx.paths.job_dir(job_id) / path.name
        except ValueError:
            local = path
        if not local.is_file():
            raise HTTPException(404, f"the video of job {job_id} ({path}) was deleted or moved")
        path = local
    return FileResponse(path, media_type="video/mp4", filename=f"{job_id}.mp4")


class MoveIn(BaseModel):
    """Exactly one of: `to` the top or bottom of its priority's jobs, `before` another queued job (the UI's "up"
    is before the job ahead of it), or a new `priority` (higher runs first)."""

    to: Literal["top", "bottom"] | None = None
    before: str | None = Field(None, min_length=1, max_length=64, description="the id of a queued job")
    priority: int | None = Field(None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])


@router.post(
    "/api/jobs/{job_id}/move", response_model=JobOut, summary="reorder a queued job: to the top or bottom, before another, or a new priority",
    responses=responses(400, 404, 409) | example("move_job"),
)
def move_job(
    job_id: str = JOB_ID,
    move: MoveIn = Body(..., openapi_examples={"to the top": {"value": {"to": "top"}},
                                               "before another": {"value": {"before": EXAMPLE_JOB_ID}},
                                               "priority": {"value": {"priority": 5}}}),
    ctx: ApiContext = Depends(context),
) -> Any:
    given = [name for name in ("to", "before", "priority") if getattr(move, name) is not None]
    if len(given) != 1:
        raise HTTPException(400, f"give exactly one of to, before, priority (got {', '.join(given) or 'none'})")
    if move.priority is not None:
        return job_out(ctx.queue.set_priority(job_id, move.priority))
    return job_out(ctx.queue.move(job_id, before=move.before, to=move.to))


class RatingIn(BaseModel):
    stars: int = Field(..., ge=1, le=5, description="1 to 5, as the Quality review page's stars")
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)


@router.put(
    "/api/jobs/{job_id}/rating", response_model=RatingEvent, summary="rate a finished video 1–5 stars, with a note",
    responses=responses(400, 404, 409) | example("rate_job"),
)
def rate_job(
    job_id: str = JOB_ID,
    rating: RatingIn = Body(..., openapi_examples={"four stars": {"value": {"stars": 4, "note": "smooth motion"}}}),
    ctx: ApiContext = Depends(context),
) -> Any:
    """The latest rating of a job wins; earlier ones stay in the history (data/ratings.py)."""
    runs = ctx.store.runs_for([job_id])
    if not runs:
        job = ctx.queue.get(job_id)  # JobNotFound: 404
        raise HTTPException(409, f"job {job_id} is {job.state}; rate it once its video is done")
    if not any(r.get("video_path") for r in runs):
        raise HTTPException(409, f"job {job_id} ended {runs[0]['state']} without a video; only a video can be rated")
    try:
        return append_rating(ctx.paths, job_id, rating.stars, rating.note, ctx.settings.hostname)
    except RatingRefused as exc:
        raise HTTPException(400, str(exc)) from None


@router.get(
    "/api/jobs/{job_id}/events", response_class=StreamingResponse, responses=responses(404) | example("job_events", sse.MEDIA_TYPE),
    summary="the job's progress as server-sent events, ending with an `end` event when the job ends",
)
def job_events(request: Request, job_id: str = JOB_ID, ctx: ApiContext = Depends(context)) -> StreamingResponse:
    ctx.queue.get(job_id)  # an unknown job: 404 before the stream starts

    def read() -> tuple[dict, tuple, bool]:
        job = ctx.queue.get(job_id)
        p = job.progress
        return job_out(job), (job.state, job.progress_at, p.stage, p.step, p.eta_s, job.cancel_requested), job.is_final

    return sse.response(sse.job_events(request, read))
