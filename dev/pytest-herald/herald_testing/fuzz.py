"""Schemathesis over a service's OpenAPI, against the in-process ASGI app.

The app runs in the test's event loop (its lifespan connected to the real servers);
hypothesis drives schemathesis in a worker thread and each generated request is sent
through an ``httpx.ASGITransport`` client in that loop. Every response must be no 5xx,
a status code the operation documents, the documented content type, and match the
documented schema.

Use from an async test::

    report = await fuzz_openapi(client, examples=25, headers=bearer)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

# httpx.AsyncClient.request takes these from schemathesis' requests-style kwargs.
_PASSED = ("method", "url", "headers", "params", "json", "content", "data", "files", "cookies")


@dataclass
class FuzzReport:
    """What was sent: requests per operation and the status codes seen."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    # Operations fuzzed (each must appear in ``requests``).
    operations: list[str] = field(default_factory=list)

    @property
    def unreached(self) -> list[str]:
        return [op for op in self.operations if not self.requests[op]]

    @property
    def total(self) -> int:
        return sum(self.requests.values())


async def fuzz_openapi(
    client: httpx.AsyncClient,
    *,
    examples: int = 25,
    headers: dict[str, str] | None = None,
    modes: tuple[str, ...] = ("positive", "negative"),
    exclude: tuple[str, ...] = ("/metrics",),
) -> FuzzReport:
    """Fuzz every operation of ``client``'s ``/openapi.json``; return the report.

    ``headers`` (e.g. a bearer token) are added to every request; ``exclude`` lists
    paths not fuzzed (``/metrics`` is Prometheus text, not JSON)."""
    spec = (await client.get("/openapi.json")).json()
    loop = asyncio.get_running_loop()
    return await asyncio.to_thread(
        _run, spec, client, loop, examples, headers or {}, modes, exclude
    )


def _run(
    spec: dict[str, Any],
    client: httpx.AsyncClient,
    loop: asyncio.AbstractEventLoop,
    examples: int,
    headers: dict[str, str],
    modes: tuple[str, ...],
    exclude: tuple[str, ...],
) -> FuzzReport:
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_dict(spec)
    report = FuzzReport()
    base = str(client.base_url).rstrip("/")

    def send(case: Any) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=base, headers=headers)
        kwargs = {k: v for k, v in kwargs.items() if k in _PASSED}
        future = asyncio.run_coroutine_threadsafe(client.request(**kwargs), loop)
        return future.result(timeout=120)

    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in exclude:
            continue
        label = f"{operation.method.upper()} {operation.path}"
        report.operations.append(label)
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

            run = _property(strategy, label, examples, send, report, checks)
            try:
                run()
            except Unsatisfiable:
                # Nothing to negate (an operation without parameters or body).
                continue
            except Exception:  # recorded in the report, asserted by the test
                if not report.failures:
                    raise
    return report


def _property(
    strategy: Any,
    label: str,
    examples: int,
    send: Any,
    report: FuzzReport,
    checks: list[Any],
) -> Any:
    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = send(case)
        report.requests[label] += 1
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except Exception as exc:
            report.failures.append(f"{label}: {str(exc)[:1500]}")
            raise

    return run
