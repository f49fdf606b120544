"""`POST /api/v1/predict`: images in, predictions out (see `server.uploads` for the failure policy)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from dermalens.core.formats import Sniffed
from dermalens.inference.results import DISCLAIMER, Prediction, PredictionError
from dermalens.server.auth import User
from dermalens.server.batcher import Options, Result
from dermalens.server.form import FIELDS_HELP, MultipartRoute, PredictForm
from dermalens.server.log import log_row
from dermalens.server.render import api_result
from dermalens.server.schemas import ErrorResponse, PredictResponse
from dermalens.server.state import ServerState, get_state
from dermalens.server.storage import store_image
from dermalens.server.uploads import Upload, decode_error, files_failed, predict_request

# MultipartRoute checks the body's framing and parses the form before FastAPI validates it.
router = APIRouter(tags=["predict"], route_class=MultipartRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "malformed multipart body"),
        (401, "no token, or a wrong or revoked one (on a server with tokens)"),
        (429, "too many requests for this token, or too many uploads of one client at once"),
        (413, "too many files, too many bytes, or an image with too many pixels"),
        (415, "not multipart, or a file that is not an accepted image (sniffed from its content)"),
        (422, "empty, corrupt or truncated image; no files; invalid option, label or patient metadata"),
    )
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=_ERRORS,
    summary="Predict malignancy, diagnosis, OOD flag (and heatmaps) for up to max_files images",
)
async def predict(
    request: Request,
    user: User,
    files: Annotated[list[UploadFile], File(description=FIELDS_HELP["files"])],
    form: Annotated[PredictForm, Form()],
    compare: Annotated[
        bool, Query(description="also return each ensemble member's own result (several models loaded)")
    ] = False,
) -> dict[str, Any]:
    state = get_state(request)
    body = await predict_request(files, form)
    uploads, options, patient = body.uploads, body.options, body.patient
    tta = options.tta or state.classifier.tta
    # The bytes go to the engine, which decodes each once; patient metadata applies to every file
    # of the request (image-only models ignore it).
    results = await state.service.predict(
        [Sniffed(u.data, u.format) if u.format else u.data for u in uploads],
        Options(tta=tta, heatmap=options.heatmap, threshold=options.threshold, compare=compare),
        patient,
    )
    bad = [
        decode_error(u.filename, r.kind, r.error)
        for u, r in zip(uploads, results, strict=True)
        if isinstance(r, PredictionError)
    ]
    if bad:
        raise files_failed(bad)
    request_id = uuid.uuid4().hex
    who = user.name if user is not None else None
    items = await anyio.to_thread.run_sync(_finish, state, uploads, results, options.heatmap, request_id, who)
    return {
        "results": items,
        "model": {**state.model_block, "tta": tta},
        "disclaimer": DISCLAIMER,
        "request_id": request_id,
    }


def _finish(
    state: ServerState,
    uploads: list[Upload],
    results: list[Result],
    heatmap: bool,
    request_id: str,
    user: str | None,
) -> list[dict[str, Any]]:
    """The API's results, stored images and log rows (in a worker thread: hashing, PNG encoding and
    disk writes). Each result is built once (`api_result`); its JSON form and its log row are views."""
    items, rows = [], []
    meta = state.classifier.meta
    for upload, result in zip(uploads, results, strict=True):
        assert isinstance(result, Prediction)
        item = api_result(
            result, filename=upload.filename, label=upload.label, data=upload.data, heatmap=heatmap
        )
        items.append(item.model_dump(mode="json"))
        stored = None
        if state.settings.store_images is not None:
            stored = str(store_image(state.settings.store_images, item.sha256, upload.data, upload.format))
        rows.append(
            log_row(
                item,
                request_id=request_id,
                model_id=meta.model_id,
                model_version=meta.version,
                filename=state.name(upload.filename),  # the name itself, or its keyed hash
                image_path=stored,
                user=user,
            )
        )
    if state.log is not None:
        state.log.write(rows)  # LogUnavailable → 503: a prediction is never reported that was not logged
    return items
