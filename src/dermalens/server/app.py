"""The app factory: `create_app(settings)` → one FastAPI app serving the REST API and the web pages.

The model is loaded once, in the lifespan (so importing this module or building the app
is cheap and test-friendly), and shared read-only by all requests; inference runs in
worker threads through `InferenceService`. Nothing here imports torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dermalens import __version__
from dermalens.inference.predictor import Classifier
from dermalens.server import errors
from dermalens.server.batcher import InferenceService
from dermalens.server.form import invalid_field
from dermalens.server.limits import RateLimiter, UploadSlots
from dermalens.server.log import PredictionLog
from dermalens.server.modelcard import model_card
from dermalens.server.privacy import NameHasher, load_key, retention_loop
from dermalens.server.routes import history, login, model, pages, predict
from dermalens.server.security_headers import SecurityHeaders
from dermalens.server.settings import ServerSettings
from dermalens.server.state import ServerState
from dermalens.server.tokens import TokenStore

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def _load(settings: ServerSettings, classifier: Classifier | None) -> ServerState:
    classifier = classifier or Classifier.load(
        settings.model_arg(), tta=settings.tta, threads=settings.ort_threads(), coverage=settings.coverage
    )
    target = settings.log_target()
    prediction_log = PredictionLog(target) if target is not None else None
    service = InferenceService(classifier, settings.max_batch, settings.batches())
    meta = classifier.meta
    block = {
        "model_id": meta.model_id,
        "name": meta.name,
        "version": meta.version,
        "architecture": meta.architecture,
        "members": len(classifier.members),
        "member_names": [m.meta.name for m in classifier.members],
    }
    card = model_card(classifier, settings)
    state = ServerState(settings, classifier, service, prediction_log, time.time(), card, block)
    if prediction_log is not None and not settings.no_auth:
        state.tokens = TokenStore(prediction_log)
        state.tokens.enabled()  # before the first request: a server with tokens is never open
    state.rate = RateLimiter(settings.rate_limit)
    state.uploads = UploadSlots(settings.max_uploads_per_client)
    state.name = NameHasher(load_key(settings.filename_key) if settings.filename_key else None)
    return state


def create_app(settings: ServerSettings | None = None, classifier: Classifier | None = None) -> FastAPI:
    """Build the app; the model (unless given, already loaded) and the log open when the server starts."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await anyio.to_thread.run_sync(_load, settings, classifier)
        await state.service.start()
        app.state.dermalens = state
        log.info(
            "serving %s (%d member(s)); log: %s; images stored: %s",
            state.classifier.meta.model_id,
            len(state.classifier.members),
            state.log or "off",
            settings.store_images or "no",
        )
        if settings.no_auth:
            log.warning(
                "serving WITHOUT authentication (--no-auth): anyone who reaches %s may use it", settings.host
            )
        async with anyio.create_task_group() as tasks:
            if state.tokens is not None:
                tasks.start_soon(state.tokens.watch)
            if state.log is not None and settings.retention_days:
                tasks.start_soon(retention_loop, state.log, settings.retention_days)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
                await state.service.stop()
                if state.log is not None:
                    state.log.close()

    app = FastAPI(
        title="DermaLens",
        version=__version__,
        description=(
            "Dermoscopy lesion classifier: malignancy probability, 7-class diagnosis, heatmap and an "
            "out-of-distribution gate. Research and education only; not a diagnosis."
        ),
        lifespan=lifespan,
        docs_url=None,  # served by `routes.pages` behind the same login as everything else
        openapi_url=None,
    )
    errors.install(app, settings.max_bytes, invalid_field)
    app.add_middleware(SecurityHeaders)
    for router in (predict.router, model.router, history.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(pages.router)
    app.include_router(login.router)
    static = Path(str(resources.files("dermalens.server") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process of `dermalens serve --workers N` (settings from ``DERMALENS_*``)."""
    return create_app(ServerSettings())
