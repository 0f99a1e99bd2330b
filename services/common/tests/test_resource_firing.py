"""The one resource → ``campaign.fired`` mapping and :func:`fire_campaign`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from herald_common.events import parse_event
from herald_common.resources import (
    NotificationCampaign,
    campaign_fired,
    fire_resource,
    load_text,
    scheduled_run_id,
)
from herald_common.resources.segments import CATALOG_CATEGORIES, unknown_categories
from herald_common.resources.tasks import TASK_COMPONENTS, task_command
from herald_common.resources.templates import TemplateError

CAMPAIGN = """\
apiVersion: herald.io/v1alpha1
kind: NotificationCampaign
metadata: {name: spring-sale, namespace: shop}
spec:
  type: promotion
  schedule: "0 9 * * 1"
  timeZone: America/New_York
  audience: {categories: [Books], userIds: [u1, u2]}
  template:
    title: "Hi {first_name}"
    body: "Deals in {favorite_category}"
    data: {cta: "Shop {favorite_category}", discount: 20}
"""
AT = datetime(2026, 3, 9, 13, 0, 40, tzinfo=UTC)


def _campaign(text: str = CAMPAIGN) -> NotificationCampaign:
    [campaign] = load_text(text)
    assert isinstance(campaign, NotificationCampaign)
    return campaign


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.events.append(event)


def test_campaign_fired_carries_the_whole_spec() -> None:
    c = _campaign()
    fired = campaign_fired(c.name, c.namespace, c.spec, run_id="r1", fired_at=AT)
    assert (fired.campaign, fired.namespace, fired.run_id, fired.type) == (
        "spring-sale",
        "shop",
        "r1",
        "promotion",
    )
    assert fired.audience.categories == ["Books"] and fired.audience.user_ids == ["u1", "u2"]
    assert fired.template.data == {"cta": "Shop {favorite_category}", "discount": 20}
    assert fired.dry_run is False
    assert campaign_fired(
        c.name, c.namespace, c.spec, run_id="r", fired_at=AT, dry_run=True
    ).dry_run


def test_a_template_that_cannot_render_is_refused_before_publishing() -> None:
    spec = _campaign().spec.model_copy(
        update={"template": _campaign().spec.template.model_copy(update={"title": "{coupon}"})}
    )
    with pytest.raises(TemplateError, match=r"spec\.template\.title: unknown variable"):
        campaign_fired("x", "default", spec, run_id="r", fired_at=AT)


async def test_fire_resource_publishes_one_campaign_fired_event() -> None:
    recorder = _Recorder()
    c = _campaign()
    fired = await fire_resource(recorder, c, run_id="r9", fired_at=AT, source="test")
    [event] = recorder.events
    parsed = parse_event(event.model_dump(mode="json"))
    assert parsed.type == "campaign.fired" and parsed.source == "test"
    assert parsed.payload == fired


def test_scheduled_run_ids_name_the_slot() -> None:
    c = _campaign()
    assert scheduled_run_id(c.name, c.spec, AT) == "spring-sale-20260309t1300z"
    one_shot = _campaign(
        CAMPAIGN.replace('  schedule: "0 9 * * 1"\n', "  runAt: 2030-01-01T09:00:00Z\n")
    )
    assert scheduled_run_id("x", one_shot.spec, AT) == "x-20300101t0900z"
    assert scheduled_run_id("x", None, AT) == "x-20260309t1300z"


def test_tasks_map_to_a_command_and_an_image() -> None:
    assert task_command("order-sweep", {"batchSize": 50}) == [
        "herald-scheduler",
        "sweep-orders",
        "--batch-size",
        "50",
    ]
    assert task_command("recommendation-batch")[0] == "herald-recommendations"
    assert task_command("digest", {"limit": 20}) == [
        "herald-notifications",
        "digest",
        "--limit",
        "20",
    ]
    assert TASK_COMPONENTS == {
        "order-sweep": "scheduler",
        "recommendation-batch": "recommendations",
        "digest": "notifications",
    }


def test_unknown_segment_categories_are_found_case_insensitively() -> None:
    assert unknown_categories(["books", "Spaceships", "LAPTOPS"], CATALOG_CATEGORIES) == [
        "Spaceships"
    ]
