"""The caller's delivery log: requests that were suppressed, deferred or deferred and
later released, each with a sentence in the user's time zone
(:func:`herald_notifications.reasons.log_sentence`), newest first.

Keyset pagination on ``(at, _id)`` over the index ``(user_id, at, _id)``; the cursor is
an opaque URL-safe base64 of that pair.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from herald_common import replica
from herald_common.errors import BadUserInput
from herald_common.preferences import Preferences
from pymongo import DESCENDING

from herald_notifications.models import DeliveryRecord
from herald_notifications.reasons import log_sentence

DECISIONS = {"suppressed": "SUPPRESSED", "deferred": "DEFERRED", "released": "RELEASED"}


def _iso(value: datetime | None) -> str | None:
    from herald_notifications.inbox import iso

    return iso(value)


def encode_cursor(doc: dict[str, Any]) -> str:
    from herald_notifications.delivery import ms

    raw = json.dumps([ms(doc["at"]).isoformat(), str(doc["_id"])], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, doc_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(doc_id, str):
            raise ValueError("bad cursor")
        key: Any = ObjectId(doc_id) if ObjectId.is_valid(doc_id) else doc_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, InvalidId) as exc:
        raise BadUserInput("not a cursor returned by this API", field="after") from exc
    return when, key


def entry(doc: dict[str, Any], preferences: Preferences | None) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "type": doc["type"],
        "decision": DECISIONS.get(doc["outcome"], str(doc["outcome"]).upper()),
        "reason_code": str(doc["reason"]).upper(),
        "reason": log_sentence(doc, preferences),
        "at": _iso(doc["at"]),
        "until": _iso(doc.get("deliver_at")) if doc["outcome"] == "deferred" else None,
    }


def page(user_id: str, *, first: int = 20, after: str | None = None) -> dict[str, Any]:
    """One page of ``user_id``'s delivery log."""
    query: dict[str, Any] = {"user_id": user_id}
    if after:
        at, doc_id = decode_cursor(after)
        query["$or"] = [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": doc_id}}]
    docs = list(
        DeliveryRecord._get_collection()
        .find(query, {"request": 0, "history": 0})
        .sort([("at", DESCENDING), ("_id", DESCENDING)])
        .limit(first + 1)
    )
    user = replica.get_users([user_id]).get(user_id)
    preferences = (
        Preferences.model_validate(user.get("preferences") or {})
        if user and not user.get("deleted")
        else None
    )
    edges = [{"cursor": encode_cursor(d), "node": entry(d, preferences)} for d in docs[:first]]
    return {
        "edges": edges,
        "page_info": {
            "has_next_page": len(docs) > first,
            "end_cursor": edges[-1]["cursor"] if edges else None,
        },
    }
