"""One pooled ``aiohttp.ClientSession`` per service and the mapping of its errors.

aiohttp rather than httpx for this hop: the gateway makes one to three service calls
per GraphQL request, and aiohttp's client spends about a seventeenth of httpx's CPU
per call (``bench/RESULTS.md``, gateway), which is most of the gateway's own cost.

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
from urllib.parse import urlsplit

import aiohttp
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


def _query_value(value: Any) -> str | int | float:
    """A query parameter as the services read it (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    return str(value)


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
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        if not urlsplit(self.base_url).scheme.startswith("http"):
            raise ValueError(f"the {name} service URL is not http(s): {base_url!r}")
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (it belongs to the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                base_url=self.base_url + "/",
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    limit_per_host=self._max_connections,
                    # Below uvicorn's 5 s keep-alive: an idle connection is let go
                    # here before the service closes it under a request.
                    keepalive_timeout=4.0,
                ),
                headers={"user-agent": "herald-gateway"},
                # Answers are read as bytes and decoded here; no cookies between callers.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
        clean = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
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
            async with self.session.request(
                method, path.lstrip("/"), params=params or None, data=content, headers=headers
            ) as response:
                status, body, retry_after = (
                    response.status,
                    await response.read(),
                    response.headers.get("retry-after"),
                )
        except TimeoutError as exc:
            self._unavailable(method, "timeout", started)
            raise GraphQLFailure(
                f"the {self.name} service did not answer in time", "UNAVAILABLE", service=self.name
            ) from exc
        except aiohttp.ClientError as exc:
            self._unavailable(method, "connect", started)
            log.warning("service unreachable", extra={"service": self.name, "error": str(exc)})
            raise GraphQLFailure(
                f"the {self.name} service is unavailable", "UNAVAILABLE", service=self.name
            ) from exc
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
            raise self._failure(status, body, retry_after)
        if status == 204 or not body:
            return None
        try:
            return jsonlib.loads(body)
        except ValueError as exc:
            self._unavailable(method, "bad-json", started)
            raise GraphQLFailure(
                f"the {self.name} service sent an unreadable answer", "UNAVAILABLE"
            ) from exc

    def _unavailable(self, method: str, outcome: str, started: float) -> None:
        SERVICE_FAILURES.labels(self.name).inc()
        SERVICE_CALLS.labels(self.name, method, outcome).observe(time.perf_counter() - started)

    def _failure(self, status: int, body: bytes, retry_after: str | None) -> GraphQLFailure:
        code = _STATUS_CODES.get(status, "BAD_USER_INPUT")
        message = f"{self.name} refused the request ({status})"
        field = None
        try:
            decoded = jsonlib.loads(body)
            error = decoded.get("error") if isinstance(decoded, dict) else None
            if isinstance(error, dict):
                message = str(error.get("message") or message)
                field = error.get("field")
                service_code = str(error.get("code") or "")
                if service_code and service_code != "CONFLICT":
                    code = service_code
        except ValueError:
            pass  # not a JSON error body: the status code alone decides the GraphQL code
        seconds = None
        if status == 429:
            try:
                seconds = int(retry_after or "1")
            except ValueError:
                seconds = 1
        return GraphQLFailure(message, code, field=field, retry_after=seconds)

    async def get(self, path: str, ctx: CallContext | None = None, **params: Any) -> Any:
        return await self.request("GET", path, ctx, params=params)

    async def ready(self) -> bool:
        try:
            async with self.session.get("readyz") as response:
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False
