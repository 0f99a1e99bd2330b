"""Typed errors shared by the services' HTTP APIs and the gateway.

Services answer with ``{"error": {"code": ..., "message": ..., "field": ...}}`` and the
matching HTTP status; the gateway turns the code into GraphQL ``extensions.code``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel


class HeraldError(Exception):
    """An error a service answers with its ``code`` and HTTP ``status``; a subclass
    names both: ``class NotFound(HeraldError, code="NOT_FOUND", status=404)``."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500

    def __init_subclass__(
        cls, *, code: str | None = None, status: int | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
        if status is not None:
            cls.status = status

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class BadUserInput(HeraldError, code="BAD_USER_INPUT", status=400): ...


class Unauthenticated(HeraldError, code="UNAUTHENTICATED", status=401): ...


class Forbidden(HeraldError, code="FORBIDDEN", status=403): ...


class NotFound(HeraldError, code="NOT_FOUND", status=404): ...


class Conflict(HeraldError, code="CONFLICT", status=409):
    """A well-formed request that clashes with existing state (e.g. a taken email)."""


class RateLimited(HeraldError, code="RATE_LIMITED", status=429):
    def __init__(self, message: str, *, retry_after: int = 1, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class Unavailable(HeraldError, code="UNAVAILABLE", status=503): ...


BY_CODE: dict[str, type[HeraldError]] = {cls.code: cls for cls in HeraldError.__subclasses__()}


class ErrorDetail(BaseModel):
    """The ``error`` member of every error answer."""

    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """``{"error": {"code", "message", "field"?}}``: what every service answers on error."""

    error: ErrorDetail


# Every error status a service answers, with its code: documented on every route of
# every service's OpenAPI (herald_common.app).
ERROR_STATUSES: dict[int, tuple[str, str]] = {
    400: (
        "BAD_USER_INPUT",
        "Bad input: malformed or invalid parameters or body (`field` names it)",
    ),
    401: ("UNAUTHENTICATED", "Missing, invalid, expired or revoked bearer token"),
    403: ("FORBIDDEN", "Authenticated, but not allowed (e.g. the admin role is required)"),
    404: ("NOT_FOUND", "No such resource or route"),
    405: ("BAD_USER_INPUT", "Method not allowed on this path"),
    409: ("CONFLICT", "Clashes with existing state (e.g. an email already registered)"),
    429: ("RATE_LIMITED", "Too many requests; `retry-after` says when to try again"),
    503: ("UNAVAILABLE", "A dependency (database, broker, Redis) is unavailable"),
}
