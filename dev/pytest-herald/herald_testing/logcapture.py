"""Every log record of a test, as text that includes its arguments, extra fields and
traceback: what a test searches when it proves that nothing secret is logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = [record.getMessage()]
        for key, value in record.__dict__.items():
            if key not in ("msg", "args", "message"):
                text.append(f"{key}={value!r}")
        if record.exc_info:
            text.append(logging.Formatter().formatException(record.exc_info))
        text.append(repr(record.args))
        self.lines.append(" ".join(text))


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    """Every record of every logger, at DEBUG, while the block runs."""
    handler = LogCapture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
