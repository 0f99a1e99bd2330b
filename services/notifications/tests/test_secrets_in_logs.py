"""SMTP credentials never reach the logs: the email channel logs in to a server that
offers no AUTH (every send fails and is retried), with every logger at DEBUG; each
captured record is searched for the SMTP password and the unsubscribe secret."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from herald_testing import eventually

pytestmark = pytest.mark.integration

SMTP_PASSWORD = "Smtp-Secret-in-Logs-5521"
UNSUBSCRIBE_SECRET = "Unsubscribe-Secret-in-Logs-7730"
ORDER = {"title": "Shipped", "body": "Your order is on its way."}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = [record.getMessage(), repr(record.args)]
        text += [f"{k}={v!r}" for k, v in record.__dict__.items() if k not in ("msg", "args")]
        if record.exc_info:
            text.append(logging.Formatter().formatException(record.exc_info))
        self.lines.append(" ".join(text))


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
    handler = Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


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
