"""Schemathesis over the scheduler service's OpenAPI (in-process app, real servers
behind): no 5xx, only documented status codes and content types, responses matching
their schema."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from herald_scheduler.main import create_app
from herald_testing.fuzz import fuzz_openapi

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("roles", [None, (), ("admin",)], ids=["anonymous", "user", "admin"])
async def test_openapi_fuzz(scheduler_settings, issuer, roles) -> None:
    headers: dict[str, str] = {}
    if roles is not None:
        token, _ = issuer.issue("fuzz-user", roles=list(roles), ttl=timedelta(minutes=30))
        headers = {"authorization": f"Bearer {token}"}
    app = create_app(scheduler_settings())
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as client:
            report = await fuzz_openapi(client, examples=10, headers=headers)
    assert not report.failures, "\n\n".join(report.failures[:5])
    assert report.operations and not report.unreached
    assert not [s for s in report.statuses if s >= 500]
