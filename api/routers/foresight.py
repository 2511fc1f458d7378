"""/api/predict and /api/recommend: a job's memory and time before it runs; the best settings that fit now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import ApiContext, context
from api.encode import plain
from api.errors import responses
from api.examples import example
from collector import capacity
from engine.foresight import predict, recommend
from engine.intake.submission import run_history
from engine.intake.validation import MAX_GUIDANCE, InputError
from engine.queue.models import OffloadMode, WeightStorage

router = APIRouter(tags=["foresight"])

Guidance = Annotated[float | None, Query(ge=0, le=MAX_GUIDANCE, description="guidance scale (default: the model's); "
                                         "1 or less: no classifier-free guidance")]


@router.get("/api/predict", responses=responses(400) | example("predict"), summary="predict a job's peak GPU memory and time")
def predict_job(
    model: str = Query(..., min_length=1, max_length=100),
    height: int = Query(..., ge=1, le=16384),
    width: int = Query(..., ge=1, le=16384),
    frames: int = Query(..., ge=1, le=10000),
    steps: int | None = Query(None, ge=1, le=500),
    decode_chunk_size: int | None = Query(None, ge=1, le=10000),
    offload: OffloadMode = Query("none", description="where the weights live: none (GPU), model, group, sequential"),
    weights: WeightStorage | None = Query(None, description="weight storage where the model offers it: bf16, fp8"),
    gpu_name: str | None = Query(None, max_length=200, description="NVML name, or 'cpu' (default: the GPU here)"),
    guidance: Guidance = None,
    ctx: ApiContext = Depends(context),
) -> dict[str, Any]:
    name = gpu_name if gpu_name is not None else capacity.free_memory(ctx.paths, settings=ctx.settings)[1]
    try:
        p = predict(model, height, width, frames, steps=steps, decode_chunk_size=decode_chunk_size, offload=offload,
                    weights=weights, gpu_name=name, history=run_history(ctx.paths, model, name), guidance=guidance)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return plain(p.to_dict())


@router.get("/api/recommend", responses=responses(400) | example("recommend"), summary="the best settings that fit the GPU's free memory now")
def recommend_settings(
    model: str = Query(..., min_length=1, max_length=100),
    gpu: int = Query(0, ge=0, le=1023, description="GPU index"),
    time_budget_s: float | None = Query(None, gt=0, le=1e6, description="seconds the job may take"),
    safety_margin_gib: float | None = Query(None, ge=0, le=1024, description="GiB left free (default: the engine setting)"),
    guidance: Guidance = None,
    ctx: ApiContext = Depends(context),
) -> dict[str, Any]:
    free, name = capacity.free_memory(ctx.paths, gpu, settings=ctx.settings)
    host_free = capacity.host_free_memory(ctx.paths, settings=ctx.settings) if name is not None else None
    margin = ctx.settings.engine.safety_margin_gib if safety_margin_gib is None else safety_margin_gib
    try:
        rec = recommend(model, free, gpu_name=name, time_budget_s=time_budget_s, safety_margin_gib=margin,
                        history=run_history(ctx.paths, model, name), guidance=guidance, host_free_bytes=host_free)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return plain(rec.to_dict() | {"gpu_index": gpu, "free_gib": None if free is None else round(free / 2**30, 3)})
