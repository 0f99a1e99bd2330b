"""Refusals through the real gateway: auth, ownership, admin fields, malformed requests."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def codes(response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


async def test_unauthenticated_cross_user_and_non_admin_refused(herald, gql) -> None:
    r = await gql.raw("{ me { id } unreadCount }")
    assert codes(r) == ["UNAUTHENTICATED", "UNAUTHENTICATED"]
    r = await gql.raw("{ me { id } }", token="not-a-token")
    assert codes(r) == ["UNAUTHENTICATED"]

    eve = await gql.register("Eve")
    mallory = await gql.register("Mallory")
    # Give Eve a notification: a purchase produces an order update.
    product = (await gql("{ recommendations(first: 1) { productId } }", token=eve["accessToken"]))[
        "recommendations"
    ][0]["productId"]
    await gql(
        "mutation($p: ID!) { trackActivity(events: [{kind: PURCHASE, productId: $p}]) }",
        {"p": product},
        token=eve["accessToken"],
    )
    from herald_testing import eventually

    async def eves_notification():
        data = await gql(
            "{ notifications(first: 1) { edges { node { id } } } }", token=eve["accessToken"]
        )
        edges = data["notifications"]["edges"]
        return edges[0]["node"]["id"] if edges else None

    note_id = await eventually(eves_notification, timeout=60, interval=1)
    # Mallory can neither see nor change it.
    r = await gql.raw(
        "query($id: ID!) { notification(id: $id) { id } }", {"id": note_id}, mallory["accessToken"]
    )
    assert r.json()["data"] == {"notification": None}
    r = await gql.raw(
        "mutation($id: ID!) { markNotificationRead(id: $id) { id } }",
        {"id": note_id},
        mallory["accessToken"],
    )
    assert codes(r) in (["NOT_FOUND"], ["FORBIDDEN"])
    # Admin-only fields are refused to a shopper, per field.
    r = await gql.raw(
        "query($id: ID!) { user(id: $id) { id } campaigns { runId } deadLetters { queue } }",
        {"id": eve["user"]["id"]},
        mallory["accessToken"],
    )
    assert codes(r) == ["FORBIDDEN"] * 3
    r = await gql.raw(
        'mutation { fireCampaign(name: "flash-sale", dryRun: true) { runId } }',
        token=mallory["accessToken"],
    )
    assert codes(r) == ["FORBIDDEN"]
    r = await gql.raw(
        'mutation { replayDeadLetters(queue: "notifications.requests") }',
        token=mallory["accessToken"],
    )
    assert codes(r) == ["FORBIDDEN"]
    # The admin may.
    from .conftest import ADMIN

    admin = await gql.login(*ADMIN)
    data = await gql(
        "query($id: ID!) { user(id: $id) { id email } deadLetters { queue service count } campaigns { campaign } }",
        {"id": eve["user"]["id"]},
        token=admin,
    )
    assert data["user"] == {"id": eve["user"]["id"], "email": eve["email"]}
    assert {q["service"] for q in data["deadLetters"]} <= {
        "users",
        "notifications",
        "recommendations",
        "scheduler",
    }
    dry = await gql(
        'mutation { fireCampaign(name: "flash-sale", dryRun: true) { dryRun audienceSize } }',
        token=admin,
    )
    assert dry["fireCampaign"]["dryRun"] is True


async def test_malformed_deep_and_oversized_requests(herald, gql) -> None:
    post = gql.client.post
    r = await post(
        herald.graphql, content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and codes(r) == ["BAD_USER_INPUT"]
    r = await post(herald.graphql, json={"query": "query { me { id }"})
    assert r.status_code == 400 and codes(r) == ["BAD_USER_INPUT"]
    r = await post(herald.graphql, json={"query": "{ me { passwordHash } }"})
    assert r.status_code == 400 and "passwordHash" in r.json()["errors"][0]["message"]
    deep = (
        "{ orders { items { product { id } } } " + "me { preferences { quietHours { start } } } }"
    )
    assert (await post(herald.graphql, json={"query": deep})).status_code == 200
    # The schema itself nests only a few levels; introspection's type references can
    # nest without end, so that is where a too-deep query shows up.
    levels = 20
    very_deep = (
        "{ __schema { types { fields { type "
        + "{ ofType " * levels
        + "{ name"
        + " }" * (levels + 5)
    )
    r = await post(herald.graphql, json={"query": very_deep})
    assert r.status_code == 400 and "deep" in r.json()["errors"][0]["message"], r.text
    assert codes(r) == ["BAD_USER_INPUT"]
    # Aliases repeat costly fields: each copy counts.
    page = "orders(first: 100) { items { product { id name category price } } }"
    costly = "{ " + " ".join(f"o{i}: {page}" for i in range(3)) + " }"
    r = await post(herald.graphql, json={"query": costly})
    assert r.status_code == 400 and "complexity" in r.json()["errors"][0]["message"]
    huge = {"query": "{ me { id } }", "variables": {"pad": "x" * (100 * 1024)}}
    r = await post(herald.graphql, json=huge)
    assert r.status_code == 413 and codes(r) == ["BAD_USER_INPUT"]


async def test_logout_closes_the_open_websocket_with_4401(herald, gql) -> None:
    """Logout through GraphQL with a subscribed socket open on the same token: the users
    service deny-lists and announces the token, the gateway closes that socket with 4401
    ``token revoked``; a socket of the same user on another session stays open. (How
    fast is measured by ``python -m bench.revocation``, not asserted here.)"""
    ann = await gql.register("Ann")
    other = await gql.login(ann["email"], ann["password"])
    subscribe = {
        "id": "s",
        "type": "subscribe",
        "payload": {"query": "subscription { notificationAdded { id } }"},
    }

    async def subscribed(token: str):
        ws = await connect(herald.ws_url, subprotocols=["graphql-transport-ws"])
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "connection_ack"
        await ws.send(json.dumps(subscribe))
        return ws

    async with await subscribed(ann["accessToken"]) as ws, await subscribed(other) as kept:
        data = await gql(
            "mutation($r: String) { logout(refreshToken: $r) }",
            {"r": ann["refreshToken"]},
            token=ann["accessToken"],
        )
        assert data == {"logout": True}
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # anything before the close (pings) is not the answer
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                assert message["type"] in ("ping", "pong"), message
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4401,
            "Unauthorized: token revoked",
        )
        # The other session of the same user keeps its socket.
        await kept.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(kept.recv(), 30)) == {"type": "pong"}
    r = await gql.raw("{ me { id } }", token=ann["accessToken"])
    assert codes(r) == ["UNAUTHENTICATED"]
