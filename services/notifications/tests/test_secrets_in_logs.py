"""SMTP credentials never reach the logs: the email channel logs in to a server that
offers no AUTH (every send fails and is retried), with every logger at DEBUG; each
captured record is searched for the SMTP password and the unsubscribe secret."""

from __future__ import annotations

from typing import Any

import pytest
from herald_testing import eventually
from herald_testing.logcapture import capture_logs

pytestmark = pytest.mark.integration

SMTP_PASSWORD = "Smtp-Secret-in-Logs-5521"
UNSUBSCRIBE_SECRET = "Unsubscribe-Secret-in-Logs-7730"
ORDER = {"title": "Shipped", "body": "Your order is on its way."}


@pytest.fixture
def notifications_settings(notifications_settings):
    """The suite's settings with SMTP credentials and an unsubscribe secret."""

    def build(**overrides: Any):
        values = {
            "smtp_username": "herald",
            "smtp_password": SMTP_PASSWORD,
            "unsubscribe_secret": UNSUBSCRIBE_SECRET,
            **overrides,
        }
        return notifications_settings(**values)

    return build


@pytest.fixture
def captured():
    with capture_logs() as handler:
        yield handler


async def test_smtp_credentials_are_not_logged(harness, captured, unique) -> None:
    h, user = harness, f"smtp-{unique}"
    assert h.settings.smtp_password is not None
    assert SMTP_PASSWORD not in f"{h.settings!r} {h.settings}"
    await h.register(user, channels=["in_app", "email"])
    await h.request(f"order-{unique}", user, "order_update", content=ORDER)

    async def attempted() -> bool:
        edges = (await h.inbox(user))["edges"]
        if not edges:
            return False
        r = await h.client.get(f"/v1/emails/{edges[0]['node']['id']}", headers=h.auth(user))
        return r.status_code == 200 and r.json()["attempts"] >= 1 and r.json()["state"] != "sent"

    await eventually(attempted, timeout=60)
    assert captured.lines
    leaks = [
        line[:300] for line in captured.lines if SMTP_PASSWORD in line or UNSUBSCRIBE_SECRET in line
    ]
    assert not leaks, leaks[:3]
