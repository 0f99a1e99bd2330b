"""JSON log lines: one object per record, with the correlation id and extra fields."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import queue
from collections.abc import Iterator

import pytest
from herald_common import logs


@pytest.fixture
def lines(monkeypatch) -> Iterator[io.StringIO]:
    out = io.StringIO()
    monkeypatch.setattr(logs.sys, "stdout", out)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure_logging("svc")
    try:
        yield out
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def _records(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_carries_the_service_the_correlation_id_and_extras(lines) -> None:
    logs.set_correlation_id("c-1")
    logging.getLogger("herald.x").info("stored", extra={"user_id": "ann", "n": 3})
    [record] = _records(lines)
    assert record["service"] == "svc" and record["level"] == "INFO"
    assert record["message"] == "stored" and record["correlation_id"] == "c-1"
    assert (record["user_id"], record["n"]) == ("ann", 3)


def test_a_dataclass_that_cannot_be_copied_does_not_lose_the_line(lines) -> None:
    # kopf puts its operator settings (a dataclass holding queues) on every per-object
    # line; copying it field by field raises, and the line would be lost.
    @dataclasses.dataclass
    class Settings:
        inbox: queue.SimpleQueue = dataclasses.field(default_factory=queue.SimpleQueue)

    logging.getLogger("herald.tests.per_object").info(
        "Handler succeeded", extra={"settings": Settings(), "k8s_ref": {"name": "spring"}}
    )
    [record] = _records(lines)
    assert record["message"] == "Handler succeeded"
    assert record["settings"] == "<Settings>" and record["k8s_ref"] == {"name": "spring"}
