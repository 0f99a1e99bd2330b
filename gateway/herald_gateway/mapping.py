"""snake_case service JSON → camelCase GraphQL objects, and GraphQL input → service JSON.

The resolvers return plain dicts shaped like the GraphQL types; Tartiflette's default
resolver reads the fields from them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald_gateway.reasons import notification_reason


def _enum(value: Any) -> str | None:
    return None if value is None else str(value).upper()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def preferences(p: dict[str, Any] | None) -> dict[str, Any]:
    p = p or {}
    quiet = p.get("quiet_hours")
    return {
        "promotions": bool(p.get("promotions", True)),
        "orderUpdates": bool(p.get("order_updates", True)),
        "recommendations": bool(p.get("recommendations", True)),
        "channels": list(p.get("channels") or ["in_app"]),
        "quietHours": {"start": quiet["start"], "end": quiet["end"]} if quiet else None,
        "timezone": p.get("timezone") or "UTC",
        "maxPromotionsPerDay": p.get("max_promotions_per_day"),
        "digest": digest(p.get("digest")),
    }


def digest(d: dict[str, Any] | None) -> dict[str, Any]:
    d = d or {}
    return {
        "frequency": _enum(d.get("frequency") or "off"),
        "at": d.get("at"),
        "types": [_enum(t) for t in d.get("types") or ["promotion", "recommendation"]],
    }


def user(u: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(u["id"]),
        "name": u.get("name", ""),
        "email": u.get("email", ""),
        "roles": list(u.get("roles") or []),
        "preferences": preferences(u.get("preferences")),
        "createdAt": _text(u.get("created_at")) or "",
    }


def auth_payload(tokens: dict[str, Any]) -> dict[str, Any]:
    return {
        "accessToken": tokens["access_token"],
        "refreshToken": tokens["refresh_token"],
        "expiresIn": int(tokens.get("expires_in") or 0),
        "user": user(tokens["user"]),
    }


def notification(n: dict[str, Any]) -> dict[str, Any]:
    """A service notification (or a real-time message) as the GraphQL type.

    Real-time messages may come camelCase already; both spellings are read.
    """

    def pick(snake: str, camel: str, default: Any = None) -> Any:
        if snake in n:
            return n[snake]
        return n.get(camel, default)

    return {
        "id": str(pick("id", "id") or pick("notification_id", "notificationId")),
        "userId": str(pick("user_id", "userId")),
        "type": _enum(n.get("type")),
        "content": n.get("content"),
        "sentAt": _text(pick("sent_at", "sentAt")) or "",
        "read": bool(n.get("read", False)),
        "readAt": _text(pick("read_at", "readAt")),
        "seen": bool(n.get("seen", False)),
        "seenAt": _text(pick("seen_at", "seenAt")),
        "archived": bool(n.get("archived", False)),
        "archivedAt": _text(pick("archived_at", "archivedAt")),
        "snoozedUntil": _text(pick("snoozed_until", "snoozedUntil")),
        "collapseKey": pick("collapse_key", "collapseKey"),
        "source": n.get("source"),
        "reason": notification_reason(n),
    }


def inbox_change(message: dict[str, Any]) -> dict[str, Any]:
    """An ``inbox_changed`` message of the user's channel as the GraphQL type."""
    return {
        "kind": _enum(message["kind"]),
        "ids": [str(i) for i in message["ids"]],
        "unreadCount": int(message["unread_count"]),
        "unseenCount": int(message["unseen_count"]),
    }


def connection(page: dict[str, Any]) -> dict[str, Any]:
    info = page.get("page_info") or {}
    return {
        "edges": [
            {"cursor": str(e["cursor"]), "node": notification(e["node"])}
            for e in page.get("edges") or []
        ],
        "pageInfo": {
            "hasNextPage": bool(info.get("has_next_page", False)),
            "endCursor": info.get("end_cursor"),
        },
        "totalCount": int(page.get("total_count") or 0),
    }


def recommendation(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "productId": str(item["product_id"]),
        "name": item.get("name", ""),
        "category": item.get("category", ""),
        "score": float(item.get("score") or 0.0),
        "explanation": item.get("explanation") or "",
        "price": item.get("price"),
    }


def product(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(p["id"]),
        "name": p.get("name", ""),
        "category": p.get("category", ""),
        "price": float(p.get("price") or 0.0),
        "popularity": p.get("popularity"),
    }


def order(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(o["id"]),
        "status": _enum(o.get("status")),
        "items": [
            {
                "productId": str(i["product_id"]),
                "name": i.get("name", ""),
                "quantity": int(i.get("quantity") or 1),
                "price": float(i.get("price") or 0.0),
            }
            for i in o.get("items") or []
        ],
        "total": float(o.get("total") or 0.0),
        "updatedAt": _text(o.get("updated_at")) or "",
        "createdAt": _text(o.get("created_at")),
    }


def campaign_run(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "runId": str(r.get("run_id") or r.get("id")),
        "campaign": r.get("campaign", ""),
        "type": _enum(r.get("type")),
        "dryRun": bool(r.get("dry_run", False)),
        "status": str(r.get("status", "")),
        "audienceSize": int(r.get("audience_size") or 0),
        "sent": int(r.get("sent") or 0),
        "suppressed": int(r.get("suppressed") or 0),
        "failed": int(r.get("failed") or 0),
        "samples": r.get("samples"),
        "startedAt": _text(r.get("started_at")),
        "finishedAt": _text(r.get("finished_at")),
    }


def dead_letter_queue(q: dict[str, Any], service: str) -> dict[str, Any]:
    return {
        "queue": q["queue"],
        "service": service,
        "count": int(q.get("count") or 0),
        "messages": [
            {
                "messageId": m.get("message_id"),
                "type": m.get("type"),
                "routingKey": m.get("routing_key"),
                "error": m.get("error"),
                "attempts": int(m.get("attempts") or 0),
                "failedAt": m.get("failed_at"),
                "body": m.get("body"),
            }
            for m in q.get("messages") or []
        ],
    }


_PREF_FIELDS = {
    "promotions": "promotions",
    "orderUpdates": "order_updates",
    "recommendations": "recommendations",
    "channels": "channels",
    "quietHours": "quiet_hours",
    "timezone": "timezone",
    "maxPromotionsPerDay": "max_promotions_per_day",
    "digest": "digest",
}


def preferences_patch(data: dict[str, Any]) -> dict[str, Any]:
    """GraphQL ``PreferencesInput`` → the users service's partial preferences body.

    Only the fields the caller sent are included, so an explicit ``quietHours: null``
    clears them while an omitted field stays unchanged.
    """
    patch: dict[str, Any] = {}
    for name, wire in _PREF_FIELDS.items():
        if name in data:
            value = data[name]
            if name == "quietHours" and value is not None:
                value = {"start": value["start"], "end": value["end"]}
            if name == "digest" and value is not None:
                value = {
                    "frequency": str(value["frequency"]).lower(),
                    **({"at": value["at"]} if "at" in value else {}),
                    **(
                        {"types": [str(t).lower() for t in value["types"]]}
                        if value.get("types") is not None
                        else {}
                    ),
                }
            patch[wire] = value
    return patch
