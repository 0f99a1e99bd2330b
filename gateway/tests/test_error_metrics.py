"""herald_gateway_graphql_errors_total{code}: every error a client is sent, counted by
its code, over HTTP (refusals and execution errors) and WebSocket alike."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect

pytestmark = pytest.mark.integration

SUB = "subscription { notificationAdded { id } }"


def errors_of(code: str) -> float:
    return REGISTRY.get_sample_value("herald_gateway_graphql_errors_total", {"code": code}) or 0.0


async def test_http_and_websocket_errors_are_counted_by_code(gateway_factory) -> None:
    gw = await gateway_factory()
    bad, unauth = errors_of("BAD_USER_INPUT"), errors_of("UNAUTHENTICATED")
    # A refused request (malformed JSON) and a refused query (unknown field).
    r = await gw.client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    r = await gw.client.post("/graphql", json={"query": "{ me { shoeSize } }"})
    assert r.status_code == 400
    assert errors_of("BAD_USER_INPUT") - bad == 2
    # An execution error: me without a token.
    r = await gw.client.post("/graphql", json={"query": "{ me { id } }"})
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert errors_of("UNAUTHENTICATED") - unauth == 1
    # A successful answer counts nothing.
    before = {c: errors_of(c) for c in ("BAD_USER_INPUT", "UNAUTHENTICATED", "NONE")}
    r = await gw.client.post("/graphql", json={"query": "{ __typename }"})
    assert r.status_code == 200 and "errors" not in r.json()
    assert {c: errors_of(c) for c in before} == before
    # Over WebSocket: an anonymous subscription is refused with UNAUTHENTICATED.
    url = gw.url.replace("http", "ws") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUB}}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error"
        assert err["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert errors_of("UNAUTHENTICATED") - unauth == 2


async def test_the_counter_is_on_the_metrics_endpoint(gateway_factory) -> None:
    gw = await gateway_factory()
    await gw.client.post("/graphql", json={"query": "{ me { id } }"})
    r = await gw.client.get("/metrics")
    assert r.status_code == 200
    assert 'herald_gateway_graphql_errors_total{code="UNAUTHENTICATED"}' in r.text
