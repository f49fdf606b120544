"""`POST /api/v1/predict`: images in, predictions out (see `server.uploads` for the failure policy)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from dermalens.core.hashing import bytes_sha256
from dermalens.inference.results import DISCLAIMER, Prediction, PredictionError
from dermalens.inference.rows import set_cell
from dermalens.server.auth import User
from dermalens.server.batcher import Options, Result
from dermalens.server.form import FIELDS_HELP, MultipartRoute, PredictForm
from dermalens.server.log import LogRow
from dermalens.server.render import result_dict
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
        [u.data for u in uploads],
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
    """Result dicts, stored images and log rows (in a worker thread: PNG encoding and disk writes)."""
    items, rows = [], []
    meta = state.classifier.meta
    for upload, result in zip(uploads, results, strict=True):
        assert isinstance(result, Prediction)
        upload.sha256 = bytes_sha256(upload.data)
        upload.width, upload.height = result.image_size or (None, None)
        item = result_dict(
            result, filename=upload.filename, label=upload.label, heatmap=heatmap, upload=upload.info()
        )
        items.append(item)
        logged_name = state.name(upload.filename)  # the name itself, or its keyed hash
        stored = None
        if state.settings.store_images is not None:
            stored = str(store_image(state.settings.store_images, upload.sha256, upload.data, upload.format))
        rows.append(
            LogRow(
                request_id=request_id,
                model_id=meta.model_id,
                model_version=meta.version,
                filename=logged_name,
                sha256=upload.sha256,
                size_bytes=len(upload.data),
                width=upload.width,
                height=upload.height,
                prediction=result.prediction,
                decision=result.decision,
                p_malignant=result.p_malignant,
                ood=result.ood,
                ood_score=result.ood_score,
                label=upload.label,
                correct=item["correct"],
                results={**{k: v for k, v in item.items() if k != "heatmap_png"}, "filename": logged_name},
                image_path=stored,
                user=user,
                prediction_set=set_cell(item["prediction_set"]),
                set_size=item["set_size"],
            )
        )
    if state.log is not None:
        state.log.write(rows)  # LogUnavailable → 503: a prediction is never reported that was not logged
    return items
