"""Email end to end, and why: the order update and the promotion arrive as .eml files
in the run's mail directory (dev/run.sh's SMTP server); the promotion's one-click
unsubscribe link, posted through the gateway, turns promotions off; every notification
carries its reason; the delivery log pages the caller's held requests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from herald_testing import eventually
from herald_testing.mailbox import ENVELOPE_TO, read_message

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ME = "{ me { preferences { promotions channels } } }"


def mails(herald: Any, address: str) -> list[Any]:
    found = []
    for path in sorted(Path(herald.env["HERALD_MAIL_DIR"]).glob("*.eml")):
        message = read_message(path)
        if address in str(message[ENVELOPE_TO]):
            found.append(message)
    return found


async def test_promotion_email_unsubscribes_through_the_gateway(herald, gql) -> None:
    ann = await gql.register(
        "Emma", {"promotions": True, "channels": ["in_app", "email"], "timezone": "UTC"}
    )
    token = ann["accessToken"]

    # The local runner fires flash-sale every 10 s: its email arrives.
    def promotion() -> Any:
        for m in mails(herald, ann["email"]):
            if m["X-Herald-Type"] == "promotion":
                return m
        return None

    message = await eventually(promotion, timeout=90)
    link = re.fullmatch(r"<(.+)>", message["List-Unsubscribe"])
    assert link is not None and link.group(1).startswith(herald.url + "/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Why you got this: You opted into promotions — campaign flash-sale." in text
    url = link.group(1)

    async with httpx.AsyncClient(timeout=30) as client:
        # The page only shows a button: nothing changes on GET.
        page = await client.get(url, headers={"accept": "text/html"})
        assert page.status_code == 200 and 'method="post"' in page.text
        assert (await gql(ME, token=token))["me"]["preferences"]["promotions"] is True
        # What a mail client sends for one-click unsubscribe (RFC 8058).
        done = await client.post(
            url,
            content="List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200, done.text
        assert done.json()["unsubscribed"] == "promotion"
        forged = await client.post(url[:-3] + "abc")
        assert forged.status_code == 400 and forged.json()["error"]["code"] == "BAD_USER_INPUT"

    async def off() -> bool:
        return (await gql(ME, token=token))["me"]["preferences"]["promotions"] is False

    await eventually(off, timeout=30)

    # The inbox says why each notification came.
    data = await gql(
        "{ notifications(first: 5) { edges { node { type reason { code text } } } } }",
        token=token,
    )
    reasons = [e["node"]["reason"] for e in data["notifications"]["edges"]]
    assert {"code": "CAMPAIGN", "text": "You opted into promotions — campaign flash-sale."} in (
        reasons
    )


LOG = """query Log($first: Int, $after: String) {
  myDeliveryLog(first: $first, after: $after) {
    edges { cursor node { id type decision reason reasonCode at until } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_delivery_log_pages_held_promotions_with_reasons(herald, gql) -> None:
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2))
    quiet = {"start": start, "end": end.strftime("%H:%M")}
    bo = await gql.register("Bo", {"promotions": True, "timezone": "UTC", "quietHours": quiet})
    token = bo["accessToken"]

    async def three_with_a_promotion() -> Any:
        edges = (await gql(LOG, {"first": 50}, token=token))["myDeliveryLog"]["edges"]
        promotions = [e["node"] for e in edges if e["node"]["type"] == "PROMOTION"]
        # Recommendations are held by the same quiet hours and may come first.
        return promotions[0] if len(edges) >= 3 and promotions else None

    node = await eventually(three_with_a_promotion, timeout=120)
    assert node["type"] == "PROMOTION" and node["decision"] == "DEFERRED"
    assert node["reasonCode"] == "QUIET_HOURS"
    assert node["reason"] == f"Held during your quiet hours until {quiet['end']}."
    assert node["until"] is not None

    first = (await gql(LOG, {"first": 2}, token=token))["myDeliveryLog"]
    assert len(first["edges"]) == 2 and first["pageInfo"]["hasNextPage"] is True
    second = (await gql(LOG, {"first": 2, "after": first["pageInfo"]["endCursor"]}, token=token))[
        "myDeliveryLog"
    ]
    seen = {e["node"]["id"] for e in first["edges"]}
    assert second["edges"] and not seen & {e["node"]["id"] for e in second["edges"]}

    for variables in ({"first": 0}, {"first": 2, "after": "x!"}):
        r = await gql.raw(LOG, variables, token=token)
        [error] = r.json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    anonymous = (await gql.raw(LOG, {"first": 2})).json()
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert anonymous["data"]["myDeliveryLog"] is None
