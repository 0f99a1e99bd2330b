"""Why a notification came, and why one did not: sentences a shopper understands.

:func:`reason_for` explains a delivered notification (``Notification.reason`` in the
API, the real-time push and the email footer) from what the notification itself
carries: its type, its source and its content's ``data`` (the campaign name, the
order's status, the recommended products). It is a pure function of the stored
document, so notifications stored before it existed are explained too.

:func:`log_sentence` explains a delivery record (suppressed, deferred or released) in
the user's own time zone: "Held during your quiet hours until 07:30."
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from herald_common.preferences import Preferences

TYPE_WORDS = {
    "promotion": "promotions",
    "order_update": "order updates",
    "recommendation": "recommendations",
    "digest": "digests",
}


def _data(content: Any) -> dict[str, Any]:
    if isinstance(content, dict) and isinstance(content.get("data"), dict):
        return content["data"]
    return {}


def _words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def reason_for(doc: dict[str, Any]) -> dict[str, str]:
    """``{code, text}`` for a stored notification (or its API form)."""
    type_ = str(doc.get("type"))
    data = _data(doc.get("content"))
    if type_ == "order_update":
        status = str(data.get("status") or "updated").replace("_", " ")
        order = str(data.get("order_id") or "").removeprefix("ord-")[:8]
        which = f"Your order #{order}" if order else "Your order"
        return {
            "code": "ORDER_STATUS_CHANGED",
            "text": f"{which} is now {status}; order updates are always sent.",
        }
    if type_ == "promotion":
        campaign = data.get("campaign")
        categories = [str(c) for c in data.get("audience_categories") or [] if c]
        text = "You opted into promotions"
        if categories:
            text += f" and bought or browsed {_words(categories)} recently"
        text += f" — campaign {campaign}." if campaign else "."
        return {"code": "CAMPAIGN", "text": text}
    if type_ == "recommendation":
        return {
            "code": "RECOMMENDED_FROM_ACTIVITY",
            "text": "You opted into recommendations; these picks come from what you "
            "viewed and bought recently.",
        }
    if type_ == "digest":
        return {"code": "DIGEST", "text": "You asked for a digest of your notifications."}
    return {"code": type_.upper(), "text": f"You receive {TYPE_WORDS.get(type_, type_)}."}


def _local_time(value: datetime | None, preferences: Preferences | None) -> str:
    if value is None:
        return ""
    zone = ZoneInfo(preferences.timezone if preferences else "UTC")
    local = value.astimezone(zone)
    suffix = "" if preferences else " UTC"
    return local.strftime("%H:%M") + suffix


def log_sentence(record: dict[str, Any], preferences: Preferences | None) -> str:
    """One sentence about a delivery record, times in the user's time zone."""
    outcome, reason = record.get("outcome"), record.get("reason")
    words = TYPE_WORDS.get(str(record.get("type")), str(record.get("type")))
    until = _local_time(record.get("deliver_at"), preferences)
    at = _local_time(record.get("at"), preferences)
    if outcome == "released":
        held = {
            "quiet_hours": "during your quiet hours",
            "unknown_user": "until your account was ready",
        }
        return f"Held {held.get(str(reason), 'for a while')}, delivered at {at}."
    if reason == "quiet_hours":
        return f"Held during your quiet hours until {until}."
    if reason == "unknown_user":
        if outcome == "deferred":
            return "Waiting for your account to be set up."
        return "Not sent: the account was never set up."
    if reason == "opted_out":
        return f"Not sent: you turned off {words}."
    if reason == "daily_cap":
        cap = preferences.max_promotions_per_day if preferences else None
        limit = f"your limit of {cap} promotions a day" if cap is not None else "your daily limit"
        return f"Not sent: {limit} was reached."
    if reason == "superseded":
        if record.get("type") == "order_update":
            return "Not shown: a newer update of the same order replaced it."
        return f"Not shown: newer {words} of the same kind replaced it."
    if reason == "user_deleted":
        return "Not sent: the account was deleted."
    return f"Not sent ({reason})."
