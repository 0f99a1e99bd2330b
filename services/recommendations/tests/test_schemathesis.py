"""Schemathesis over the recommendations service's OpenAPI (in-process app, real servers
behind): no 5xx, only documented status codes and content types, responses matching
their schema."""

from __future__ import annotations

import pytest
from herald_testing.fuzz import fuzz_openapi

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("who", ["anonymous", "user", "admin"])
async def test_openapi_fuzz(service, issuer, who: str) -> None:
    headers = {} if who == "anonymous" else service.token(issuer, "fuzz-user", who == "admin")
    report = await fuzz_openapi(service.client, examples=10, headers=headers)
    assert not report.failures, "\n\n".join(report.failures[:5])
    assert report.operations and not report.unreached
    assert not [s for s in report.statuses if s >= 500]
