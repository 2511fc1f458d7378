"""/api/health: answers while the API runs; open without a token (a load balancer's or supervisor's probe)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api import deps
from api.examples import example
from config import Settings

router = APIRouter(tags=["health"])


@router.get("/api/health", responses=example("health"), summary="liveness: answers while the API runs (no token needed)")
def health(settings: Settings = Depends(deps.settings)) -> dict[str, str]:
    return {"status": "ok", "hostname": settings.hostname}
