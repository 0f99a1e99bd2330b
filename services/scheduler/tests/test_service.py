"""The scheduler service end to end over its real consumers and HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from herald_common.db import run_db
from herald_common.events import (
    Activity,
    ActivityRecorded,
    CampaignAudience,
    CampaignFired,
    CampaignTemplate,
    UserRegistered,
    make_event,
)
from herald_common.preferences import Preferences
from herald_scheduler.main import create_app
from herald_scheduler.orders import sweep
from herald_testing import eventually

pytestmark = pytest.mark.integration


def _registered(uid: str, name: str, promotions: bool = True):
    return make_event(
        "user.registered",
        UserRegistered(
            user_id=uid,
            name=name,
            email=f"{uid}@example.com",
            preferences=Preferences(promotions=promotions),
            revision=1,
            created_at=datetime.now(UTC),
        ),
        source="users",
    )


async def test_service_places_orders_fans_out_and_serves_its_api(
    scheduler_settings, broker_for, make_sink, issuer
):
    settings = scheduler_settings()
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as client:
            publisher = await broker_for(settings, source="test")
            sink = await make_sink(publisher, ["notification.requested.#", "order.status_changed"])
            ann_token, _ = issuer.issue("ann", ttl=timedelta(minutes=5))
            admin_token, _ = issuer.issue("root", roles=["admin"], ttl=timedelta(minutes=5))
            ann = {"authorization": f"Bearer {ann_token}"}
            admin = {"authorization": f"Bearer {admin_token}"}

            for event in (_registered("ann", "Ann Smith"), _registered("bob", "Bob", False)):
                await publisher.publish(event)
            now = datetime.now(UTC)
            await publisher.publish(
                make_event(
                    "activity.recorded",
                    ActivityRecorded(
                        activities=[
                            Activity(
                                user_id="ann",
                                kind=kind,
                                product_id="p9",
                                occurred_at=now,
                                session_id="s1",
                                product_name="Desk lamp",
                                category="lighting",
                                price=25.0,
                            )
                            for kind in ("view", "purchase")
                        ]
                    ),
                    source="gateway",
                )
            )

            async def my_orders():
                response = await client.get("/v1/orders/me", headers=ann)
                assert response.status_code == 200
                return response.json()

            [order] = await eventually(my_orders)
            assert order["status"] == "placed" and order["total"] == 25.0
            assert order["items"] == [
                {"product_id": "p9", "name": "Desk lamp", "quantity": 1, "price": 25.0}
            ]
            # The sweep (a CronJob in Kubernetes) moves it on; the service's relay
            # publishes the change.
            await run_db(sweep, now + timedelta(minutes=1), settings)
            app.state.runtime.outbox_written()
            await eventually(lambda: len(sink.requests) == 2)
            assert [r.content["data"]["status"] for r in sink.requests] == ["placed", "paid"]

            # campaign.fired from a CronJob pod: the audience is ann (bob opted out).
            fired = CampaignFired(
                campaign="lamps",
                run_id="lamps-1",
                type="promotion",
                audience=CampaignAudience(categories=["lighting"]),
                template=CampaignTemplate(title="{first_name}: {product_name}", body="Sale"),
                fired_at=now,
            )
            await publisher.publish(make_event("campaign.fired", fired, source="operator"))

            async def runs():
                response = await client.get("/v1/campaigns/runs", headers=admin)
                assert response.status_code == 200
                done = [r for r in response.json() if r["status"] == "succeeded"]
                return done

            [run] = await eventually(runs)
            assert (run["run_id"], run["audience_size"], run["sent"], run["suppressed"]) == (
                "lamps-1",
                1,
                1,
                1,
            )
            await eventually(lambda: len(sink.requests) == 3)
            assert sink.requests[-1].content["title"] == "Ann: Desk lamp"

            # Fire the same campaign by name: a dry run answers at once, sends nothing.
            dry = await client.post(
                "/v1/campaigns/lamps/fire", json={"dry_run": True}, headers=admin
            )
            assert dry.status_code == 200, dry.text
            body = dry.json()
            assert body["dry_run"] and body["status"] == "succeeded"
            assert body["audience_size"] == 1 and body["sent"] == 0
            assert body["samples"][0]["content"]["title"] == "Ann: Desk lamp"
            real = await client.post("/v1/campaigns/lamps/fire", json={}, headers=admin)
            assert real.status_code == 200 and real.json()["status"] in ("running", "succeeded")
            await eventually(lambda: len(sink.requests) == 4)
            await sink.drain()
            assert len(sink.requests) == 4

            # Refusals: not an admin, unknown campaign, bad body, no token.
            assert (await client.get("/v1/campaigns/runs", headers=ann)).status_code == 403
            missing = await client.post("/v1/campaigns/nope/fire", json={}, headers=admin)
            assert missing.status_code == 404 and missing.json()["error"]["field"] == "name"
            bad = await client.post("/v1/campaigns/lamps/fire", json={"dry": 1}, headers=admin)
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_USER_INPUT"
            assert (await client.get("/v1/orders/me")).status_code == 401
            assert (await client.get("/v1/orders/me?first=0", headers=ann)).status_code == 400
