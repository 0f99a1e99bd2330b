"""One pooled ``httpx.AsyncClient`` per service and the mapping of its errors.

A service answers errors as ``{"error": {"code", "message", "field"}}``; they become
:class:`~herald_gateway.errors.GraphQLFailure` with the matching GraphQL code. A
connection error, a timeout or a 5xx becomes ``UNAVAILABLE`` for the fields that
needed that service only.
"""

from __future__ import annotations

import json as jsonlib
import logging
import time
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import httpx
from herald_common.logs import current_correlation_id
from prometheus_client import Counter, Histogram

from herald_gateway.budget import CallBudget
from herald_gateway.errors import GraphQLFailure

log = logging.getLogger(__name__)

SERVICE_CALLS = Histogram(
    "herald_gateway_service_call_duration_seconds",
    "Gateway calls to internal services",
    ["service", "method", "outcome"],
)
SERVICE_FAILURES = Counter(
    "herald_gateway_service_unavailable_total",
    "Service calls that failed with a connection error, timeout or 5xx",
    ["service"],
)
_STATUS_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "BAD_USER_INPUT",
    413: "BAD_USER_INPUT",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
}


@dataclass(frozen=True)
class CallContext:
    """What the gateway forwards on behalf of the caller."""

    token: str | None = None
    forwarded_for: str | None = None
    # The request's budget of service calls (None: not counted, e.g. readiness).
    budget: CallBudget | None = None


class ServiceClient:
    """Calls one internal service."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        max_connections: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            headers={"user-agent": "herald-gateway"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, ctx: CallContext | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if ctx is not None and ctx.token:
            headers["authorization"] = f"Bearer {ctx.token}"
        if ctx is not None and ctx.forwarded_for:
            headers["x-forwarded-for"] = ctx.forwarded_for
        cid = current_correlation_id()
        if cid:
            headers["x-correlation-id"] = cid
        return headers

    async def request(
        self,
        method: str,
        path: str,
        ctx: CallContext | None = None,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The decoded JSON answer (``None`` for 204), or a :class:`GraphQLFailure`.

        The call counts against the request's budget and waits for one of the caller's
        slots (:mod:`herald_gateway.budget`); a body that cannot be sent as JSON (a
        non-finite number, a lone surrogate) is the caller's input problem.
        """
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        headers = self._headers(ctx)
        content: bytes | None = None
        if json is not None:
            try:
                content = jsonlib.dumps(json, ensure_ascii=False, allow_nan=False).encode()
            except (ValueError, UnicodeEncodeError):
                raise GraphQLFailure(
                    "the input holds a value no service accepts (a non-finite number or "
                    "text that is not valid Unicode)",
                    "BAD_USER_INPUT",
                ) from None
            headers["content-type"] = "application/json"
        budget = ctx.budget if ctx is not None else None
        if budget is not None:
            budget.spend(self.name)
        slot: AbstractAsyncContextManager[None] = (
            budget.slot() if budget is not None else nullcontext()
        )
        async with slot:
            return await self._send(method, path, clean, content, headers)

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        content: bytes | None,
        headers: dict[str, str],
    ) -> Any:
        started = time.perf_counter()
        try:
            response = await self._client.request(
                method, path, params=params or None, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            self._unavailable(method, "timeout", started)
            raise GraphQLFailure(
                f"the {self.name} service did not answer in time", "UNAVAILABLE", service=self.name
            ) from exc
        except httpx.HTTPError as exc:
            self._unavailable(method, "connect", started)
            log.warning("service unreachable", extra={"service": self.name, "error": str(exc)})
            raise GraphQLFailure(
                f"the {self.name} service is unavailable", "UNAVAILABLE", service=self.name
            ) from exc
        status = response.status_code
        if status >= 500:
            self._unavailable(method, str(status), started)
            log.warning(
                "service error", extra={"service": self.name, "status": status, "path": path}
            )
            raise GraphQLFailure(
                f"the {self.name} service is unavailable", "UNAVAILABLE", service=self.name
            )
        SERVICE_CALLS.labels(self.name, method, "ok" if status < 400 else str(status)).observe(
            time.perf_counter() - started
        )
        if status >= 400:
            raise self._failure(response)
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            self._unavailable(method, "bad-json", started)
            raise GraphQLFailure(
                f"the {self.name} service sent an unreadable answer", "UNAVAILABLE"
            ) from exc

    def _unavailable(self, method: str, outcome: str, started: float) -> None:
        SERVICE_FAILURES.labels(self.name).inc()
        SERVICE_CALLS.labels(self.name, method, outcome).observe(time.perf_counter() - started)

    def _failure(self, response: httpx.Response) -> GraphQLFailure:
        code = _STATUS_CODES.get(response.status_code, "BAD_USER_INPUT")
        message = f"{self.name} refused the request ({response.status_code})"
        field = None
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                message = str(error.get("message") or message)
                field = error.get("field")
                service_code = str(error.get("code") or "")
                if service_code and service_code != "CONFLICT":
                    code = service_code
        except ValueError:
            pass  # not a JSON error body: the status code alone decides the GraphQL code
        retry_after = None
        if response.status_code == 429:
            try:
                retry_after = int(response.headers.get("retry-after", "1"))
            except ValueError:
                retry_after = 1
        return GraphQLFailure(message, code, field=field, retry_after=retry_after)

    async def get(self, path: str, ctx: CallContext | None = None, **params: Any) -> Any:
        return await self.request("GET", path, ctx, params=params)

    async def ready(self) -> bool:
        try:
            response = await self._client.get("/readyz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200
