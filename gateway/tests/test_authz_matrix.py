"""The authorization matrix of the GraphQL API, generated from the served schema.

Every root field of ``Query``, ``Mutation`` and ``Subscription`` must have an entry in
:data:`POLICY` (a new field without one fails :func:`test_every_root_field_has_a_policy`)
and is then called by every kind of caller:

* no token, and nine kinds of bad token — garbage, a tampered payload, ``alg: none``,
  HS256 signed with the public key, expired, revoked (deny-listed), a refresh token as
  bearer, another issuer, an embedded ``jwk`` header with the attacker's key;
* a user, and an admin.

Expected: ``public`` fields answer the same whoever calls (the gateway checks nothing);
``user`` fields refuse every bad or missing token with ``UNAUTHENTICATED`` and never
refuse a user or an admin; ``admin`` fields refuse the bad tokens with
``UNAUTHENTICATED``, a user with ``FORBIDDEN``, and admit an admin. Another user's
resources are the services' part: their route matrix is in each service's
``test_authz_routes.py``; ``tests/e2e/test_protection.py`` checks it through the gateway.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import graphql
import pytest
from herald_common.redis_client import user_channel
from herald_testing import eventually
from herald_testing.tokens import FORGED, forged_token
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from herald_gateway.engine import schema_sdl

from .conftest import ISSUER

pytestmark = pytest.mark.integration

PUBLIC, USER, ADMIN = "public", "user", "admin"

# Who may call each root field. A new field needs a line here.
POLICY: dict[str, str] = {
    "Query.me": USER,
    "Query.notifications": USER,
    "Query.unreadCount": USER,
    "Query.unseenCount": USER,
    "Query.notification": USER,
    "Query.recommendations": USER,
    "Query.orders": USER,
    "Query.products": USER,
    "Query.product": USER,
    "Query.myDeliveryLog": USER,
    "Query.user": ADMIN,
    "Query.campaigns": ADMIN,
    "Query.deadLetters": ADMIN,
    "Mutation.register": PUBLIC,
    "Mutation.login": PUBLIC,
    "Mutation.refreshToken": PUBLIC,
    "Mutation.logout": USER,
    "Mutation.updatePreferences": USER,
    "Mutation.updateProfile": USER,
    "Mutation.deleteAccount": USER,
    "Mutation.markNotificationRead": USER,
    "Mutation.markAllNotificationsRead": USER,
    "Mutation.markNotificationsRead": USER,
    "Mutation.markNotificationsSeen": USER,
    "Mutation.archiveNotification": USER,
    "Mutation.unarchiveNotification": USER,
    "Mutation.archiveAllRead": USER,
    "Mutation.snoozeNotification": USER,
    "Mutation.deleteNotification": USER,
    "Mutation.trackActivity": USER,
    "Mutation.fireCampaign": ADMIN,
    "Mutation.replayDeadLetters": ADMIN,
    "Subscription.notificationAdded": USER,
    "Subscription.inboxChanged": USER,
}

# Fields whose call would end the caller's session or account: called last per caller
# kind, with a token of their own.
DESTRUCTIVE = {"Mutation.logout", "Mutation.deleteAccount"}

BAD_TOKENS = FORGED
AUTH_CODES = {"UNAUTHENTICATED", "FORBIDDEN"}


def _schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(schema_sdl())


def root_fields() -> list[tuple[str, str, graphql.GraphQLField]]:
    schema = _schema()
    out = []
    for kind, root in (
        ("Query", schema.query_type),
        ("Mutation", schema.mutation_type),
        ("Subscription", schema.subscription_type),
    ):
        if root is None:
            continue
        for name, fld in root.fields.items():
            out.append((kind, name, fld))
    return out


# --- documents for each field ------------------------------------------------------------


def _literal(type_: graphql.GraphQLInputType) -> str:
    """A well-typed value of ``type_`` (required input fields only)."""
    if isinstance(type_, graphql.GraphQLNonNull):
        return _literal(type_.of_type)
    if isinstance(type_, graphql.GraphQLList):
        return f"[{_literal(type_.of_type)}]"
    if isinstance(type_, graphql.GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, graphql.GraphQLInputObjectType):
        parts = [
            f"{name}: {_literal(f.type)}"
            for name, f in type_.fields.items()
            if isinstance(f.type, graphql.GraphQLNonNull)
        ]
        return "{" + ", ".join(parts) + "}"
    name = getattr(type_, "name", "")
    if name == "Int":
        return "1"
    if name == "Float":
        return "1.5"
    if name == "Boolean":
        return "true"
    if name in ("ID",):
        return '"p-00001"'
    return _STRINGS.get(name, '"x-value"')


_STRINGS = {"String": '"2099-01-01T00:00:00+00:00"'}


def _selection(type_: graphql.GraphQLOutputType) -> str:
    named = graphql.get_named_type(type_)
    if isinstance(named, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType):
        return " { __typename }"
    return ""


def document(kind: str, name: str, fld: graphql.GraphQLField) -> str:
    args = [
        f"{arg_name}: {_literal(arg.type)}"
        for arg_name, arg in fld.args.items()
        if isinstance(arg.type, graphql.GraphQLNonNull)
    ]
    call = name + (f"({', '.join(args)})" if args else "")
    op = {"Query": "query", "Mutation": "mutation", "Subscription": "subscription"}[kind]
    return f"{op} {{ {call}{_selection(fld.type)} }}"


# --- callers -------------------------------------------------------------------------------


async def bearer(kind: str, redis: Any, user: str = "matrix-user") -> str | None:
    """The Authorization header value of a caller ``kind`` (the forged kinds come from
    :mod:`herald_testing.tokens`, shared with the services' route matrices)."""
    ttl = timedelta(minutes=10)
    if kind == "anonymous":
        return None
    if kind == "user":
        return f"Bearer {ISSUER.issue(user, ttl=ttl)[0]}"
    if kind == "admin":
        return f"Bearer {ISSUER.issue(user, roles=('admin',), ttl=ttl)[0]}"
    return f"Bearer {await forged_token(kind, ISSUER, redis, user)}"


def codes(body: dict[str, Any]) -> set[str]:
    return {e.get("extensions", {}).get("code") for e in body.get("errors", [])}


# --- the matrix -----------------------------------------------------------------------------


def test_every_root_field_has_a_policy() -> None:
    fields = {f"{kind}.{name}" for kind, name, _ in root_fields()}
    missing = sorted(fields - POLICY.keys())
    assert not missing, f"root fields without an authorization policy: {missing}"
    stale = sorted(POLICY.keys() - fields)
    assert not stale, f"policies of fields that no longer exist: {stale}"


def _operations(kind_filter: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (f"{kind}.{name}", document(kind, name, fld))
        for kind, name, fld in root_fields()
        if kind in kind_filter and f"{kind}.{name}" in POLICY
    ]


async def test_http_matrix(gateway_factory) -> None:
    """Every query and mutation, every caller kind → the expected refusal code."""
    gw = await gateway_factory(rate_limit_per_minute=0)
    redis = gw.gateway.redis
    assert gw.client is not None
    table: list[tuple[str, str, set[str]]] = []
    callers = ("anonymous", *BAD_TOKENS, "user", "admin")
    operations = sorted(_operations(("Query", "Mutation")), key=lambda o: o[0] in DESTRUCTIVE)
    for field_id, doc in operations:
        policy = POLICY[field_id]
        seen: dict[str, set[str]] = {}
        for caller in callers:
            header = await bearer(caller, redis, user=f"matrix-{caller}")
            headers = {"authorization": header} if header else {}
            response = await gw.client.post("/graphql", json={"query": doc}, headers=headers)
            assert response.status_code in (200, 400), (field_id, caller, response.text)
            got = codes(response.json())
            seen[caller] = got
            table.append((field_id, caller, got))
            assert None not in got, (field_id, caller, response.text)
            if policy == PUBLIC:
                assert "FORBIDDEN" not in got, (field_id, caller, got)
            elif caller in ("anonymous", *BAD_TOKENS):
                assert got == {"UNAUTHENTICATED"}, (field_id, caller, response.text)
            elif caller == "user" and policy == ADMIN:
                assert got == {"FORBIDDEN"}, (field_id, caller, response.text)
            else:
                assert not got & AUTH_CODES, (field_id, caller, response.text)
        if policy == PUBLIC:
            # The gateway checks nothing: who calls does not change the answer.
            assert len({frozenset(v) for v in seen.values()}) == 1, (field_id, seen)
    assert len(table) == len(operations) * len(callers)


async def _subscribe(gw: Any, header: str | None, doc: str, user: str) -> tuple[str, Any]:
    """``("closed", code)``, ``("error", codes)`` or ``("running", None)`` (subscribed to
    the user's channel)."""
    url = gw.url.replace("http", "ws") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        payload = {"authorization": header} if header else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed as exc:
            return "closed", exc.rcvd.code if exc.rcvd else None
        assert ack["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": doc}}))
        if header is None:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert message["type"] == "error", message
            return "error", {e["extensions"]["code"] for e in message["payload"]}

        async def subscribed() -> bool:
            counts = await gw.gateway.redis.pubsub_numsub(user_channel(user))
            return bool(counts and counts[0][1] > 0)

        await eventually(subscribed, timeout=10)
        return "running", None


async def test_subscription_matrix(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    for field_id, doc in _operations(("Subscription",)):
        assert POLICY[field_id] == USER
        assert await _subscribe(gw, None, doc, "") == ("error", {"UNAUTHENTICATED"})
        for kind in BAD_TOKENS:
            header = await bearer(kind, gw.gateway.redis)
            assert await _subscribe(gw, header, doc, "") == ("closed", 4403), (field_id, kind)
        for kind in ("user", "admin"):
            user = f"matrix-{kind}-{unique}-{field_id}"
            header = await bearer(kind, gw.gateway.redis, user=user)
            assert await _subscribe(gw, header, doc, user) == ("running", None), (field_id, kind)
