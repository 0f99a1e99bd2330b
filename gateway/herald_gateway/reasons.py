"""``Notification.reason`` as the GraphQL type, from the notifications service's
``reason`` (present on every stored notification and real-time push)."""

from __future__ import annotations

from typing import Any

# For a message stored or pushed before reasons existed.
FALLBACK = {
    "order_update": ("ORDER_STATUS_CHANGED", "Order updates are always sent."),
    "promotion": ("CAMPAIGN", "You opted into promotions."),
    "recommendation": ("RECOMMENDED_FROM_ACTIVITY", "You opted into recommendations."),
    "digest": ("DIGEST", "You asked for a digest of your notifications."),
}


def notification_reason(n: dict[str, Any]) -> dict[str, str]:
    """``Notification.reason`` of a service notification or a real-time message."""
    given = n.get("reason")
    if isinstance(given, dict) and given.get("code") and given.get("text") is not None:
        return {"code": str(given["code"]), "text": str(given["text"])}
    code, text = FALLBACK.get(str(n.get("type")), (str(n.get("type") or "").upper(), ""))
    return {"code": code, "text": text}
