"""GraphQL errors with ``extensions.code`` and the error coercer of the engine.

Every error a client sees carries one of :data:`CODES`. Service errors arrive as
``{"error": {"code", "message", "field"}}`` and become :class:`GraphQLFailure`; an
unexpected exception is logged with its trace and reaches the client only as a short,
generic message.
"""

from __future__ import annotations

import logging
from typing import Any

from herald_common.errors import HeraldError

log = logging.getLogger(__name__)

CODES = (
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "RATE_LIMITED",
    "UNAVAILABLE",
)
# A service's CONFLICT (e.g. an email already taken) is the caller's input problem.
_SERVICE_CODES = {"CONFLICT": "BAD_USER_INPUT", "INTERNAL": "UNAVAILABLE"}


class GraphQLFailure(Exception):
    """An error meant for the client, with its GraphQL ``extensions.code``."""

    def __init__(
        self,
        message: str,
        code: str = "BAD_USER_INPUT",
        *,
        field: str | None = None,
        service: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code in CODES else _SERVICE_CODES.get(code, "UNAVAILABLE")
        self.field = field
        self.service = service
        self.retry_after = retry_after

    @property
    def extensions(self) -> dict[str, Any]:
        ext: dict[str, Any] = {"code": self.code}
        if self.field:
            ext["field"] = self.field
        if self.service:
            ext["service"] = self.service
        if self.retry_after is not None:
            ext["retryAfter"] = self.retry_after
        return ext

    def to_error(self) -> dict[str, Any]:
        return {"message": self.message, "extensions": self.extensions}

    @classmethod
    def from_herald(cls, exc: HeraldError, service: str | None = None) -> GraphQLFailure:
        retry_after = getattr(exc, "retry_after", None)
        return cls(exc.message, exc.code, field=exc.field, service=service, retry_after=retry_after)


def unauthenticated(message: str = "sign in first: send 'Authorization: Bearer <token>'"):
    return GraphQLFailure(message, "UNAUTHENTICATED")


def forbidden(message: str = "admin role required") -> GraphQLFailure:
    return GraphQLFailure(message, "FORBIDDEN")


def bad_input(message: str, field: str | None = None) -> GraphQLFailure:
    return GraphQLFailure(message, "BAD_USER_INPUT", field=field)


def request_error(message: str, code: str = "BAD_USER_INPUT", **ext: Any) -> dict[str, Any]:
    """A whole-request error (the operation did not run)."""
    return {"message": message, "extensions": {"code": code, **ext}}


def _original(exception: Exception) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = getattr(exception, "original_error", None)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "original_error", None)
        if inner is None:
            return current
        current = inner
    return current


async def error_coercer(exception: Exception, error: dict[str, Any]) -> dict[str, Any]:
    """Tartiflette error coercer: add ``extensions.code``; never leak internals."""
    original = _original(exception)
    ext = dict(error.get("extensions") or {})
    if isinstance(original, GraphQLFailure):
        error["message"] = original.message
        ext = {**ext, **original.extensions}
    elif isinstance(original, HeraldError):
        failure = GraphQLFailure.from_herald(original)
        error["message"] = failure.message
        ext = {**ext, **failure.extensions}
    elif original is not None:
        # Something unexpected: the trace goes to the log, not to the client.
        log.error(
            "resolver failed",
            exc_info=(type(original), original, original.__traceback__),
            extra={"path": error.get("path")},
        )
        error["message"] = "internal error; it was logged"
        ext = {"code": "UNAVAILABLE"}
    elif "code" not in ext:
        # Validation and coercion errors (unknown field, wrong argument type,
        # a null for a non-null variable...) are the caller's input problem.
        ext["code"] = "BAD_USER_INPUT"
    if ext.get("code") not in CODES:
        ext["code"] = _SERVICE_CODES.get(str(ext.get("code")), "BAD_USER_INPUT")
    error["extensions"] = ext
    return error
