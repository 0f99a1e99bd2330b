"""The recommendations service's route authorization matrix (generated from its
OpenAPI); another user's recommendations are the admin route ``/{user_id}``."""

from __future__ import annotations

import pytest
from herald_testing.authz import ADMIN, CALLERS, USER, check_routes

pytestmark = pytest.mark.integration

POLICY = {
    "GET /v1/recommendations/me": USER,
    "GET /v1/recommendations/{user_id}": ADMIN,
    "GET /v1/products": USER,
    "GET /v1/products/{product_id}": USER,
    "GET /v1/admin/dead-letters": ADMIN,
    "POST /v1/admin/dead-letters/{queue}/replay": ADMIN,
}


async def test_route_matrix(service, issuer) -> None:
    matrix = await check_routes(
        service.client,
        POLICY,
        user=service.token(issuer, "matrix-user"),
        admin=service.token(issuer, "matrix-admin", admin=True),
        issuer=issuer,
        redis_url=service.settings.redis_url,
    )
    assert len(matrix.rows) == len(CALLERS) * len(POLICY)
