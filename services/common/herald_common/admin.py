"""Dead-letter administration, mounted by every service for its own queues.

``GET /v1/admin/dead-letters`` lists each queue's DLQ depth and the first messages;
``POST /v1/admin/dead-letters/{queue}/replay?limit=N`` moves them back. Admin only.
The gateway's ``deadLetters`` / ``replayDeadLetters`` call these; ``herald-dlq`` is
the command-line equivalent.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from herald_common.app import admin_principal
from herald_common.auth import Principal
from herald_common.errors import NotFound, Unavailable
from herald_common.messaging import Broker


def dead_letter_router(queues: list[str]) -> APIRouter:
    """Routes over ``queues`` (the service's consumer queues)."""
    router = APIRouter(prefix="/v1/admin/dead-letters", tags=["admin"])

    def _broker(request: Request) -> Broker:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is None or runtime.broker is None or not runtime.broker.connected:
            raise Unavailable("message broker not connected")
        broker: Broker = runtime.broker
        return broker

    def _known(queue: str) -> str:
        if queue not in queues:
            raise NotFound(f"unknown queue {queue!r}; this service has {queues}", field="queue")
        return queue

    @router.get("")
    async def list_dead_letters(
        request: Request,
        queue: str | None = None,
        limit: int = Query(default=20, ge=0, le=500),
        _: Principal = Depends(admin_principal),
    ) -> list[dict[str, Any]]:
        """Each queue's dead letters: depth and up to ``limit`` messages (not removed)."""
        broker = _broker(request)
        selected = [_known(queue)] if queue else queues
        result = []
        for name in selected:
            messages = await broker.dead_letters(name, limit=limit) if limit else []
            result.append(
                {
                    "queue": name,
                    "count": await broker.queue_depth(f"{name}.dlq"),
                    "messages": [asdict(m) for m in messages],
                }
            )
        return result

    @router.post("/{queue}/replay")
    async def replay(
        request: Request,
        queue: str,
        limit: int = Query(default=100, ge=1, le=10_000),
        _: Principal = Depends(admin_principal),
    ) -> dict[str, int]:
        """Move up to ``limit`` dead letters back into ``queue``; returns how many."""
        replayed = await _broker(request).replay_dead_letters(_known(queue), limit=limit)
        return {"replayed": replayed}

    return router
