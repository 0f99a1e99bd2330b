"""Running one GraphQL operation: shape checks, parsing, limits, rate limit, execution.

Shared by the HTTP and WebSocket transports so both refuse the same things the same
way: a client mistake is a 4xx-class answer with ``extensions.code``, never a 5xx.
Everything that can refuse an operation runs in :func:`prepare`, before execution, so
a document that does not parse, validate or fit the limits never reaches a service.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from herald_gateway.budget import CallBudget
from herald_gateway.cache import operation_entities
from herald_gateway.config import GatewaySettings
from herald_gateway.context import RequestContext
from herald_gateway.engine import get_engine, operation_type, parse
from herald_gateway.errors import GraphQLFailure, request_error
from herald_gateway.inputs import check_document, check_variables, has_lone_surrogate
from herald_gateway.limits import enforce, enforce_calls, root_field_names

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A validated operation, ready to execute."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    kind: str
    # What a query reads when its whole answer can be cached (herald_gateway.cache).
    entities: tuple[str, ...] | None = None


class RequestRefused(Exception):
    """The operation must not run; ``status`` is the HTTP status to answer with."""

    def __init__(
        self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
    ):
        super().__init__(errors[0]["message"] if errors else "refused")
        self.status = status
        self.errors = errors
        self.headers = headers or {}

    @classmethod
    def of(cls, failure: GraphQLFailure, status: int = 400) -> RequestRefused:
        headers = {}
        if failure.retry_after is not None:
            headers["retry-after"] = str(failure.retry_after)
        return cls(status, [failure.to_error()], headers)


def _format_parse_error(error: Any) -> dict[str, Any]:
    try:
        data = error.coerce_value()
    except Exception:  # noqa: BLE001
        data = {"message": str(error)}
    out: dict[str, Any] = {"message": data.get("message") or "invalid GraphQL"}
    if data.get("locations"):
        out["locations"] = data["locations"]
    ext = {k: v for k, v in (data.get("extensions") or {}).items() if k in ("rule", "spec")}
    out["extensions"] = {**ext, "code": "BAD_USER_INPUT"}
    return out


def check_shape(
    body: Any, settings: GatewaySettings
) -> tuple[str, dict[str, Any] | None, str | None]:
    """``(query, variables, operationName)`` of a request body, or a 400.

    Variables and the document pass the hostile-input checks of
    :mod:`herald_gateway.inputs` here, before any parsing.
    """
    if not isinstance(body, dict):
        raise RequestRefused(
            400, [request_error("the body must be a JSON object with a `query` string")]
        )
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestRefused(400, [request_error("`query` must be a non-empty string")])
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise RequestRefused(400, [request_error("`variables` must be a JSON object")])
    name = body.get("operationName")
    if name is not None and not isinstance(name, str):
        raise RequestRefused(400, [request_error("`operationName` must be a string")])
    try:
        if variables:
            check_variables(variables, max_depth=settings.max_variables_depth)
        if name and has_lone_surrogate(name):
            raise GraphQLFailure("operationName: not valid Unicode text", field="operationName")
        check_document(
            query, max_nesting=settings.max_query_nesting, max_names=settings.max_query_names
        )
    except GraphQLFailure as exc:
        raise RequestRefused.of(exc) from None
    return query, variables, name or None


async def prepare(
    ctx: RequestContext, body: Any, *, caller: str, allowed: tuple[str, ...]
) -> Prepared:
    """Everything that may refuse an operation before it runs."""
    settings = ctx.gateway.settings
    query, variables, name = check_shape(body, settings)
    try:
        await ctx.gateway.limiter.check(caller)
    except GraphQLFailure as exc:
        raise RequestRefused.of(exc, 429) from None
    engine = await get_engine()
    document, errors = parse(engine, query)
    if errors:
        raise RequestRefused(400, [_format_parse_error(e) for e in errors])
    kind = operation_type(document, name)
    if kind is None:
        message = (
            f"no operation named {name!r} in the document"
            if name
            else "the document has several operations: say which one with `operationName`"
        )
        raise RequestRefused(400, [request_error(message)])
    if kind not in allowed:
        hint = {
            "subscription": "subscriptions run over WebSocket on this same path",
            "mutation": "mutations need POST",
        }.get(kind, "")
        status = 405 if kind == "mutation" else 400
        raise RequestRefused(status, [request_error(f"{kind} not allowed here: {hint}")])
    try:
        enforce(
            document,
            name,
            variables,
            max_depth=settings.max_query_depth,
            max_complexity=settings.max_query_complexity,
        )
        enforce_calls(
            document,
            name,
            variables,
            max_calls=settings.max_service_calls_per_request,
            max_mutations=settings.max_mutations_per_request,
            max_password_mutations=settings.max_password_mutations_per_request,
        )
    except GraphQLFailure as exc:
        raise RequestRefused.of(exc) from None
    ctx.budget = CallBudget(settings.max_service_calls_per_request, caller, ctx.gateway.slots)
    entities = operation_entities(root_field_names(document, name)) if kind == "query" else None
    return Prepared(
        query=query, variables=variables, operation_name=name, kind=kind, entities=entities
    )


async def execute(ctx: RequestContext, op: Prepared) -> dict[str, Any]:
    """Run a prepared query or mutation in one of its caller's request slots.

    Raises :class:`RequestRefused` (429) when the caller already has too many
    operations running and waiting.
    """
    engine = await get_engine()
    slots = ctx.gateway.request_slots
    caller = ctx.budget.caller if ctx.budget is not None else None
    if slots is None or caller is None:
        result: dict[str, Any] = await engine.execute(
            op.query, operation_name=op.operation_name, context=ctx, variables=op.variables
        )
        return result
    try:
        async with slots.hold(caller):
            result = await engine.execute(
                op.query, operation_name=op.operation_name, context=ctx, variables=op.variables
            )
    except GraphQLFailure as exc:
        raise RequestRefused.of(exc, 429) from None
    return result


async def answer(ctx: RequestContext, op: Prepared) -> str | dict[str, Any]:
    """:func:`execute`, through the whole-operation cache when the query reads only cached
    per-user entities: the cached JSON text, or the result."""
    principal = ctx.principal
    if op.entities is None or principal is None or ctx.auth_error is not None:
        return await execute(ctx, op)
    operation = json.dumps(
        [op.query, op.operation_name, op.variables], sort_keys=True, separators=(",", ":")
    )
    return await ctx.gateway.cache.get_or_execute(
        principal.user_id, op.entities, operation, lambda: execute(ctx, op)
    )


def is_request_error(result: dict[str, Any]) -> bool:
    """Nothing ran (e.g. a variable of the wrong type): a 400, not a 200."""
    errors = result.get("errors") or []
    return result.get("data") is None and bool(errors) and all(not e.get("path") for e in errors)
