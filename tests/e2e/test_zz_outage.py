"""A service down: only its fields fail (UNAVAILABLE); the rest of the response answers.

Runs last (file order): it stops the recommendations process, then starts it again.
"""

from __future__ import annotations

import os
import signal

import pytest
from herald_testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_service_down_gives_partial_data(herald, gql) -> None:
    fay = await gql.register("Fay")
    token = fay["accessToken"]
    query = "{ me { id name } unreadCount recommendations(first: 3) { productId } }"
    assert (await gql(query, token=token))["me"]["name"] == "Fay"

    pid = herald.pid("recommendations")
    os.killpg(pid, signal.SIGTERM)

    async def stopped() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await eventually(stopped, timeout=30)
    try:
        # Not cached for a fresh page size, so the gateway must call the service.
        r = await gql.raw(
            "{ me { id name } unreadCount recommendations(first: 7) { productId } }", token=token
        )
        body = r.json()
        assert r.status_code == 200
        assert body["data"]["me"] == {"id": fay["user"]["id"], "name": "Fay"}
        # The local runner may already have delivered a promotion: any count will do.
        assert isinstance(body["data"]["unreadCount"], int)
        assert body["data"]["recommendations"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"]
        assert body["errors"][0]["path"] == ["recommendations"]
        # trackActivity needs the catalog: it fails cleanly too.
        r = await gql.raw(
            'mutation { trackActivity(events: [{kind: VIEW, productId: "p-00001"}]) }', token=token
        )
        assert r.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    finally:
        herald.up()
    assert (await gql("{ recommendations(first: 7) { productId } }", token=token))[
        "recommendations"
    ]
