"""FastAPI plumbing every Herald HTTP process shares.

:func:`create_app` gives an app with ``/healthz`` (alive), ``/readyz`` (dependencies
answer), ``/metrics`` (Prometheus), request metrics, a correlation id per request and
typed JSON errors: bad input is a 4xx naming the field, never a 500 with a trace.
Its OpenAPI document (``/openapi.json``) describes those errors on every route: each
status of :data:`herald_common.errors.ERROR_STATUSES` with the shared ``ErrorBody``
schema, and no FastAPI ``422`` (validation errors are answered as 400).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald_common.auth import Principal, TokenVerifier, bearer_token
from herald_common.errors import ERROR_STATUSES, ErrorBody, Forbidden, HeraldError, RateLimited
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


_RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer"}}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the shared error answers to every operation of an OpenAPI document.

    Statuses a route already documents keep their own description; FastAPI's ``422``
    is replaced, since the services answer validation errors with 400.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in body.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("ErrorBody", body)
    reference = {"$ref": "#/components/schemas/ErrorBody"}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, (code, description) in ERROR_STATUSES.items():
                entry = responses.setdefault(str(status), {})
                entry.setdefault("description", f"{description} (`{code}`)")
                entry.setdefault("content", {"application/json": {"schema": reference}})
                if status == 429:
                    entry.setdefault("headers", {"retry-after": _RETRY_AFTER})
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in components and unused not in _references(schema):
            del components[unused]
    return schema


def _references(schema: dict[str, Any]) -> set[str]:
    """Component names referenced anywhere in the document."""
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                found.add(ref.rsplit("/", 1)[-1])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


class ObserveRequests:
    """Every HTTP request: its correlation id (taken from ``x-correlation-id`` or
    ``x-request-id``, else new) set for the logs and echoed in the answer, and its
    duration in ``herald_http_request_duration_seconds`` by route and status.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``)
    runs each request through extra tasks and a streamed body, which cost the gateway a
    third of its CPU per request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cid = set_correlation_id(headers.get("x-correlation-id") or headers.get("x-request-id"))
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-correlation-id"] = cid
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )


# Metrics are Prometheus (ObserveRequests, /metrics); no OpenTelemetry provider is ever
# configured, so FastAPI's own telemetry would only look for one on every request
# (about 3 % of a cached gateway request's CPU).
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


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
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    app.state.ready_checks = {}
    app.state.service = service
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document with Herald's error answers on every route (built once)."""
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(ObserveRequests, service=service)

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


# Typed dependencies for route signatures: ``caller: Caller`` / ``_: Admin``.
Caller = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]
