"""Reading and checking a `POST /predict` request before anything reaches the model.

Failure policy (documented in docs/api.md): a request succeeds or fails as a whole.
Checks run in stages: the request's shape (multipart, field names, options, number of
files), then each file's content (empty, not an image), then decoding by the model.
The first stage that finds a problem answers; `errors` lists every file it found bad
and the status is that of the first of them. Why all-or-nothing: a program that sends
ten images gets ten results or a clear error, never a silently shorter list; the web
page sends one image per request, so one bad file spoils only its own card.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile

from dermalens.core.decode import ImageDecodeError, identify
from dermalens.core.metadata import PatientMetadata
from dermalens.core.taxonomy import UnknownLabelError, label_from_filename, normalize_label
from dermalens.server.errors import ApiError
from dermalens.server.form import PredictForm

#: HTTP status for each `ImageDecodeError.kind`.
STATUS_BY_KIND = {"empty": 422, "unsupported": 415, "corrupt": 422, "too_large": 413, "missing": 422}


@dataclass
class PredictRequest:
    """A `POST /predict` request that passed the shape and content stages: files (read, sniffed, not
    yet decoded), the validated options and the patient metadata (validated once, here)."""

    uploads: list[Upload]
    options: PredictForm
    patient: PatientMetadata


async def predict_request(files: Sequence[UploadFile], form: PredictForm) -> PredictRequest:
    """The uploads (read, named, labelled), the options FastAPI validated, and the patient data
    (checked here, once, for every file of the request); then the content stage. Raises `ApiError`."""
    if form.labels and len(form.labels) != len(files):
        raise ApiError(
            422, f"{len(form.labels)} labels for {len(files)} files; send one label per file or none"
        )
    patient = _patient(form)
    uploads = []
    for index, part in enumerate(files):
        name = _clean_name(part.filename, index)
        uploads.append(
            Upload(name, await part.read(), _label(form.labels[index] if form.labels else "", name))
        )
    check_content(uploads)
    return PredictRequest(uploads, form, patient)


@dataclass
class Upload:
    """One uploaded file and what is known about it."""

    filename: str
    data: bytes
    label: str | None
    #: The format read from the content (JPEG, PNG...) by `check_content`.
    format: str | None = None


def file_error(filename: str, kind: str, detail: str) -> dict[str, Any]:
    return {"filename": filename, "status": STATUS_BY_KIND.get(kind, 422), "kind": kind, "detail": detail}


def files_failed(errors: list[dict[str, Any]]) -> ApiError:
    """The request's error: status and detail of the first bad file, every bad file listed."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more bad file(s), see 'errors')" if len(errors) > 1 else ""
    detail = (
        first["detail"]
        if first["detail"].startswith(first["filename"])
        else (f"{first['filename']}: {first['detail']}")
    )
    return ApiError(first["status"], detail + more, errors=errors)


def _clean_name(name: str | None, index: int) -> str:
    name = re.sub(r"[\x00-\x1f\x7f]", "", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:255] or f"file{index + 1}"


def _patient(form: PredictForm) -> PatientMetadata:
    """The form's patient data, validated (422 says what is accepted)."""
    try:
        return PatientMetadata.parse(form.age, form.sex, form.site)
    except ValueError as err:
        raise ApiError(422, f"invalid patient metadata: {err}") from None


def _label(given: str, filename: str) -> str | None:
    if not given.strip():
        return label_from_filename(filename)
    try:
        return normalize_label(given)
    except UnknownLabelError as err:
        raise ApiError(422, f"{filename}: {err}") from None


def check_content(uploads: list[Upload]) -> None:
    """Stage two, before any inference: empty files and non-images (415 names what the file is),
    judged by the decoder's own `identify`. Raises `ApiError` listing every bad file."""
    errors = []
    for upload in uploads:
        try:
            upload.format = identify(upload.data)
        except ImageDecodeError as err:
            errors.append(decode_error(upload.filename, err.kind, err.detail()))
    if errors:
        raise files_failed(errors)


def decode_error(filename: str, kind: str, detail: str) -> dict[str, Any]:
    """A file's decoder error (`ImageDecodeError.detail`, as it reached the route) as a file error."""
    return file_error(filename, kind, f"{filename}: {detail}")
