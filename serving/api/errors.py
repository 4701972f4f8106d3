"""How errors look on the wire: one bilingual `detail`, never a traceback for a user mistake.

404: no such decision, campaign or project. 409: the service is not ready for the request
(no snapshot, no champion, no run) — an operator step is missing. 422: a request or submitted
record breaks a rule; each problem names its field (and for records the table, row, column
and contract rule) in Chinese and English.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.api.decisions import NotFoundError
from serving.api.ondemand import RecordRejected


def not_ready_types() -> tuple[type[Exception], ...]:
    """Operator-side "not set up yet" errors (no run, no champion, bad policy): 409, not 500,
    for the API and the pages alike."""
    from features.ingest import IngestError
    from features.snapshot import SnapshotError
    from serving.audit import AuditError
    from serving.campaign_store import CampaignStoreError
    from serving.case_store import CaseStoreError
    from serving.cli_project import ProjectCliError
    from serving.scoring import ServingError
    from supervision.policy import PolicyError

    return (ServingError, ProjectCliError, CaseStoreError, CampaignStoreError, AuditError,
            SnapshotError, IngestError, PolicyError)


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


def validation_problems(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's validation errors with a field path and a Chinese message beside the English."""
    out = []
    for error in errors:
        field = _field(error.get("loc", ()))
        out.append({**error, "field": field, "rule": error.get("type", "invalid"),
                    "message_zh": f"字段 {field} 无效 ({error.get('type', 'invalid')})",
                    "message_en": f"field {field}: {error.get('msg', 'invalid')}"})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, error: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    @app.exception_handler(RecordRejected)
    async def _rejected(_request: Request, error: RecordRejected) -> JSONResponse:
        return JSONResponse(status_code=422,
                            content=jsonable_encoder({"detail": error.problems}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = validation_problems([dict(e) for e in error.errors()])
        return JSONResponse(status_code=422, content=jsonable_encoder({"detail": problems}))

    for error_type in not_ready_types():
        app.add_exception_handler(error_type, _not_ready)


async def _not_ready(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=409, content={"detail": str(error)})
