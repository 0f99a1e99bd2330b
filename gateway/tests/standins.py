"""Small in-test stand-ins for the internal services (gateway-logic tests only).

Each is a FastAPI app following the contract in ARCHITECTURE.md closely enough to
exercise the gateway: routes, JSON shapes, error bodies, bearer-token checks. The
end-to-end tests in ``tests/e2e`` run against the real services.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from fastapi import Depends, Request
from herald_common.app import admin_principal, create_app, current_principal
from herald_common.auth import Principal, TokenVerifier
from herald_common.errors import Conflict, NotFound


class Recorder:
    """Counts calls per route so tests can assert batching; optional latency per call.

    ``in_flight``/``max_in_flight`` count concurrent calls per caller (the
    ``authorization`` header), so tests can check the gateway's per-caller fairness.
    """

    def __init__(self, latency: float = 0.0) -> None:
        self.calls: Counter[str] = Counter()
        self.last: dict[str, Any] = {}
        self.latency = latency
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()

    def total(self) -> int:
        return sum(self.calls.values())


def _base(name: str, verifier: TokenVerifier, rec: Recorder):
    app = create_app(service=name, title=name)
    app.state.token_verifier = verifier

    @app.middleware("http")
    async def count(request: Request, call_next):
        route = f"{request.method} {request.url.path}"
        rec.calls[route] += 1
        rec.last[route] = {
            "params": dict(request.query_params),
            "authorization": request.headers.get("authorization"),
            "x-forwarded-for": request.headers.get("x-forwarded-for"),
        }
        caller = request.headers.get("authorization") or "anonymous"
        rec.in_flight[caller] += 1
        rec.max_in_flight[caller] = max(rec.max_in_flight[caller], rec.in_flight[caller])
        try:
            if rec.latency:
                await asyncio.sleep(rec.latency)
            return await call_next(request)
        finally:
            rec.in_flight[caller] -= 1

    return app


def user_json(user_id: str, prefs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": f"User {user_id}",
        "email": f"{user_id}@example.com",
        "roles": [],
        "preferences": {
            "promotions": True,
            "order_updates": True,
            "recommendations": True,
            "channels": ["in_app"],
            "quiet_hours": None,
            "timezone": "UTC",
            "max_promotions_per_day": None,
            **(prefs or {}),
        },
        "created_at": "2024-05-01T12:00:00+00:00",
    }


def users_app(verifier: TokenVerifier, rec: Recorder):
    app = _base("users", verifier, rec)
    prefs: dict[str, dict[str, Any]] = {}

    @app.post("/v1/auth/login")
    async def login(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("email") == "taken@example.com":
            raise Conflict("email already registered", field="email")
        return {
            "access_token": "a",
            "refresh_token": "r",
            "token_type": "Bearer",
            "expires_in": 900,
            "user": user_json("u1"),
        }

    @app.post("/v1/auth/register", status_code=201)
    async def register(body: dict[str, Any]) -> dict[str, Any]:
        rec.last["register_body"] = body
        if body.get("email") == "taken@example.com":
            raise Conflict("email already registered", field="email")
        return await login(body)

    @app.get("/v1/users/me")
    async def me(p: Principal = Depends(current_principal)) -> dict[str, Any]:
        return user_json(p.user_id, prefs.get(p.user_id))

    @app.patch("/v1/users/me/preferences")
    async def patch(body: dict[str, Any], p: Principal = Depends(current_principal)):
        rec.last["patch_body"] = body
        prefs.setdefault(p.user_id, {}).update(body)
        return user_json(p.user_id, prefs[p.user_id])

    @app.get("/v1/users")
    async def many(ids: str, _: Principal = Depends(admin_principal)) -> list[dict[str, Any]]:
        return [user_json(i) for i in ids.split(",") if not i.startswith("missing")]

    return app


def notifications_app(verifier: TokenVerifier, rec: Recorder):
    app = _base("notifications", verifier, rec)
    state = {"unread": 3}

    def note(i: int, user_id: str) -> dict[str, Any]:
        return {
            "id": f"n{i}",
            "user_id": user_id,
            "type": "promotion",
            "content": {"title": "Sale", "body": "Everything -20%"},
            "sent_at": "2024-05-01T12:00:00+00:00",
            "read": False,
            "read_at": None,
            "seen": False,
            "seen_at": None,
            "archived": False,
            "archived_at": None,
            "snoozed_until": None,
            "collapse_key": None,
            "source": "scheduler",
        }

    @app.get("/v1/notifications/unread-count")
    async def unread(_: Principal = Depends(current_principal)) -> dict[str, int]:
        return {"count": state["unread"]}

    @app.get("/v1/notifications")
    async def listing(
        first: int = 20, total: bool = True, p: Principal = Depends(current_principal)
    ):
        edges = [{"cursor": f"c{i}", "node": note(i, p.user_id)} for i in range(first)]
        return {
            "edges": edges,
            "page_info": {"has_next_page": True, "end_cursor": f"c{first - 1}"},
            "total_count": 42 if total else None,
        }

    @app.get("/v1/notifications/unseen-count")
    async def unseen(_: Principal = Depends(current_principal)) -> dict[str, int]:
        return {"count": state["unread"]}

    @app.post("/v1/notifications/read")
    async def read_many(body: dict[str, Any], _: Principal = Depends(current_principal)):
        return {"changed": len(body.get("ids") or [])}

    @app.post("/v1/notifications/seen")
    async def seen(body: dict[str, Any], _: Principal = Depends(current_principal)):
        ids = body.get("ids")
        return {"changed": state["unread"] if ids is None else len(ids)}

    @app.post("/v1/notifications/archive-read")
    async def archive_read(_: Principal = Depends(current_principal)) -> dict[str, int]:
        return {"changed": 0}

    @app.post("/v1/notifications/{nid}/{action}")
    async def change(nid: str, action: str, p: Principal = Depends(current_principal)):
        if nid == "missing" or action not in {"read", "archive", "unarchive", "snooze"}:
            raise NotFound("no such notification", field="id")
        return note(1, p.user_id)

    @app.delete("/v1/notifications/{nid}", status_code=204)
    async def delete(nid: str, _: Principal = Depends(current_principal)) -> None:
        if nid == "missing":
            raise NotFound("no such notification", field="id")

    @app.get("/v1/notifications/{nid}")
    async def one(nid: str, p: Principal = Depends(current_principal)):
        if nid == "missing":
            raise NotFound("no such notification", field="id")
        return note(1, p.user_id)

    @app.post("/v1/notifications/read-all")
    async def read_all(_: Principal = Depends(current_principal)) -> dict[str, int]:
        changed, state["unread"] = state["unread"], 0
        return {"changed": changed}

    @app.get("/v1/admin/dead-letters")
    async def dlq(queue: str | None = None, _: Principal = Depends(admin_principal)):
        return [{"queue": "notifications.requests", "count": 1, "messages": []}]

    @app.post("/v1/admin/dead-letters/{queue}/replay")
    async def replay(queue: str, limit: int = 100, _: Principal = Depends(admin_principal)):
        return {"replayed": min(limit, 1)}

    return app


PRODUCTS = {
    f"p{i}": {
        "id": f"p{i}",
        "name": f"Product {i}",
        "category": "laptops",
        "price": 10.0 * i,
        "popularity": 1.0 / i,
    }
    for i in range(1, 30)
}


def recommendations_app(verifier: TokenVerifier, rec: Recorder):
    app = _base("recommendations", verifier, rec)

    @app.get("/v1/products")
    async def products(ids: str, _: Principal = Depends(current_principal)):
        return [PRODUCTS[i] for i in ids.split(",") if i in PRODUCTS]

    @app.get("/v1/recommendations/me")
    async def mine(first: int = 10, p: Principal = Depends(current_principal)):
        items = [
            {
                "product_id": f"p{i}",
                "name": f"Product {i}",
                "category": "laptops",
                "price": 10.0 * i,
                "score": 1.0 / i,
                "explanation": "viewed 3 laptops this week",
            }
            for i in range(1, first + 1)
        ]
        return {
            "user_id": p.user_id,
            "model_version": "t",
            "generated_at": "2024-05-01T12:00:00+00:00",
            "items": items,
        }

    return app


def scheduler_app(verifier: TokenVerifier, rec: Recorder):
    app = _base("scheduler", verifier, rec)

    @app.get("/v1/orders/me")
    async def orders(first: int = 20, _: Principal = Depends(current_principal)):
        return [
            {
                "id": f"o{o}",
                "status": "shipped",
                "items": [
                    {"product_id": f"p{o * 3 + k + 1}", "name": "x", "quantity": 1, "price": 1.0}
                    for k in range(3)
                ],
                "total": 3.0,
                "created_at": "2024-05-01T12:00:00+00:00",
                "updated_at": "2024-05-02T12:00:00+00:00",
            }
            for o in range(min(first, 4))
        ]

    @app.post("/v1/campaigns/{name}/fire")
    async def fire(name: str, body: dict[str, Any], _: Principal = Depends(admin_principal)):
        if name == "nope":
            raise NotFound(f"no campaign {name!r}", field="name")
        return {
            "run_id": "run-1",
            "campaign": name,
            "type": "promotion",
            "dry_run": body.get("dry_run", False),
            "status": "succeeded" if body.get("dry_run") else "running",
            "audience_size": 2,
            "sent": 0,
            "suppressed": 0,
            "suppressed_reasons": {"opted_out": 0, "not_in_segment": 0},
            "failed": 0,
            "samples": [],
            "error": None,
            "started_at": "2024-05-01T12:00:00+00:00",
            "finished_at": "2024-05-01T12:00:01+00:00" if body.get("dry_run") else None,
        }

    @app.get("/v1/campaigns/runs")
    async def runs(_: Principal = Depends(admin_principal)):
        return []

    return app


MAKERS = {
    "users": users_app,
    "notifications": notifications_app,
    "recommendations": recommendations_app,
    "scheduler": scheduler_app,
}
