"""FastAPI plumbing every Herald HTTP process shares.

:func:`create_app` gives an app with ``/healthz`` (alive), ``/readyz`` (dependencies
answer), ``/metrics`` (Prometheus), request metrics, a correlation id per request and
typed JSON errors: bad input is a 4xx naming the field, never a 500 with a trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from herald_common.auth import Principal, TokenVerifier, bearer_token
from herald_common.errors import Forbidden, HeraldError, RateLimited
from herald_common.logs import set_correlation_id
from herald_common.metrics import HTTP_REQUESTS

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

_STATUS_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "BAD_USER_INPUT",
    409: "CONFLICT",
    413: "BAD_USER_INPUT",
    415: "BAD_USER_INPUT",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
}


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def _field_of(loc: tuple[Any, ...]) -> str:
    # ("body", "preferences", "timezone") -> "preferences.timezone"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


def create_app(
    *,
    service: str,
    title: str,
    version: str = "0.1.0",
    description: str = "",
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """A FastAPI app with Herald's health, metrics and error conventions.

    Register readiness checks with ``app.state.ready_checks[name] = async_fn``.
    """
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    app.state.ready_checks = {}
    app.state.service = service

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]):
        cid = request.headers.get("x-correlation-id") or request.headers.get("x-request-id")
        cid = set_correlation_id(cid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(service, request.method, path, str(status)).observe(
                time.perf_counter() - started
            )
        response.headers["x-correlation-id"] = cid
        return response

    @app.exception_handler(HeraldError)
    async def _herald_error(_: Request, exc: HeraldError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.message, exc.field)
        if isinstance(exc, RateLimited):
            response.headers["retry-after"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ())))
        details = "; ".join(
            f"{_field_of(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg')}" for e in errors
        )
        return error_response(400, "BAD_USER_INPUT", details, field or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "INTERNAL")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "INTERNAL", "internal error")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Readiness: every registered dependency check passes."""
        results: dict[str, bool] = {}
        for name, check in app.state.ready_checks.items():
            try:
                results[name] = bool(await check())
            except Exception:  # noqa: BLE001
                results[name] = False
        ok = all(results.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, from the bearer token the gateway forwards.

    Needs ``app.state.token_verifier`` (set by :class:`herald_common.runtime.ServiceRuntime`).
    """
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(bearer_token(request.headers.get("authorization")))


async def admin_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, who must have the ``admin`` role."""
    principal = await current_principal(request)
    if not principal.is_admin:
        raise Forbidden("admin role required")
    return principal
