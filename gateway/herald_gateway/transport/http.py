"""``POST /graphql`` and ``GET /graphql`` (queries via URL parameters, or GraphiQL)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from herald_common.logs import set_correlation_id

from herald_gateway.context import authenticate
from herald_gateway.engine import schema_sdl
from herald_gateway.errors import GraphQLFailure, count_errors, request_error
from herald_gateway.gateway import Gateway
from herald_gateway.inputs import decode_json
from herald_gateway.transport.operation import (
    RequestRefused,
    answer,
    is_request_error,
    prepare,
)

log = logging.getLogger(__name__)
GRAPHIQL = (Path(__file__).parent / "graphiql.html").read_text()
# What the page loads from /graphql/static/ (installed by `make graphiql`).
GRAPHIQL_FILES = {
    "graphiql.min.css": "text/css; charset=utf-8",
    "react.production.min.js": "text/javascript; charset=utf-8",
    "react-dom.production.min.js": "text/javascript; charset=utf-8",
    "graphql-ws.min.js": "text/javascript; charset=utf-8",
    "graphiql.min.js": "text/javascript; charset=utf-8",
}


def graphiql_page(directory: Path) -> Response:
    """GraphiQL, or a 503 naming the fix when its files are not installed."""
    missing = [n for n in GRAPHIQL_FILES if not (directory / n).is_file()]
    if missing:
        return PlainTextResponse(
            f"GraphiQL's files are not installed in {directory} (missing: "
            f"{', '.join(missing)}): run `make graphiql`. POST /graphql works without them.",
            status_code=503,
        )
    return HTMLResponse(GRAPHIQL)


def _refused(exc: RequestRefused) -> JSONResponse:
    count_errors(exc.errors)
    return JSONResponse({"errors": exc.errors}, status_code=exc.status, headers=exc.headers)


def client_address(request: Request, trust_forwarded: bool) -> str:
    forwarded = request.headers.get("x-forwarded-for")
    if trust_forwarded and forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


def forwarded_chain(request: Request, trust_forwarded: bool) -> str | None:
    """``X-Forwarded-For`` for the services, whose first entry is the client.

    Only a trusted proxy's header is passed on; otherwise a client could pick the
    address the services rate-limit logins by.
    """
    peer = request.client.host if request.client else None
    incoming = request.headers.get("x-forwarded-for") if trust_forwarded else None
    parts = [p for p in (incoming, peer) if p]
    return ", ".join(parts) or None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise RequestRefused(413, [request_error(f"request body over {limit} bytes")])
        except ValueError:
            raise RequestRefused(400, [request_error("invalid Content-Length")]) from None
    chunks: list[bytes] = []
    size = 0
    # A chunked body has no Content-Length: count while reading.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, [request_error(f"request body over {limit} bytes")])
        chunks.append(chunk)
    return b"".join(chunks)


def _body_of(raw: bytes, content_type: str) -> Any:
    if content_type.startswith("application/graphql"):
        try:
            return {"query": raw.decode("utf-8")}
        except UnicodeDecodeError:
            raise RequestRefused(400, [request_error("the body is not UTF-8")]) from None
    if content_type and not (
        content_type.startswith("application/json") or content_type.endswith("+json")
    ):
        raise RequestRefused(
            415, [request_error("send Content-Type: application/json (or application/graphql)")]
        )
    try:
        return decode_json(raw, "body")
    except GraphQLFailure as exc:
        raise RequestRefused.of(exc) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRefused(400, [request_error(f"malformed JSON body: {exc}")]) from None


async def _run(gateway: Gateway, request: Request, body: Any, allowed: tuple[str, ...]) -> Response:
    ctx = await authenticate(gateway, request.headers.get("authorization"))
    ctx.forwarded_for = forwarded_chain(request, gateway.settings.trust_forwarded_for)
    caller = (
        f"user:{ctx.principal.user_id}"
        if ctx.principal
        else f"ip:{client_address(request, gateway.settings.trust_forwarded_for)}"
    )
    try:
        op = await prepare(ctx, body, caller=caller, allowed=allowed)
        result = await answer(ctx, op)
    except RequestRefused as exc:
        return _refused(exc)
    if isinstance(result, str):  # a cached answer: data, no errors
        return Response(result, media_type="application/json")
    status = 400 if is_request_error(result) else 200
    count_errors(result.get("errors"))
    return JSONResponse(result, status_code=status)


def make_routes(app: Any, gateway_of: Any) -> None:
    """Mount the HTTP routes; ``gateway_of(request)`` gives the app's :class:`Gateway`."""

    @app.post("/graphql", include_in_schema=False)
    async def graphql_post(request: Request) -> Response:
        """Run a query or mutation: ``{"query", "variables"?, "operationName"?}``."""
        set_correlation_id(request.headers.get("x-correlation-id"))
        gateway: Gateway = gateway_of(request)
        try:
            raw = await _read_body(request, gateway.settings.max_body_bytes)
            body = _body_of(raw, request.headers.get("content-type", "application/json").lower())
        except RequestRefused as exc:
            return _refused(exc)
        return await _run(gateway, request, body, ("query", "mutation"))

    @app.get("/graphql/static/{name}", include_in_schema=False)
    async def graphiql_static(name: str, request: Request) -> Response:
        """The files GraphiQL loads (only those of ``gateway/graphiql/assets.json``)."""
        gateway: Gateway = gateway_of(request)
        path = gateway.settings.graphiql_dir / name
        if name not in GRAPHIQL_FILES or not gateway.settings.graphiql or not path.is_file():
            return PlainTextResponse(f"no file {name!r}", status_code=404)
        return FileResponse(
            path,
            media_type=GRAPHIQL_FILES[name],
            headers={"cache-control": "public, max-age=86400"},
        )

    @app.get("/graphql", include_in_schema=False)
    async def graphql_get(request: Request) -> Response:
        """GraphiQL for browsers; otherwise a query from the URL parameters."""
        gateway: Gateway = gateway_of(request)
        params = request.query_params
        if "query" not in params:
            if gateway.settings.graphiql and "text/html" in request.headers.get("accept", ""):
                return graphiql_page(gateway.settings.graphiql_dir)
            return _refused(
                RequestRefused(400, [request_error("pass `query` as a URL parameter, or POST")])
            )
        if len(str(request.url)) > gateway.settings.max_body_bytes:
            return _refused(RequestRefused(413, [request_error("request URL too long")]))
        body: dict[str, Any] = {"query": params.get("query")}
        if params.get("operationName"):
            body["operationName"] = params["operationName"]
        if params.get("variables"):
            try:
                body["variables"] = decode_json(params["variables"], "variables")
            except GraphQLFailure as exc:
                return _refused(RequestRefused.of(exc))
            except ValueError:
                return _refused(
                    RequestRefused(400, [request_error("`variables` is not valid JSON")])
                )
        return await _run(gateway, request, body, ("query",))

    @app.get("/graphql/schema.graphql", include_in_schema=False)
    async def graphql_schema() -> PlainTextResponse:
        """The public schema (SDL)."""
        return PlainTextResponse(schema_sdl(), media_type="text/plain; charset=utf-8")
