"""GraphQL over WebSocket on ``/graphql``: ``graphql-transport-ws`` and legacy ``graphql-ws``.

The protocol is chosen by the ``Sec-WebSocket-Protocol`` header. The caller's token
comes from the ``connection_init`` payload (``authorization``: ``Bearer <token>``, or
``token``/``accessToken``) or the upgrade request's ``Authorization`` header. Each
operation gets its own context (loaders) with the connection's identity, and passes
the same checks as over HTTP (shape, parsing, depth/complexity, rate limit).

A connection authenticated at ``connection_init`` lives only as long as its token: it
is closed with 4401 when the token's ``exp`` passes, at once when the token's revocation
is announced (:mod:`herald_gateway.revocations`), or when the periodic fallback re-check
(``websocket_token_recheck_seconds``; the Redis deny-list) finds it revoked.

A frame that is not a JSON object with a ``type`` (malformed, a binary frame, nested
too deeply for the decoder) closes the connection with 4400; a frame larger than
``max_body_bytes`` with 1009. Variables that fail the input checks only fail their
operation (an ``error`` message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from herald_common.auth import Principal
from herald_common.errors import Unauthenticated
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from herald_gateway.context import RequestContext, authenticate
from herald_gateway.engine import get_engine
from herald_gateway.errors import GraphQLFailure, count_errors, log_unexpected
from herald_gateway.gateway import Gateway
from herald_gateway.inputs import decode_json
from herald_gateway.revocations import TokenWatch
from herald_gateway.transport.operation import RequestRefused, answer, prepare

log = logging.getLogger(__name__)

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


def _token_of(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    for key in ("authorization", "Authorization", "token", "accessToken", "authToken"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value
    headers = payload.get("headers")
    if isinstance(headers, dict):
        return _token_of(headers)
    return None


def _rejection(message: str) -> str:
    """The close reason's tail for a token that no longer verifies."""
    for word in ("revoked", "expired"):
        if word in message:
            return f"token {word}"
    return "token rejected"


class _Session:
    """One WebSocket connection and its running operations."""

    def __init__(self, ws: WebSocket, gateway: Gateway, protocol: str) -> None:
        self.ws = ws
        self.gateway = gateway
        self.protocol = protocol
        self.legacy = protocol == LEGACY_WS
        self.base: RequestContext | None = None
        self.ops: dict[str, asyncio.Task[None]] = {}
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._token_watch: asyncio.Task[None] | None = None
        self._watch: TokenWatch | None = None

    # --- plumbing --------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        if self._closed:
            return
        async with self._send_lock:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.ws.send_text(json.dumps(message))

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.ws.close(code=code, reason=reason)

    def _caller(self) -> str:
        assert self.base is not None
        if self.base.principal:
            return f"user:{self.base.principal.user_id}"
        client = self.ws.client.host if self.ws.client else "unknown"
        return f"ip:{client}"

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            try:
                first = await asyncio.wait_for(
                    self.receive(), self.gateway.settings.websocket_ack_timeout_seconds
                )
            except TimeoutError:
                await self.close(4408, "Connection initialisation timeout")
                return
            await self.handle(first)
            while not self._closed:
                await self.handle(await self.receive())
        except WebSocketDisconnect:
            pass  # the client went away: clean up below
        finally:
            self._closed = True
            if self._token_watch is not None:
                self._token_watch.cancel()
            if self._watch is not None and self.gateway.revocations is not None:
                # Also when the watch task was cancelled before it first ran.
                self.gateway.revocations.unregister(self._watch)
            for task in list(self.ops.values()):
                task.cancel()
            if self.ops:
                await asyncio.gather(*self.ops.values(), return_exceptions=True)

    async def receive(self) -> str | None:
        """The next text frame; ``None`` for a binary frame (not part of the protocol)."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        return text if isinstance(text, str) else None

    async def handle(self, text: str | None) -> None:
        if text is None:
            await self.close(4400, "Invalid message received: send text frames")
            return
        if len(text) > self.gateway.settings.max_body_bytes:
            await self.close(1009, "Message too big")
            return
        try:
            message = decode_json(text, "message")
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise ValueError("not a message object")
        except GraphQLFailure:
            await self.close(4400, "Invalid message received: nested too deeply")
            return
        except ValueError:
            await self.close(4400, "Invalid message received")
            return
        kind = message["type"]
        if kind == "connection_init":
            await self.on_init(message.get("payload"))
        elif kind == "ping" and not self.legacy:
            pong: dict[str, Any] = {"type": "pong"}
            if message.get("payload") is not None:
                pong["payload"] = message["payload"]
            await self.send(pong)
        elif kind == "pong" and not self.legacy:
            return
        elif kind in ("subscribe", "start"):
            await self.on_subscribe(message)
        elif kind in ("complete", "stop"):
            task = self.ops.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        elif kind == "connection_terminate" and self.legacy:
            await self.close(1000, "terminated")
        else:
            await self.close(4400, f"Unknown message type {kind!r}")

    async def on_init(self, payload: Any) -> None:
        if self.base is not None:
            await self.close(4429, "Too many initialisation requests")
            return
        token = _token_of(payload) or self.ws.headers.get("authorization")
        ctx = await authenticate(self.gateway, token)
        if ctx.auth_error is not None and ctx.auth_error.code == "UNAUTHENTICATED":
            if self.legacy:
                await self.send({"type": "connection_error", "payload": ctx.auth_error.to_error()})
            await self.close(4403, "Forbidden")
            return
        # Other failures (e.g. the signing keys cannot be fetched) surface per operation.
        ctx.forwarded_for = self.ws.client.host if self.ws.client else None
        self.base = ctx
        if ctx.principal is not None and ctx.token is not None:
            # Registered before the ack: no announcement can slip between the two.
            revocations = self.gateway.revocations
            watch = revocations.register(ctx.principal.jti) if revocations is not None else None
            self._watch = watch
            self._token_watch = asyncio.create_task(
                self.watch_token(ctx.principal, ctx.token, watch)
            )
        await self.send({"type": "connection_ack"})
        if self.legacy:
            await self.send({"type": "ka"})

    # --- token lifetime --------------------------------------------------------------

    async def watch_token(
        self, principal: Principal, token: str, watch: TokenWatch | None = None
    ) -> None:
        """End the connection when its token expires or is revoked.

        Sleeps on the connection's own :class:`TokenWatch`: the process's revocation
        listener wakes it when the token id is announced (closed at once) or when
        announcements may have been missed (re-check now); otherwise it wakes for the
        periodic deny-list re-check and at ``exp``.
        """
        interval = self.gateway.settings.websocket_token_recheck_seconds
        revocations = self.gateway.revocations
        try:
            while not self._closed:
                remaining = principal.expires_at - time.time()
                if remaining <= 0:
                    await self.end_unauthorized("token expired")
                    return
                if watch is None:
                    await asyncio.sleep(min(interval, remaining))
                else:
                    with contextlib.suppress(TimeoutError):  # the periodic re-check is due
                        await asyncio.wait_for(watch.wake.wait(), min(interval, remaining))
                    watch.wake.clear()
                    if watch.revoked:
                        await self.end_unauthorized("token revoked")
                        return
                    watch.recheck = False
                if self._closed or time.time() >= principal.expires_at:
                    continue
                try:
                    await self.gateway.verifier.verify(token)
                except Unauthenticated as exc:
                    await self.end_unauthorized(_rejection(exc.message))
                    return
                except Exception:
                    # E.g. Redis is down: keep serving and try again at the next re-check.
                    log.warning("websocket token re-check failed", exc_info=True)
        finally:
            if watch is not None and revocations is not None:
                revocations.unregister(watch)

    async def end_unauthorized(self, why: str) -> None:
        """Close with 4401 so the client re-authenticates and reconnects."""
        if self._closed:
            return
        if self.legacy:
            error = {"message": why, "extensions": {"code": "UNAUTHENTICATED"}}
            await self.send({"type": "connection_error", "payload": error})
            for op_id in list(self.ops):
                await self.send({"type": "error", "id": op_id, "payload": error})
        await self.close(4401, f"Unauthorized: {why}")
        for task in list(self.ops.values()):
            task.cancel()

    async def on_subscribe(self, message: dict[str, Any]) -> None:
        if self.base is None:
            await self.close(4401, "Unauthorized")
            return
        op_id = message.get("id")
        if not isinstance(op_id, str) or not op_id:
            await self.close(4400, "Invalid message received: missing id")
            return
        if op_id in self.ops:
            await self.close(4409, f"Subscriber for {op_id} already exists")
            return
        self.ops[op_id] = asyncio.create_task(self.run_operation(op_id, message.get("payload")))

    # --- operations ------------------------------------------------------------------

    async def send_errors(self, op_id: str, errors: list[dict[str, Any]]) -> None:
        count_errors(errors)
        if self.legacy:
            # The legacy protocol carries one error object.
            await self.send({"type": "error", "id": op_id, "payload": errors[0]})
        else:
            await self.send({"type": "error", "id": op_id, "payload": errors})

    async def send_result(self, op_id: str, result: dict[str, Any]) -> None:
        count_errors(result.get("errors"))
        await self.send({"type": "data" if self.legacy else "next", "id": op_id, "payload": result})

    async def run_operation(self, op_id: str, payload: Any) -> None:
        assert self.base is not None
        ctx = RequestContext(
            gateway=self.gateway,
            principal=self.base.principal,
            token=self.base.token,
            auth_error=self.base.auth_error,
            forwarded_for=self.base.forwarded_for,
        )
        completed_by_client = False
        errored = False
        try:
            try:
                op = await prepare(
                    ctx,
                    payload,
                    caller=self._caller(),
                    allowed=("query", "mutation", "subscription"),
                )
            except RequestRefused as exc:
                errored = True
                await self.send_errors(op_id, exc.errors)
                return
            if op.kind != "subscription":
                try:
                    result = await answer(ctx, op)
                except RequestRefused as exc:
                    errored = True
                    await self.send_errors(op_id, exc.errors)
                    return
                await self.send_result(
                    op_id, json.loads(result) if isinstance(result, str) else result
                )
            else:
                try:
                    ctx.user()
                except GraphQLFailure as exc:
                    errored = True
                    await self.send_errors(op_id, [exc.to_error()])
                    return
                engine = await get_engine()
                try:
                    async for result in engine.subscribe(
                        op.query,
                        operation_name=op.operation_name,
                        context=ctx,
                        variables=op.variables,
                    ):
                        await self.send_result(op_id, result)
                except GraphQLFailure as exc:
                    # The stream ended for a reason the client is told (e.g. its token
                    # no longer verifies after the channel was lost and resumed).
                    errored = True
                    await self.send_errors(op_id, [exc.to_error()])
                    return
        except asyncio.CancelledError:
            completed_by_client = True
            raise
        except Exception as exc:  # noqa: BLE001 - logged, and the client gets an error
            log_unexpected(log, "websocket operation failed", exc, operation_id=op_id)
            errored = True
            await self.send_errors(
                op_id,
                [
                    {
                        "message": "internal error; it was logged",
                        "extensions": {"code": "UNAVAILABLE"},
                    }
                ],
            )
            return
        finally:
            if self.ops.get(op_id) is asyncio.current_task():
                self.ops.pop(op_id, None)
            if not (completed_by_client or errored or self._closed):
                await self.send({"type": "complete", "id": op_id})


async def graphql_websocket(ws: WebSocket, gateway: Gateway) -> None:
    """Accept with the protocol the client asked for and serve the connection."""
    offered = [p.strip() for p in ws.scope.get("subprotocols", [])]
    if TRANSPORT_WS in offered:
        protocol = TRANSPORT_WS
    elif LEGACY_WS in offered:
        protocol = LEGACY_WS
    else:
        await ws.accept()
        await ws.close(code=4406, reason="Subprotocol not acceptable: use graphql-transport-ws")
        return
    await ws.accept(subprotocol=protocol)
    await _Session(ws, gateway, protocol).run()
