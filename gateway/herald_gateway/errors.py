"""GraphQL errors with ``extensions.code`` and the error coercer of the engine.

Every error a client sees carries one of :data:`CODES`. Service errors arrive as
``{"error": {"code", "message", "field"}}`` and become :class:`GraphQLFailure`; an
unexpected exception is logged with its trace and reaches the client only as a short,
generic message.

Nothing a client sent is ever logged: an unexpected exception is logged with its type
and stack only (:func:`log_unexpected`), since exception messages routinely quote the
value that caused them (a password among them). Input coercion errors (a variable of
the wrong type) are the caller's mistake: ``BAD_USER_INPUT``, nothing logged, and a
message naming the variable and the expected type but not the value.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from herald_common.errors import HeraldError
from prometheus_client import Counter
from tartiflette.types.exceptions.tartiflette import CoercionError

log = logging.getLogger(__name__)

# Every error a client is sent, over HTTP and WebSocket alike (count_errors).
ERRORS = Counter("herald_gateway_graphql_errors_total", "GraphQL errors sent to clients", ["code"])


def count_errors(errors: Any) -> None:
    """Count the errors of an answer by ``extensions.code`` (``NONE`` without one)."""
    for error in errors or ():
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        ERRORS.labels(str(code or "NONE")).inc()


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


_VARIABLE = re.compile(r"^Variable < \$(\w+) >")
_EXPECTED = re.compile(
    r"(Expected type < [\w\[\]!]+ >(?: to be an object)?"
    r"|Expected non-nullable type < [\w\[\]!]+ > not to be null"
    r"|Field < [\w.\[\]]+ > of required type < [\w\[\]!]+ > was not provided"
    r"|Field < \w+ > is not defined by type < \w+ >)"
    r"(?: at (?:value)?[\w.\[\]]*)?"
)


def input_error_message(message: str) -> str:
    """A coercion error's message without the offending value.

    Tartiflette writes ``Variable < $p > got invalid value < ['secret'] >; Expected
    type < String >; String cannot represent a non string value: < ['secret'] >.``;
    this keeps the variable's name and what was expected.
    """
    variable = _VARIABLE.match(message)
    if variable is None:
        return message
    expected = _EXPECTED.search(message, variable.end())
    detail = expected.group(0) if expected else "of the wrong type"
    detail = detail.replace("< ", "").replace(" >", "")
    detail = detail[0].lower() + detail[1:]
    return f"Variable ${variable.group(1)} has an invalid value: {detail}"


def describe_unexpected(exc: BaseException) -> str:
    """Type and stack of ``exc`` and its causes, without their messages."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 5:
        seen.add(id(current))
        stack = "".join(traceback.format_tb(current.__traceback__))
        parts.append(f"{stack}{type(current).__module__}.{type(current).__qualname__}")
        current = current.__cause__ or current.__context__
    return "\n-- caused by --\n".join(reversed(parts))


def log_unexpected(logger: logging.Logger, what: str, exc: BaseException, **extra: Any) -> None:
    """Log an unexpected failure with its trace but not its message (it may hold input)."""
    logger.error(
        "%s: %s (message withheld: it may quote request data)\n%s",
        what,
        type(exc).__qualname__,
        describe_unexpected(exc),
        extra=extra,
    )


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
    if isinstance(exception, CoercionError):
        # A variable or argument that does not fit its type: the caller's mistake.
        error["message"] = input_error_message(str(error.get("message") or exception))
        ext = {"code": "BAD_USER_INPUT"}
    elif isinstance(original, GraphQLFailure):
        error["message"] = original.message
        ext = {**ext, **original.extensions}
    elif isinstance(original, HeraldError):
        failure = GraphQLFailure.from_herald(original)
        error["message"] = failure.message
        ext = {**ext, **failure.extensions}
    elif original is not None:
        # Something unexpected: the trace goes to the log, not to the client.
        log_unexpected(log, "resolver failed", original, path=error.get("path"))
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
