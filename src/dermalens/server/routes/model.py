"""`GET /api/v1/model` (the model card) and `GET /api/v1/health` (for load balancers and tests)."""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from dermalens import __version__
from dermalens.server.auth import current_user
from dermalens.server.schemas import Health, ModelCard
from dermalens.server.state import get_state

router = APIRouter(tags=["model"])


@router.get(
    "/model",
    response_model=ModelCard,
    summary="The served model's card, classes, limits and disclaimer",
    dependencies=[Depends(current_user)],
)
async def get_model(request: Request) -> dict[str, Any]:
    state = get_state(request)
    return state.card


@router.get(
    "/health",
    response_model=Health,
    summary="Liveness: the model is loaded and requests are served (no token needed)",
)
async def health(request: Request) -> dict[str, Any]:
    state = get_state(request)
    return {
        "status": "ok",
        "model_id": state.classifier.meta.model_id,
        "version": __version__,
        "uptime_s": round(time.time() - state.started, 1),
        "log": state.log is not None,
        "process": os.getpid(),
    }
