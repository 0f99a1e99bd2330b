"""How stored documents look outside (pure, no I/O): the API and real-time push shape of
a notification and of a delivery record, and the opaque keyset cursors of the pages.

A cursor is the URL-safe base64 of ``[time, id]`` (the page's sort key); new documents
are newer than every cursor, so paging never skips or repeats an item while new ones
arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from herald_common.errors import BadUserInput

from herald_notifications.builders import ms
from herald_notifications.reasons import reason_for


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_api(doc: dict[str, Any]) -> dict[str, Any]:
    """The API (and real-time push) shape of a stored notification."""
    return {
        "id": doc["_id"],
        "user_id": doc["user_id"],
        "type": doc["type"],
        "content": doc["content"],
        "sent_at": iso(doc["sent_at"]),
        "read": bool(doc.get("read")),
        "read_at": iso(doc.get("read_at")),
        "seen": bool(doc.get("seen")),
        "seen_at": iso(doc.get("seen_at")),
        "archived": bool(doc.get("archived")),
        "archived_at": iso(doc.get("archived_at")),
        "snoozed_until": iso(doc.get("snoozed_until")) if doc.get("snoozed") else None,
        "collapse_key": doc.get("collapse_key"),
        "source": doc["source"],
        "reason": reason_for(doc),
    }


def encode_pair(when: datetime, doc_id: str) -> str:
    """The cursor of a page's sort key ``(when, id)``."""
    raw = json.dumps([ms(when).isoformat(), doc_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_pair(cursor: str) -> tuple[datetime, str]:
    """``(when, id)`` of a cursor made by :func:`encode_pair`; 400 for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        when_text, doc_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(when_text)
        if when.tzinfo is None or not isinstance(doc_id, str):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput("not a cursor returned by this API", field="after") from exc
    return when, doc_id


def encode_cursor(doc: dict[str, Any]) -> str:
    """The inbox cursor of a notification: ``(sent_at, id)``."""
    return encode_pair(doc["sent_at"], doc["_id"])


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    return decode_pair(cursor)


def page_info(edges: list[dict[str, Any]], has_next_page: bool) -> dict[str, Any]:
    return {
        "has_next_page": has_next_page,
        "end_cursor": edges[-1]["cursor"] if edges else None,
    }


@dataclass
class Page:
    """One page of a user's inbox, as stored documents."""

    items: list[dict[str, Any]]
    has_next_page: bool
    total_count: int | None

    def to_api(self) -> dict[str, Any]:
        edges = [{"cursor": encode_cursor(d), "node": to_api(d)} for d in self.items]
        return {
            "edges": edges,
            "page_info": page_info(edges, self.has_next_page),
            "total_count": self.total_count,
        }


def record_to_api(doc: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a delivery record (``GET /v1/deliveries``)."""
    return {
        "idempotency_key": doc["idempotency_key"],
        "user_id": doc["user_id"],
        "type": doc["type"],
        "source": doc.get("source"),
        "outcome": doc["outcome"],
        "reason": doc["reason"],
        "at": iso(doc["at"]),
        "deliver_at": iso(doc.get("deliver_at")),
        "notification_id": doc.get("notification_id"),
        "history": [
            {
                "outcome": h.get("outcome"),
                "reason": h.get("reason"),
                "at": iso(h.get("at")),
                "deliver_at": iso(h.get("deliver_at")),
            }
            for h in doc.get("history") or []
        ],
    }
