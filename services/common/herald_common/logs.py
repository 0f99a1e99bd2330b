"""JSON logging with a correlation id.

The correlation id travels in every event envelope: a consumer adopts the id of the
event it handles, so the logs of one user action can be followed across services.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import uuid
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

_correlation_id: ContextVar[str | None] = ContextVar("herald_correlation_id", default=None)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None = None) -> str:
    """Set (or create) the correlation id of the current task; returns it."""
    value = value or uuid.uuid4().hex
    _correlation_id.set(value)
    return value


class _Encoder(JsonEncoder):
    """The library's encoder, except that a dataclass instance in a record's extra
    fields is written as its type name: copying it field by field (the library's way)
    fails for objects that hold queues or locks, such as kopf's operator settings on
    every per-object log line, and such a line would be lost."""

    def default(self, o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return f"<{type(o).__name__}>"
        return super().default(o)


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _correlation_id.get()
        return True


def configure_logging(service: str, level: str = "INFO", json_output: bool = True) -> None:
    """Route all logging to stdout, one JSON object per line (or plain text locally)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_CorrelationFilter())
    if json_output:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
                json_encoder=_Encoder,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aio_pika", "aiormq", "pymongo", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
