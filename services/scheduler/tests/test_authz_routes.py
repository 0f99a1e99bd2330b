"""The scheduler service's route authorization matrix (generated from its OpenAPI)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from herald_scheduler.main import create_app
from herald_testing.authz import ADMIN, CALLERS, USER, check_routes

pytestmark = pytest.mark.integration

POLICY = {
    "GET /v1/orders/me": USER,
    "GET /v1/campaigns": ADMIN,
    "GET /v1/campaigns/runs": ADMIN,
    "POST /v1/campaigns/{name}/fire": ADMIN,
    "GET /v1/admin/dead-letters": ADMIN,
    "POST /v1/admin/dead-letters/{queue}/replay": ADMIN,
}


async def test_route_matrix(scheduler_settings, issuer) -> None:
    user, _ = issuer.issue("matrix-user", ttl=timedelta(minutes=30))
    admin, _ = issuer.issue("matrix-admin", roles=["admin"], ttl=timedelta(minutes=30))
    settings = scheduler_settings()
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as client:
            matrix = await check_routes(
                client,
                POLICY,
                user={"authorization": f"Bearer {user}"},
                admin={"authorization": f"Bearer {admin}"},
                issuer=issuer,
                redis_url=settings.redis_url,
            )
    assert len(matrix.rows) == len(CALLERS) * len(POLICY)
