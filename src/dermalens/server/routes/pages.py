"""The web pages (Predict, About, History) and their translation tables.

Pages are rendered in the request's language (see `server.i18n`) so the first paint is
already translated; the page's script gets the same strings, the class list and the
limits as embedded JSON and switches language in place without losing results.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates

from dermalens.core.decode import ACCEPTED_HELP
from dermalens.inference.results import DISCLAIMER
from dermalens.server.auth import current_user, page_user
from dermalens.server.errors import ApiError
from dermalens.server.i18n import COOKIE, Translator, choose_language, language_names, translations
from dermalens.server.modelcard import per_class_tables, scalar_rows
from dermalens.server.settings import LANGUAGES
from dermalens.server.state import get_state

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(str(resources.files("dermalens.server") / "templates")))

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: Swagger UI loads its script and style from a CDN and starts with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def render_page(request: Request, template: str, page: str, **context: Any) -> HTMLResponse:
    state = get_state(request)
    lang = choose_language(
        request.query_params.get("lang"), request.cookies.get(COOKIE), request.headers.get("accept-language")
    )
    card = state.card
    page_data = {
        "page": page,
        "lang": lang,
        "strings": translations(lang),
        "languages": language_names(),
        "api": "/api/v1",
        "classes": card["classes"],
        "threshold": card["threshold"],
        "input_size": card["input_size"],
        "resize": card["preprocessing"].get("resize", "crop_to_aspect"),
        "limits": card["limits"],
        "metadata_inputs": card["metadata_inputs"],
        "members": card["members"],
        "log_enabled": state.log is not None,
        # Who is logged in (None without tokens) and the session's CSRF value for the page's POSTs.
        "user": _who(request),
        "csrf": getattr(request.state, "csrf", None),
        "disclaimer": DISCLAIMER,
    }
    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": Translator(lang),
            "lang": lang,
            "languages": language_names(),
            "page": page,
            "page_data": page_data,
            "card": card,
            "accepted": ACCEPTED_HELP,
            **context,
        },
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Content-Language"] = lang
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-store"
    return response


def _who(request: Request) -> dict[str, Any] | None:
    identity = getattr(request.state, "identity", None)
    return None if identity is None else {"name": identity.name, "admin": identity.admin}


@router.get("/", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def predict_page(request: Request) -> HTMLResponse:
    return render_page(request, "predict.html", "predict")


@router.get("/about", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def about_page(request: Request) -> HTMLResponse:
    card = get_state(request).card
    return render_page(
        request,
        "about.html",
        "about",
        metric_rows=scalar_rows(card["metrics"]),
        class_tables=per_class_tables(card["metrics"]),
    )


@router.get("/history", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def history_page(request: Request) -> HTMLResponse:
    return render_page(request, "history.html", "history")


@router.get("/i18n/{lang}.json")
async def strings(lang: str) -> JSONResponse:
    """One language's strings, for switching language without reloading the page."""
    if lang not in LANGUAGES:
        raise ApiError(404, f"no language {lang!r}; available: {', '.join(LANGUAGES)}")
    return JSONResponse(translations(lang), headers={"Cache-Control": "max-age=300"})


@router.get("/openapi.json", dependencies=[Depends(current_user)])
async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document (behind the same token or login as the API it describes)."""
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse, dependencies=[Depends(page_user)])
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI on `/openapi.json`."""
    response = get_swagger_ui_html(openapi_url="/openapi.json", title="DermaLens API")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
