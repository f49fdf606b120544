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
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from dermalens.core.decode import ACCEPTED_HELP, ImageDecodeError, identify
from dermalens.core.metadata import MAX_AGE, METADATA_FIELDS, SEX_SPELLINGS, PatientMetadata
from dermalens.core.taxonomy import SITE_GROUPS, UnknownLabelError, label_from_filename, normalize_label
from dermalens.server.errors import ApiError
from dermalens.server.state import get_state

#: HTTP status for each `ImageDecodeError.kind`.
STATUS_BY_KIND = {"empty": 422, "unsupported": 415, "corrupt": 422, "too_large": 413, "missing": 422}
FIELDS_HELP = {
    "files": "one or more image files (repeat the field), " + ACCEPTED_HELP,
    "tta": "an integer from 1 to 8 (test-time augmentation views)",
    "heatmap": "true or false",
    "threshold": "a number from 0 to 1 (operating threshold on p_malignant)",
    "labels": "optional true labels, one per file in the same order (e.g. mel, nv, benign, malignant)",
    "age": f"optional patient age in years, 0 to {MAX_AGE:.0f} (applies to every file; empty = unknown)",
    "sex": "optional patient sex: male, female, m or f (applies to every file; empty = unknown)",
    "site": "optional body site of the lesion: "
    + ", ".join(SITE_GROUPS)
    + " or a finer name such as back, face, foot (applies to every file; empty = unknown)",
}
#: Parts the multipart parser reads before giving up (the count limit itself is checked afterwards).
PARSER_MAX_PARTS = 1000
MULTIPART_HELP = "send multipart/form-data with the images in the repeatable field 'files'"


class PredictOptions(BaseModel):
    """The form options of `POST /predict`: these Field bounds validate them and, through
    `form_schema`, are what the OpenAPI document shows."""

    model_config = ConfigDict(extra="forbid")

    tta: int | None = Field(None, ge=1, le=8, description=FIELDS_HELP["tta"])
    heatmap: bool = Field(False, description=FIELDS_HELP["heatmap"])
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, allow_inf_nan=False, description=FIELDS_HELP["threshold"]
    )


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A property of `X | None` as plain X (a form field is left out rather than sent as null)."""
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    merged = {**prop, **(variants[0] if variants else {})}
    merged.pop("anyOf", None)
    merged.pop("title", None)
    return merged


def form_schema() -> dict[str, Any]:
    """The multipart body's JSON schema for OpenAPI, from the constants that validate it: the
    options model's bounds, `MAX_AGE`, `SEX_SPELLINGS`, `SITE_GROUPS`, `FIELDS_HELP`."""
    options = PredictOptions.model_json_schema()["properties"]
    properties: dict[str, Any] = {
        "files": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": FIELDS_HELP["files"],
        },
        **{name: _not_null(prop) for name, prop in options.items()},
        "labels": {"type": "array", "items": {"type": "string"}, "description": FIELDS_HELP["labels"]},
        "age": {"type": "number", "minimum": 0, "maximum": MAX_AGE, "description": FIELDS_HELP["age"]},
        "sex": {"type": "string", "enum": list(SEX_SPELLINGS), "description": FIELDS_HELP["sex"]},
        "site": {"type": "string", "examples": list(SITE_GROUPS), "description": FIELDS_HELP["site"]},
    }
    assert set(properties) == set(FIELDS_HELP), "every accepted field is documented, and only those"
    return {"type": "object", "required": ["files"], "properties": properties}


@dataclass
class PredictRequest:
    """A `POST /predict` request that passed the shape and content stages: files (read, sniffed, not
    yet decoded), the validated options and the patient metadata (validated once, here)."""

    uploads: list[Upload]
    options: PredictOptions
    patient: PatientMetadata


async def predict_request(request: Request) -> PredictRequest:
    """The route's dependency (``Annotated[PredictRequest, Depends(predict_request)]``)."""
    body = await read_predict_request(request, get_state(request).settings.max_files)
    check_content(body.uploads)
    return body


@dataclass
class Upload:
    """One uploaded file and what is known about it."""

    filename: str
    data: bytes
    label: str | None
    sha256: str = ""
    width: int | None = None
    height: int | None = None
    #: The format read from the content (JPEG, PNG...) by `check_content`.
    format: str | None = None

    def info(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size_bytes": len(self.data),
            "width": self.width,
            "height": self.height,
        }


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


async def _check_complete(request: Request, content_type: str) -> None:
    """400 unless the body ends with the closing boundary ``--BOUNDARY--``.

    Why: the multipart parser returns the parts read so far when a body is cut off (a dropped
    connection, or a Content-Length shorter than the body), so a truncated upload looked like a
    request with no images (422) or, worse, with fewer. The body is already bounded by the body
    limit; starlette keeps it, so the form is parsed from the same bytes afterwards."""
    boundary = _boundary(content_type)
    if boundary is None:
        raise ApiError(400, f"malformed multipart body (no boundary in the Content-Type); {MULTIPART_HELP}")
    body = await request.body()
    if not body.rstrip(b"\r\n \t").endswith(b"--" + boundary + b"--"):
        raise ApiError(
            400,
            "malformed multipart body (it ends before the closing boundary: the upload was cut off, or "
            f"Content-Length is shorter than the body); {MULTIPART_HELP}",
        )


def _boundary(content_type: str) -> bytes | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary" and value.strip().strip('"'):
            return value.strip().strip('"').encode("latin-1", "replace")
    return None


async def _form(request: Request, max_files: int) -> Any:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, f"request is {content_type or 'without a content type'}; {MULTIPART_HELP}")
    await _check_complete(request, content_type)
    try:
        # The parser's own limits stay generous: stopping mid-body would make a client that is still
        # sending see a reset instead of our 413; the body limit already bounds the work.
        return await request.form(max_files=max(PARSER_MAX_PARTS, max_files), max_fields=PARSER_MAX_PARTS)
    except (ApiError, ClientDisconnect):
        raise
    except Exception as err:  # starlette's HTTPException(400) for parser limits and malformed bodies
        message = str(getattr(err, "detail", err))
        if message.startswith("Too many files"):
            raise ApiError(413, f"too many files: at most {max_files} images per request") from None
        if message.startswith(("Too many fields", "Part exceeded")):
            raise ApiError(413, f"too many or too large form fields; {MULTIPART_HELP}") from None
        raise ApiError(400, f"malformed multipart body ({message}); {MULTIPART_HELP}") from None


async def read_predict_request(request: Request, max_files: int) -> PredictRequest:
    """Parse and check the request's shape, options and patient metadata (age, sex, site: one set
    for every file of the request); read the files' bytes (checked later)."""
    form = await _form(request, max_files)
    parts: list[UploadFile] = []
    labels: list[str] = []
    options: dict[str, str] = {}
    for key, value in form.multi_items():
        if key == "files":
            if not isinstance(value, UploadFile):
                raise ApiError(422, "field 'files' must hold file uploads (a part with a filename), not text")
            parts.append(value)
        elif key == "labels":
            labels.append(str(value))
        elif key in FIELDS_HELP and isinstance(value, str):
            if key in options:
                raise ApiError(422, f"field '{key}' given twice; send {FIELDS_HELP[key]} once")
            if value.strip():
                options[key] = value.strip()
        else:
            accepted = ", ".join(f"'{k}' ({v})" for k, v in FIELDS_HELP.items())
            raise ApiError(422, f"unexpected field '{key}'; accepted fields: {accepted}")
    if not parts:
        raise ApiError(422, f"no images: {MULTIPART_HELP} ({ACCEPTED_HELP})")
    if len(parts) > max_files:
        raise ApiError(413, f"too many files ({len(parts)}): at most {max_files} images per request")
    patient = _patient(options)
    try:
        parsed = PredictOptions.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "options"
        raise ApiError(
            422, f"invalid {field}: {first['msg']}; send {FIELDS_HELP.get(field, 'a valid value')}"
        ) from None
    if labels and len(labels) != len(parts):
        raise ApiError(422, f"{len(labels)} labels for {len(parts)} files; send one label per file or none")
    uploads = []
    for index, part in enumerate(parts):
        name = _clean_name(part.filename, index)
        uploads.append(Upload(name, await part.read(), _label(labels[index] if labels else "", name)))
    return PredictRequest(uploads, parsed, patient)


def _patient(options: dict[str, str]) -> PatientMetadata:
    """Take the metadata fields out of `options` and validate them (422 says what is accepted)."""
    values = {name: options.pop(name, None) for name in METADATA_FIELDS}
    try:
        return PatientMetadata.parse(**values)
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
