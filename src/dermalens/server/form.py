"""The `POST /predict` form: framing checked on the raw bytes, then parsed and validated by FastAPI.

Two steps, each where it belongs:

1. `MultipartRoute`, the router's route class, sees the request before FastAPI reads it: a body
   that is not multipart (415), has no boundary or ends before its closing boundary (400: a
   truncated upload otherwise parses as fewer files) is refused; the form is parsed once, with the
   project's limits and messages, and checked for what a model cannot say (an option given twice,
   an unknown field, text where files belong, no files, too many). Starlette keeps the parsed form.
2. FastAPI validates that form into the route's parameters: the files (`File`) and `PredictForm`
   (its `Field` bounds are the validation *and* the OpenAPI document). `invalid_field` turns its
   errors into the API's sentences ("invalid tta: ...; send an integer from 1 to 8").
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticUseDefault
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect

from dermalens.core.decode import ACCEPTED_HELP
from dermalens.core.metadata import MAX_AGE, SEX_SPELLINGS
from dermalens.core.taxonomy import SITE_GROUPS
from dermalens.server.auth import client_key, current_user
from dermalens.server.errors import ApiError
from dermalens.server.state import get_state

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


def _plain_optionals(schema: dict[str, Any]) -> None:
    """Each `X | None` property as plain X: a form field is left out, never sent as null."""
    for name, prop in schema.get("properties", {}).items():
        variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
        merged = {**(variants[0] if variants else {}), **prop}
        merged.pop("anyOf", None)
        merged.pop("title", None)
        schema["properties"][name] = merged


class PredictForm(BaseModel):
    """The form fields of `POST /predict` besides the files (patient data: one set for every file;
    `PatientMetadata.parse` checks it, with its own messages, and the schema shows its bounds)."""

    model_config = ConfigDict(json_schema_extra=_plain_optionals)

    tta: int | None = Field(None, ge=1, le=8, description=FIELDS_HELP["tta"])
    heatmap: bool = Field(False, description=FIELDS_HELP["heatmap"])
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, allow_inf_nan=False, description=FIELDS_HELP["threshold"]
    )
    labels: list[str] = Field(default_factory=list, description=FIELDS_HELP["labels"])
    age: str | None = Field(
        None,
        description=FIELDS_HELP["age"],
        json_schema_extra={"type": "number", "minimum": 0, "maximum": MAX_AGE},
    )
    sex: str | None = Field(
        None, description=FIELDS_HELP["sex"], json_schema_extra={"enum": list(SEX_SPELLINGS)}
    )
    site: str | None = Field(
        None, description=FIELDS_HELP["site"], json_schema_extra={"examples": list(SITE_GROUPS)}
    )

    @field_validator("tta", "heatmap", "threshold", "age", "sex", "site", mode="before")
    @classmethod
    def _blank_is_not_given(cls, value: Any) -> Any:
        """Surrounding space is dropped; an empty field means 'not given' (its default)."""
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise PydanticUseDefault()
        return value


def invalid_field(errors: list[dict[str, Any]]) -> str | None:
    """The API's sentence for FastAPI's first error on a form field of `POST /predict`, or None
    when the errors are not about one (other routes keep the generic form)."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    if len(loc) < 2 or loc[0] != "body" or loc[1] not in FIELDS_HELP:
        return None
    return f"invalid {loc[1]}: {first.get('msg')}; send {FIELDS_HELP[loc[1]]}"


class MultipartRoute(APIRoute):
    """An APIRoute that checks a multipart request's framing and form before FastAPI reads it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            # Who asks comes first: a client without a valid token is refused before its body is read.
            identity = await current_user(request)
            state = get_state(request)
            with state.uploads.hold(client_key(request, identity)):
                if request.method == "POST":
                    check_form(await parse_form(request), state.settings.max_files)
                return await handler(request)

        return checked


async def parse_form(request: Request) -> FormData:
    """The request's form, parsed once (starlette keeps it for FastAPI): 415 unless multipart,
    400 for a missing boundary, a cut-off body or a malformed one, 413 for parser limits."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, f"request is {content_type or 'without a content type'}; {MULTIPART_HELP}")
    await _check_complete(request, content_type)
    max_files = get_state(request).settings.max_files
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


def check_form(form: FormData, max_files: int) -> None:
    """What the form's model cannot say: files sent as text, an unknown field, an option given
    twice (a model keeps one of them silently), no files, more than `max_files`."""
    seen: set[str] = set()
    files = 0
    for key, value in form.multi_items():
        if key == "files":
            if not isinstance(value, UploadFile):
                raise ApiError(422, "field 'files' must hold file uploads (a part with a filename), not text")
            files += 1
        elif key in FIELDS_HELP and key != "labels":
            if key in seen:
                raise ApiError(422, f"field '{key}' given twice; send {FIELDS_HELP[key]} once")
            seen.add(key)
        elif key != "labels":
            accepted = ", ".join(f"'{k}' ({v})" for k, v in FIELDS_HELP.items())
            raise ApiError(422, f"unexpected field '{key}'; accepted fields: {accepted}")
    if not files:
        raise ApiError(422, f"no images: {MULTIPART_HELP} ({ACCEPTED_HELP})")
    if files > max_files:
        raise ApiError(413, f"too many files ({files}): at most {max_files} images per request")
