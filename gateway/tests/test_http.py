"""HTTP transport: refusals of client mistakes, limits, auth, error codes, partial data."""

from __future__ import annotations

import pytest
from herald_common.redis_client import revoked_key

from .conftest import ISSUER, token

pytestmark = pytest.mark.integration

ME = "{ me { id name email preferences { promotions channels timezone quietHours { start } } } }"


def codes(body: dict) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_malformed_requests_are_4xx_with_codes(gateway_factory) -> None:
    gw = await gateway_factory()
    c = gw.client
    r = await c.post("/graphql", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]
    assert "malformed JSON" in r.json()["errors"][0]["message"]

    r = await c.post("/graphql", json=[{"query": "{ me { id } }"}])
    assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]

    r = await c.post("/graphql", json={"query": "{ me { id "})
    assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]
    assert "syntax error" in r.json()["errors"][0]["message"]

    r = await c.post("/graphql", json={"query": "{ me { shoeSize } }"})
    assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]
    assert "shoeSize" in r.json()["errors"][0]["message"]

    r = await c.post("/graphql", json={"query": "{ me { id } }", "variables": [1]})
    assert r.status_code == 400

    r = await c.post("/graphql", content=b"query", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and codes(r.json()) == ["BAD_USER_INPUT"]

    big = "{ me { id } }" + " " * (70 * 1024)
    r = await c.post("/graphql", json={"query": big})
    assert r.status_code == 413 and codes(r.json()) == ["BAD_USER_INPUT"]

    r = await c.get("/graphql", params={"query": "mutation { logout }"})
    assert r.status_code == 405

    r = await c.post("/graphql", json={"query": "subscription { notificationAdded { id } }"})
    assert r.status_code == 400 and "WebSocket" in r.json()["errors"][0]["message"]


async def test_depth_and_complexity_limits(gateway_factory) -> None:
    gw = await gateway_factory(max_query_depth=3, max_query_complexity=300)
    deep = "{ me { preferences { timezone } } }"  # depth 3: allowed
    r = await gw.gql(deep)
    assert r.status_code == 200, r.text
    too_deep = "query { me { ...P } } fragment P on User { preferences { quietHours { start } } }"
    r = await gw.gql(too_deep)
    assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]
    assert "deep" in r.json()["errors"][0]["message"]

    costly = "query($n: Int) { notifications(first: $n) { edges { node { id content } } } }"
    gw = await gateway_factory(max_query_complexity=300)
    r = await gw.gql(costly, {"n": 100})
    assert r.status_code == 400 and "complexity" in r.json()["errors"][0]["message"]
    r = await gw.gql(costly, {"n": 5})
    assert r.status_code == 200
    assert len(r.json()["data"]["notifications"]["edges"]) == 5

    # GraphiQL's introspection query is deeper than the limit but allowed.
    intro = (
        "{ __schema { types { name fields { type { ofType { ofType { ofType { name } } } } } } } }"
    )
    r = await gw.gql(intro)
    assert r.status_code == 200 and r.json()["data"]["__schema"]["types"]


async def test_authentication_and_admin_fields(gateway_factory) -> None:
    gw = await gateway_factory()
    r = await gw.gql(ME, user=None)
    assert r.status_code == 200 and codes(r.json()) == ["UNAUTHENTICATED"]
    assert r.json()["data"] == {"me": None}

    r = await gw.gql(ME, bearer="Bearer not-a-jwt")
    assert codes(r.json()) == ["UNAUTHENTICATED"]

    # A token signed by another key is refused.
    from herald_common.auth import TokenIssuer, generate_private_key_pem

    other = TokenIssuer(generate_private_key_pem(), issuer="herald-users", audience="herald")
    forged, _ = other.issue("u1", roles=["admin"], ttl=__import__("datetime").timedelta(minutes=5))
    r = await gw.gql(ME, bearer=f"Bearer {forged}")
    assert codes(r.json()) == ["UNAUTHENTICATED"]

    # A revoked token is refused.
    revoked, claims = ISSUER.issue("u1", ttl=__import__("datetime").timedelta(minutes=5))
    await gw.gateway.redis.set(revoked_key(claims["jti"]), "1", ex=60)
    r = await gw.gql(ME, bearer=f"Bearer {revoked}")
    assert codes(r.json()) == ["UNAUTHENTICATED"] and "revoked" in r.text

    r = await gw.gql(ME)
    assert r.json()["data"]["me"]["id"] == "u1" and "errors" not in r.json()
    # The caller's token is forwarded, never a gateway identity.
    assert gw.recorders["users"].last["GET /v1/users/me"]["authorization"].startswith("Bearer ")

    admin_q = '{ user(id: "u2") { id email } campaigns { runId } }'
    r = await gw.gql(admin_q)
    assert codes(r.json()) == ["FORBIDDEN", "FORBIDDEN"]
    r = await gw.gql(admin_q, roles=("admin",))
    assert r.json() == {"data": {"user": {"id": "u2", "email": "u2@example.com"}, "campaigns": []}}

    r = await gw.gql(
        'mutation { fireCampaign(name: "spring", dryRun: true) { runId dryRun sent } }'
    )
    assert codes(r.json()) == ["FORBIDDEN"] and r.json()["data"] is None
    r = await gw.gql(
        'mutation { fireCampaign(name: "spring", dryRun: true) { runId dryRun sent type } }',
        roles=("admin",),
    )
    assert r.json()["data"]["fireCampaign"] == {
        "runId": "run-1",
        "dryRun": True,
        "sent": 0,
        "type": "PROMOTION",
    }
    r = await gw.gql('mutation { fireCampaign(name: "nope") { runId } }', roles=("admin",))
    assert codes(r.json()) == ["NOT_FOUND"]


async def test_service_errors_map_to_codes(gateway_factory) -> None:
    gw = await gateway_factory()
    register = (
        """mutation($in: RegisterInput!) { register(input: $in) { accessToken user { id } } }"""
    )
    r = await gw.gql(
        register,
        {"in": {"name": "A", "email": "taken@example.com", "password": "Secret-pass-1"}},
        user=None,
    )
    body = r.json()
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "email"
    assert "already registered" in body["errors"][0]["message"]

    r = await gw.gql(
        register,
        {
            "in": {
                "name": "A",
                "email": "a@example.com",
                "password": "Secret-pass-1",
                "preferences": {
                    "promotions": False,
                    "quietHours": {"start": "22:00", "end": "07:00"},
                },
            }
        },
        user=None,
    )
    assert r.json()["data"]["register"]["accessToken"] == "a"
    assert gw.recorders["users"].last["register_body"]["preferences"] == {
        "promotions": False,
        "quiet_hours": {"start": "22:00", "end": "07:00"},
    }

    r = await gw.gql('{ notification(id: "missing") { id } }')
    assert r.json() == {"data": {"notification": None}}


async def test_service_down_gives_unavailable_for_its_fields_only(gateway_factory) -> None:
    gw = await gateway_factory(down={"recommendations"})
    r = await gw.gql("{ me { id } unreadCount recommendations { productId } }")
    body = r.json()
    assert r.status_code == 200
    assert body["data"] == {"me": {"id": "u1"}, "unreadCount": 3, "recommendations": None}
    assert codes(body) == ["UNAVAILABLE"]
    assert body["errors"][0]["path"] == ["recommendations"]
    assert body["errors"][0]["extensions"]["service"] == "recommendations"


async def test_rate_limit(gateway_factory) -> None:
    gw = await gateway_factory(rate_limit_per_minute=3)
    statuses = [(await gw.gql("{ unreadCount }", user="rl")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = await gw.gql("{ unreadCount }", user="rl")
    assert codes(r.json()) == ["RATE_LIMITED"] and int(r.headers["retry-after"]) >= 1
    # Another caller has their own budget.
    assert (await gw.gql("{ unreadCount }", user="other")).status_code == 200


async def test_graphiql_and_get_queries(gateway_factory) -> None:
    gw = await gateway_factory()
    r = await gw.client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()
    r = await gw.client.get(
        "/graphql",
        params={
            "query": "query Q($n: Int) { recommendations(first: $n) { productId } }",
            "variables": '{"n": 2}',
        },
        headers={"authorization": f"Bearer {token()}"},
    )
    assert r.json() == {"data": {"recommendations": [{"productId": "p1"}, {"productId": "p2"}]}}
    r = await gw.client.get("/graphql")
    assert r.status_code == 400
    r = await gw.client.get("/graphql/schema.graphql")
    assert "notificationAdded: Notification!" in r.text
    assert (await gw.client.get("/readyz")).status_code == 200


async def test_lists_are_batched_not_n_plus_one(gateway_factory) -> None:
    gw = await gateway_factory()
    r = await gw.gql("{ orders { id status items { productId product { name price } } } }")
    orders = r.json()["data"]["orders"]
    assert len(orders) == 4 and orders[0]["status"] == "SHIPPED"
    assert orders[1]["items"][0]["product"] == {"name": "Product 4", "price": 40.0}
    # 12 items, one catalog call.
    assert gw.recorders["recommendations"].calls["GET /v1/products"] == 1

    r = await gw.gql(
        '{ a: user(id: "u2") { id } b: user(id: "u3") { id } c: user(id: "missing1") { id } }',
        roles=("admin",),
    )
    assert r.json()["data"] == {"a": {"id": "u2"}, "b": {"id": "u3"}, "c": None}
    assert gw.recorders["users"].calls["GET /v1/users"] == 1


async def test_admin_dead_letters_route_by_queue_prefix(gateway_factory) -> None:
    gw = await gateway_factory()
    r = await gw.gql("{ deadLetters { queue service count } }", roles=("admin",))
    # Stand-ins without the admin route answer 404: no queues from them.
    assert r.json()["data"]["deadLetters"] == [
        {"queue": "notifications.requests", "service": "notifications", "count": 1}
    ]
    r = await gw.gql(
        'mutation { replayDeadLetters(queue: "notifications.requests", limit: 5) }',
        roles=("admin",),
    )
    assert r.json()["data"] == {"replayDeadLetters": 1}
    r = await gw.gql('mutation { replayDeadLetters(queue: "payments.x") }', roles=("admin",))
    assert codes(r.json()) == ["BAD_USER_INPUT"]
    r = await gw.gql('mutation { replayDeadLetters(queue: "notifications.requests") }')
    assert codes(r.json()) == ["FORBIDDEN"]


async def test_page_size_validated(gateway_factory) -> None:
    gw = await gateway_factory()
    r = await gw.gql("{ notifications(first: 0) { totalCount } }")
    assert codes(r.json()) == ["BAD_USER_INPUT"]
    assert r.json()["errors"][0]["extensions"]["field"] == "first"
    r = await gw.gql(
        "{ notifications(first: 2, type: PROMOTION, unreadOnly: true) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { type content } } } }"
    )
    data = r.json()["data"]["notifications"]
    assert data["totalCount"] == 42 and data["pageInfo"] == {"hasNextPage": True, "endCursor": "c1"}
    assert data["edges"][0]["node"] == {
        "type": "PROMOTION",
        "content": {"title": "Sale", "body": "Everything -20%"},
    }
    params = gw.recorders["notifications"].last["GET /v1/notifications"]["params"]
    assert params == {"first": "2", "unread_only": "true", "type": "promotion"}
