"""Every error leaves the API as JSON {error_code, message} with a fitting status: the one place
where domain errors become HTTP errors."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_core.jobs.store import StoreUnavailable

logger = logging.getLogger(__name__)

STATUS_OF = {ErrorCode.NOT_FOUND: 404, ErrorCode.BATCH_INVALID: 400, ErrorCode.FILE_TOO_LARGE: 413,
             ErrorCode.ENGINE_UNAVAILABLE: 400, ErrorCode.REQUEST_INVALID: 400,
             ErrorCode.WEBHOOK_INVALID: 400, ErrorCode.BAD_FACE_CHOICE: 400}
CODE_OF = {404: ErrorCode.NOT_FOUND, 413: ErrorCode.FILE_TOO_LARGE}  # HTTP errors of the framework itself


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON {error_code, message} with a fitting 4xx status."""

    @app.exception_handler(HeyGemError)
    async def _heygem(request: Request, exc: HeyGemError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=STATUS_OF.get(exc.code, 422))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"error_code": "store_unavailable", "redis": "unreachable",
                             "message": f"进度存储暂时无法连接 / progress store unreachable: {exc}"},
                            status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own refusals (a malformed multipart body, an unknown route)."""
        error = HeyGemError(CODE_OF.get(exc.status_code, ErrorCode.REQUEST_INVALID), str(exc.detail))
        return JSONResponse(error.to_dict(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return JSONResponse(HeyGemError(ErrorCode.BATCH_INVALID, f"bad request: {where}").to_dict(),
                            status_code=422)
