"""`GET /api/v1/history` (JSON, paged) and `GET /api/v1/history.csv` (everything matching, UTF-8 with BOM).

Why a BOM: Excel, still the usual way people open a CSV, reads UTF-8 without one as a
legacy code page and garbles non-ASCII file names (Japanese, Korean, Russian users).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from dermalens.inference.results import Decision
from dermalens.server.auth import User, scope_of
from dermalens.server.log import COLUMNS, METADATA_COLUMNS, HistoryFilter
from dermalens.server.schemas import HistoryPage
from dermalens.server.state import get_state

router = APIRouter(tags=["history"])

BOM = "\ufeff"


def csv_cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _filter(q: str, decision: str | None, ood: bool | None, user: User) -> HistoryFilter:
    """The query's filter, limited to the caller's own rows unless an admin (or no tokens) asks."""
    return HistoryFilter(q=q.strip(), decision=decision, ood=ood, user=scope_of(user))


Q = Annotated[str, Query(max_length=200, description="text in file name, diagnosis, label or request id")]
DecisionQ = Annotated[Decision | None, Query(description="only this decision ('refused': no verdict)")]
OodQ = Annotated[bool | None, Query(description="only OOD (true) or in-distribution (false) images")]


@router.get("/history", response_model=HistoryPage, summary="Logged predictions, newest first")
async def get_history(
    request: Request,
    user: User,
    q: Q = "",
    decision: DecisionQ = None,
    ood: OodQ = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    state = get_state(request)
    if state.log is None:
        return {"total": 0, "rows": [], "enabled": False}
    where = _filter(q, decision, ood, user)
    prediction_log = state.log

    def read() -> dict[str, Any]:
        return {
            "total": prediction_log.count(where),
            "rows": prediction_log.query(where, limit, offset),
            "enabled": True,
        }

    return await anyio.to_thread.run_sync(read)


@router.get(
    "/history.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with BOM"}},
    summary="Logged predictions as CSV (same filters as /history, no paging)",
)
async def get_history_csv(
    request: Request, user: User, q: Q = "", decision: DecisionQ = None, ood: OodQ = None
) -> Any:
    state = get_state(request)
    where = _filter(q, decision, ood, user)
    if state.log is not None:  # a database that is down answers 503 now, not a cut-off file later
        await anyio.to_thread.run_sync(state.log.ping)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow((*COLUMNS, *METADATA_COLUMNS))
        yield BOM + buffer.getvalue()
        if state.log is None:
            return
        for row in state.log.iter_all(where):
            buffer.seek(0)
            buffer.truncate()
            patient = row["metadata"] or {}
            writer.writerow(
                [csv_cell(row[c]) for c in COLUMNS] + [csv_cell(patient.get(c)) for c in METADATA_COLUMNS]
            )
            yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="dermalens-history.csv"'},
    )
