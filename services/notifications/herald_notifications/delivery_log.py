"""The caller's delivery log: requests that were suppressed, deferred or deferred and
later released, each with a sentence in the user's time zone
(:func:`herald_notifications.reasons.log_sentence`), newest first.

Keyset pagination on ``(at, _id)`` over the index ``(user_id, at, _id)``
(:func:`herald_notifications.delivery_store.log_records`); the cursor is an opaque
URL-safe base64 of that pair (:mod:`herald_notifications.views`).
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from herald_common import replica
from herald_common.preferences import Preferences

from herald_notifications import delivery_store
from herald_notifications.delivery import user_state
from herald_notifications.reasons import log_sentence
from herald_notifications.views import decode_pair, encode_pair, iso, page_info

DECISIONS = {"suppressed": "SUPPRESSED", "deferred": "DEFERRED", "released": "RELEASED"}


def encode_cursor(doc: dict[str, Any]) -> str:
    return encode_pair(doc["at"], str(doc["_id"]))


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    at, doc_id = decode_pair(cursor)
    return at, ObjectId(doc_id) if ObjectId.is_valid(doc_id) else doc_id


def entry(doc: dict[str, Any], preferences: Preferences | None) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "type": doc["type"],
        "decision": DECISIONS.get(doc["outcome"], str(doc["outcome"]).upper()),
        "reason_code": str(doc["reason"]).upper(),
        "reason": log_sentence(doc, preferences),
        "at": iso(doc["at"]),
        "until": iso(doc.get("deliver_at")) if doc["outcome"] == "deferred" else None,
    }


def page(user_id: str, *, first: int = 20, after: str | None = None) -> dict[str, Any]:
    """One page of ``user_id``'s delivery log."""
    docs = delivery_store.log_records(
        user_id, first=first, after=decode_cursor(after) if after else None
    )
    preferences, _ = user_state(replica.get_users([user_id]).get(user_id))
    edges = [{"cursor": encode_cursor(d), "node": entry(d, preferences)} for d in docs[:first]]
    return {
        "edges": edges,
        "page_info": page_info(edges, len(docs) > first),
    }
