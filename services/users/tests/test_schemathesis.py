"""Schemathesis over the users service's OpenAPI (in-process app, real servers behind):
no 5xx, only documented status codes and content types, responses matching their schema."""

from __future__ import annotations

import pytest
from herald_testing.fuzz import fuzz_openapi

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("who", ["anonymous", "user", "admin"])
async def test_openapi_fuzz(users, who: str) -> None:
    headers: dict[str, str] = {}
    if who == "user":
        headers = users.bearer((await users.register("fuzz@example.com"))["access_token"])
    elif who == "admin":
        headers = users.bearer(await users.admin_token())
    report = await fuzz_openapi(users.client, examples=10, headers=headers)
    assert not report.failures, "\n\n".join(report.failures[:5])
    assert len(report.operations) >= 10 and not report.unreached
    assert not [s for s in report.statuses if s >= 500]
