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

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dermalens import __version__
from dermalens.inference.predictor import Classifier
from dermalens.server import errors
from dermalens.server.batcher import InferenceService
from dermalens.server.form import invalid_field
from dermalens.server.log import PredictionLog
from dermalens.server.modelcard import model_card
from dermalens.server.routes import history, model, pages, predict
from dermalens.server.settings import ServerSettings
from dermalens.server.state import ServerState

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


class SecurityHeaders:
    """Headers that cost nothing: no MIME sniffing by browsers, no framing, no referrer leaks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def _load(settings: ServerSettings, classifier: Classifier | None) -> ServerState:
    classifier = classifier or Classifier.load(
        settings.model_arg(), tta=settings.tta, threads=settings.ort_threads(), coverage=settings.coverage
    )
    target = settings.log_target()
    prediction_log = PredictionLog(target) if target is not None else None
    service = InferenceService(classifier, settings.max_batch, settings.concurrent_batches)
    meta = classifier.meta
    block = {
        "model_id": meta.model_id,
        "name": meta.name,
        "version": meta.version,
        "architecture": meta.architecture,
        "members": len(classifier.members),
    }
    card = model_card(classifier, settings)
    return ServerState(settings, classifier, service, prediction_log, time.time(), card, block)


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
        try:
            yield
        finally:
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
    )
    errors.install(app, settings.max_bytes, invalid_field)
    app.add_middleware(SecurityHeaders)
    for router in (predict.router, model.router, history.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(pages.router)
    static = Path(str(resources.files("dermalens.server") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process of `dermalens serve --workers N` (settings from ``DERMALENS_*``)."""
    return create_app(ServerSettings())
