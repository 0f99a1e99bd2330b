"""The email channel through a real SMTP server (herald_testing's ``smtp_server``).

Every effect is awaited on its real condition: a message kept by the server, the stored
email state (written after the SMTP conversation ends), a dead letter, a counter.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from herald_common.unsubscribe import LOCAL_SECRET, verify
from herald_notifications.email.channel import EMAILS
from herald_testing import eventually

pytestmark = pytest.mark.integration

EMAIL_CHANNELS = ["in_app", "email"]


def parts(message: Any) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


async def email_state(h: Any, notification_id: str, user_id: str) -> dict[str, Any] | None:
    r = await h.client.get(f"/v1/emails/{notification_id}", headers=h.auth(user_id))
    return r.json() if r.status_code == 200 else None


async def wait_state(h: Any, notification_id: str, user_id: str, wanted: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        doc = await email_state(h, notification_id, user_id)
        return doc if doc and doc["state"] == wanted else None

    result: dict[str, Any] = await eventually(reached, timeout=90)
    return result


async def only_notification(h: Any, user_id: str) -> dict[str, Any]:
    async def one() -> dict[str, Any] | None:
        edges = (await h.inbox(user_id))["edges"]
        return edges[0]["node"] if edges else None

    node: dict[str, Any] = await eventually(one, timeout=90)
    return node


ORDER = {
    "title": "Your order has shipped",
    "body": "Order #1a2b3c4d (2 items, $59.90) is on its way.",
    "data": {"order_id": "ord-1a2b3c4d5e", "status": "shipped", "total": 59.9, "items": 2},
}


async def test_order_update_by_email_with_both_parts_and_reason(
    harness, smtp_server, unique
) -> None:
    h, user = harness, f"ann-{unique}"
    address = f"{user}@example.com"
    await h.register(user, channels=EMAIL_CHANNELS)
    await h.request(f"order-{unique}", user, "order_update", content=ORDER)

    [message] = await smtp_server.wait_for(address)
    node = await only_notification(h, user)
    assert message["Subject"] == "Your order has shipped"
    assert message["From"] == "Herald <no-reply@herald.local>"
    assert address in message["To"] and user.title() in message["To"]
    assert message["Message-ID"] == f"<{node['id']}@herald.local>"
    assert message["X-Herald-Notification-Id"] == node["id"]
    assert message["X-Herald-Type"] == "order_update"
    assert message["X-Herald-Reason"] == "ORDER_STATUS_CHANGED"
    assert message["List-Unsubscribe"] is None  # order updates are transactional
    text, html = parts(message)
    assert "Order #1a2b3c4d (2 items, $59.90) is on its way." in text
    assert "Order total: 59.90" in text
    assert f"Hello {user.title()}" in html and "<h1" in html
    why = "Why you got this: Your order #1a2b3c4d is now shipped; order updates are always sent."
    assert why in text and why in html
    assert node["reason"] == {
        "code": "ORDER_STATUS_CHANGED",
        "text": "Your order #1a2b3c4d is now shipped; order updates are always sent.",
    }
    # The state is written after the SMTP conversation: wait for it, never assume it.
    stored = await wait_state(h, node["id"], user, "sent")
    assert stored["attempts"] == 1 and stored["to"] == address and stored["error"] is None
    # Someone else's email state is not readable.
    other = await h.client.get(f"/v1/emails/{node['id']}", headers=h.auth("mallory"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "NOT_FOUND"


async def test_promotion_carries_one_click_unsubscribe_and_escapes_html(
    harness, smtp_server, unique
) -> None:
    h, user = harness, f"pia-{unique}"
    address = f"{user}@example.com"
    await h.register(user, channels=EMAIL_CHANNELS, promotions=True)
    content = {
        "title": "Flash sale <b>today</b>",
        "body": "Laptops & tablets <script>alert(1)</script> 20% off",
        "data": {"campaign": "flash-sale"},
    }
    await h.request(f"promo-{unique}", user, "promotion", content=content)

    [message] = await smtp_server.wait_for(address)
    link = re.fullmatch(r"<(.+)>", message["List-Unsubscribe"])
    assert link is not None
    url = link.group(1)
    assert url.startswith("http://localhost:5000/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert verify(LOCAL_SECRET.encode(), url.rsplit("/", 1)[1]) == (user, "promotion")
    text, html = parts(message)
    assert url in text and f'href="{url}"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;today&lt;/b&gt;" in html
    assert "Laptops & tablets <script>alert(1)</script> 20% off" in text
    assert "You opted into promotions — campaign flash-sale." in text
    node = await only_notification(h, user)
    assert node["reason"]["code"] == "CAMPAIGN"
    await wait_state(h, node["id"], user, "sent")


async def test_campaign_overrides_the_template(harness, smtp_server, unique) -> None:
    h, user = harness, f"cam-{unique}"
    await h.register(user, channels=EMAIL_CHANNELS, promotions=True)
    content = {
        "title": "Spring",
        "body": "Everything green",
        "data": {
            "campaign": "spring",
            "email": {
                "subject": "{{ name }}, spring is here",
                "text": "Hi {{ name }}! {{ body }}",
                "html": "<html><body><p>Hi <em>{{ name }}</em>: {{ body }}</p></body></html>",
            },
        },
    }
    await h.request(f"spring-{unique}", user, "promotion", content=content)
    [message] = await smtp_server.wait_for(f"{user}@example.com")
    assert message["Subject"] == f"{user.title()}, spring is here"
    text, html = parts(message)
    assert text.startswith(f"Hi {user.title()}! Everything green")
    assert f"<em>{user.title()}</em>" in html
    # The campaign's own template still ends with the reason and the link.
    assert "Why you got this:" in text and "Why you got this:" in html
    assert "/unsubscribe/" in text


async def test_refused_recipient_goes_to_the_dead_letter_queue(
    harness, smtp_server, unique
) -> None:
    h, user = harness, f"rex-{unique}"
    address = f"{user}@example.com"
    smtp_server.refuse(address, 550)
    await h.register(user, channels=EMAIL_CHANNELS)
    await h.request(f"order-{unique}", user, "order_update", content=ORDER)

    node = await only_notification(h, user)  # in-app delivery does not wait for email
    failed = await wait_state(h, node["id"], user, "failed")
    assert failed["attempts"] == 1 and "550" in failed["error"]
    queue = h.settings.email_queue
    letters = await eventually(lambda: h.publisher.dead_letters(queue), timeout=90)
    assert len(letters) == 1 and "550" in (letters[0].error or "")
    assert smtp_server.messages(address) == []


async def test_temporary_failure_is_retried_then_sent(harness, smtp_server, unique) -> None:
    h, user = harness, f"tim-{unique}"
    address = f"{user}@example.com"
    smtp_server.refuse(address, 451, times=1)
    await h.register(user, channels=EMAIL_CHANNELS)
    await h.request(f"order-{unique}", user, "order_update", content=ORDER)

    [message] = await smtp_server.wait_for(address)
    node = await only_notification(h, user)
    sent = await wait_state(h, node["id"], user, "sent")
    assert sent["attempts"] == 2
    assert message["Message-ID"] == f"<{node['id']}@herald.local>"


async def test_temporary_failures_past_the_limit_end_failed(harness, smtp_server, unique) -> None:
    h, user = harness, f"tess-{unique}"
    address = f"{user}@example.com"
    smtp_server.refuse(address, 421)
    await h.register(user, channels=EMAIL_CHANNELS)
    await h.request(f"order-{unique}", user, "order_update", content=ORDER)
    node = await only_notification(h, user)
    failed = await wait_state(h, node["id"], user, "failed")
    # One first attempt and one per back-off step (the test settings have two).
    assert failed["attempts"] == len(h.settings.retry_delays_ms) + 1
    letters = await eventually(lambda: h.publisher.dead_letters(h.settings.email_queue), timeout=90)
    assert len(letters) == 1


def skipped(type_: str) -> float:
    return EMAILS.labels("skipped", type_)._value.get()


async def test_user_without_email_channel_gets_no_email(harness, smtp_server, unique) -> None:
    h, user = harness, f"ina-{unique}"
    await h.register(user, channels=["in_app"])
    before = skipped("order_update")
    await h.request(f"order-{unique}", user, "order_update", content=ORDER)
    node = await only_notification(h, user)
    # The channel has seen the notification and decided against sending it.
    await eventually(lambda: skipped("order_update") > before, timeout=90)
    assert smtp_server.messages(f"{user}@example.com") == []
    assert await email_state(h, node["id"], user) is None


async def test_quiet_hours_hold_the_email_too(harness, smtp_server, unique) -> None:
    h, user = harness, f"qui-{unique}"
    address = f"{user}@example.com"
    h.clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    await h.register(
        user,
        channels=EMAIL_CHANNELS,
        promotions=True,
        timezone="Europe/Paris",
        quiet_hours={"start": "12:00", "end": "14:00"},  # 11:00-13:00 UTC in March
    )
    await h.request(f"promo-{unique}", user, "promotion")
    await h.settled(f"promo-{unique}")

    # The user.registered handler re-evaluates the user's deferred requests too (it may
    # run after the request was decided): wait for the settled deferral.
    async def held() -> bool:
        records = await h.deliveries(user, outcome="deferred")
        return [r["deliver_at"] for r in records] == ["2026-03-10T13:00:00Z"]

    await eventually(held, timeout=60)
    # Held: no notification exists, so there is nothing the email channel could send.
    assert (await h.inbox(user))["total_count"] == 0
    assert smtp_server.messages(address) == []

    h.clock.set(datetime(2026, 3, 10, 13, 0, 1, tzinfo=UTC))
    released = await h.service.release_due(now=h.clock())
    assert len(released.created) == 1
    [message] = await smtp_server.wait_for(address)
    assert message["X-Herald-Type"] == "promotion"
    log = await h.client.get("/v1/deliveries/log", headers=h.auth(user))
    assert log.json()["edges"][0]["node"]["reason"] == (
        "Held during your quiet hours, delivered at 14:00."
    )
