"""What the lifespan builds and every request reads: the shared, read-only server state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from dermalens.inference.predictor import Classifier
from dermalens.server.batcher import InferenceService
from dermalens.server.limits import RateLimiter, UploadSlots
from dermalens.server.log import PredictionLog
from dermalens.server.privacy import NameHasher
from dermalens.server.settings import ServerSettings
from dermalens.server.tokens import TokenStore


@dataclass
class ServerState:
    """Settings, the loaded model, the inference service and the log (None when logging is off)."""

    settings: ServerSettings
    classifier: Classifier
    service: InferenceService
    log: PredictionLog | None
    started: float
    #: The model card (`GET /model`, About page), built once at start-up: it cannot change while serving.
    card: dict[str, Any] = field(default_factory=dict)
    #: The model block of every predict response, less its per-request ``tta``.
    model_block: dict[str, Any] = field(default_factory=dict)
    #: The API tokens (in the log database); None when the server is open (--no-auth, or no log).
    tokens: TokenStore | None = None
    rate: RateLimiter = field(default_factory=lambda: RateLimiter(0))
    uploads: UploadSlots = field(default_factory=lambda: UploadSlots(1024))
    #: What a file's name is logged as (itself, or its keyed hash).
    name: NameHasher = field(default_factory=lambda: NameHasher(None))


def get_state(request: Request) -> ServerState:
    """The state of the app serving `request` (set by the lifespan)."""
    state: ServerState = request.app.state.dermalens
    return state
