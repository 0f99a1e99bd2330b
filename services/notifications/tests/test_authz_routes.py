"""The notifications service's route authorization matrix (generated from its OpenAPI).
Another user's notification is NOT_FOUND: ``tests/e2e/test_protection.py``."""

from __future__ import annotations

import pytest
from herald_testing.authz import ADMIN, CALLERS, USER, check_routes

pytestmark = pytest.mark.integration

POLICY = {
    "GET /v1/notifications": USER,
    "GET /v1/notifications/unread-count": USER,
    "GET /v1/notifications/unseen-count": USER,
    "GET /v1/notifications/{notification_id}": USER,
    "POST /v1/notifications/read-all": USER,
    "POST /v1/notifications/read": USER,
    "POST /v1/notifications/seen": USER,
    "POST /v1/notifications/archive-read": USER,
    "POST /v1/notifications/{notification_id}/read": USER,
    "POST /v1/notifications/{notification_id}/archive": USER,
    "POST /v1/notifications/{notification_id}/unarchive": USER,
    "POST /v1/notifications/{notification_id}/snooze": USER,
    "DELETE /v1/notifications/{notification_id}": USER,
    "GET /v1/deliveries": USER,
    "GET /v1/deliveries/log": USER,
    "GET /v1/emails/{notification_id}": USER,
    "GET /v1/admin/dead-letters": ADMIN,
    "POST /v1/admin/dead-letters/{queue}/replay": ADMIN,
}


async def test_route_matrix(harness) -> None:
    matrix = await check_routes(
        harness.client,
        POLICY,
        user=harness.auth("matrix-user"),
        admin=harness.auth("matrix-admin", "admin"),
        issuer=harness.issuer,
        redis_url=harness.settings.redis_url,
    )
    assert len(matrix.rows) == len(CALLERS) * len(POLICY)
