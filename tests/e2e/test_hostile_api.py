"""The probe's hostile inputs against all of Herald running as processes (issue 16).

* every service's ``/openapi.json`` documents the error statuses it answers, and the
  answers given to direct calls (no token, unknown path, wrong method, bad body) are
  documented and carry the shared error body;
* the gateway answers the probe's documents as client mistakes, no variable ends up in
  any component's log, and a hostile alias query from one user leaves another user's
  plain query working.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICES = ("users", "notifications", "recommendations", "scheduler")
ERROR_STATUSES = {"400", "401", "403", "404", "405", "409", "429", "503"}
PASSWORD = "secret-E2e-Probe-Password-5150"
# One route per service that needs a bearer token, and its method.
GUARDED = {
    "users": ("GET", "/v1/users/me"),
    "notifications": ("GET", "/v1/notifications"),
    "recommendations": ("GET", "/v1/recommendations/me"),
    "scheduler": ("GET", "/v1/orders/me"),
}


def service_url(herald: Any, name: str) -> str:
    return f"http://127.0.0.1:{herald.env[f'HERALD_{name.upper()}_PORT']}"


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json().get("errors", [])]


async def test_every_service_documents_its_error_answers(herald) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for name in SERVICES:
            base = service_url(herald, name)
            document = (await client.get(f"{base}/openapi.json")).json()
            assert "ErrorBody" in document["components"]["schemas"], name
            operations = [
                (path, method, operation)
                for path, item in document["paths"].items()
                for method, operation in item.items()
            ]
            assert operations, name
            for path, method, operation in operations:
                responses = operation["responses"]
                assert ERROR_STATUSES <= responses.keys(), (name, method, path)
                assert "422" not in responses, (name, method, path)
                for status in ERROR_STATUSES:
                    schema = responses[status]["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith("/ErrorBody"), (name, path, status)

            # What the probe saw answered directly: each status is documented and typed.
            method, path = GUARDED[name]
            answers = {
                "401": await client.request(method, f"{base}{path}"),
                "404": await client.get(f"{base}/v1/no-such-route"),
                "405": await client.request("PUT", f"{base}{path}"),
            }
            if name == "users":
                answers["400"] = await client.post(
                    f"{base}/v1/auth/login",
                    content=b"[[[",
                    headers={"content-type": "application/json"},
                )
            for status, response in answers.items():
                assert str(response.status_code) == status, (name, status, response.text)
                error = response.json()["error"]
                assert isinstance(error["code"], str) and isinstance(error["message"], str)


async def test_probe_documents_through_the_real_gateway(herald, gql) -> None:
    nested = "[" * 1100 + "]" * 1100
    deep = '{"query": "{ unreadCount }", "variables": {"v": ' + nested + "}}"
    r = await gql.client.post(
        herald.graphql, content=deep.encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and codes(r) == ["BAD_USER_INPUT"]

    login = (
        'mutation($p: String!) { login(email: "nobody@example.com", password: $p) { accessToken } }'
    )
    for variables in [
        {"p": [PASSWORD]},
        {"p": PASSWORD},
        {"p": {"deep": [PASSWORD]}},
    ]:
        r = await gql.raw(login, variables)
        assert r.status_code in (200, 400) and codes(r), r.text
        assert set(codes(r)) <= {"BAD_USER_INPUT", "UNAUTHENTICATED", "RATE_LIMITED"}
    for raw in ['{"p": NaN}', '{"p": 1e400}', '{"p": "\\ud800"}']:
        body = '{"query": ' + json.dumps(login) + ', "variables": ' + raw + "}"
        r = await gql.client.post(
            herald.graphql, content=body.encode(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and codes(r) == ["BAD_USER_INPUT"], r.text

    many_logins = (
        "mutation { "
        + " ".join(
            f'l{i}: login(email: "x@example.com", password: "{PASSWORD}") {{ accessToken }}'
            for i in range(50)
        )
        + " }"
    )
    r = await gql.raw(many_logins)
    assert r.status_code == 400 and codes(r) == ["BAD_USER_INPUT"]

    ann = await gql.register("Ann")
    aliases = "{ " + " ".join(f"a{i}: unreadCount" for i in range(150)) + " }"
    data = await gql(aliases, token=ann["accessToken"])
    assert len(set(data.values())) == 1

    # Every token this run is issued, used as the flows use them: register, a refresh
    # rotation, logout with the new pair, then the revoked access token, the rotated-away
    # refresh token and the logged-out refresh token sent again (all refused).
    tokens = [ann["accessToken"], ann["refreshToken"]]
    refresh = (
        "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken refreshToken } }"
    )
    rotated = (await gql(refresh, {"r": ann["refreshToken"]}))["refreshToken"]
    tokens += [rotated["accessToken"], rotated["refreshToken"]]
    await gql(
        "mutation($r: String) { logout(refreshToken: $r) }",
        {"r": rotated["refreshToken"]},
        token=rotated["accessToken"],
    )
    r = await gql.raw("{ me { id } }", token=rotated["accessToken"])
    assert codes(r) == ["UNAUTHENTICATED"], r.text
    for used in (ann["refreshToken"], rotated["refreshToken"]):
        r = await gql.raw(refresh, {"r": used})
        assert codes(r) == ["UNAUTHENTICATED"], r.text
    assert len(set(tokens)) == 4

    # Let the components flush their logs, then grep every one for the password and
    # for each token (whole, and its signature: a token cut short in a log still leaks).
    await asyncio.sleep(1)
    logs = sorted((herald.run_dir / "logs").glob("*.log"))
    assert logs
    secrets = {"password": PASSWORD}
    for n, token in enumerate(tokens):
        secrets[f"token {n}"] = token
        secrets[f"token {n} signature"] = token.rsplit(".", 1)[1]
    for log in logs:
        text = log.read_text(errors="replace")
        for name, secret in secrets.items():
            assert secret not in text, f"{name} in {log.name}"


async def test_a_hostile_alias_query_leaves_another_users_query_working(herald, gql) -> None:
    """While one user floods the gateway with budget-sized alias documents, another
    user's queries keep succeeding with their own data (how much slower they get is
    measured by ``python -m bench.hostile``, not asserted here)."""
    mallory, bob = await gql.register("Mallory"), await gql.register("Bob")
    plain = "{ unreadCount notifications(first: 5) { totalCount } }"

    async def send(query: str, token: str) -> Any:
        r = await gql.raw(query, token=token)
        assert r.status_code in (200, 400), r.text
        return r

    hostile = (
        "{ "
        + " ".join(
            f"n{i}: notifications(first: {i + 1}) {{ totalCount edges {{ node {{ id }} }} }}"
            for i in range(20)
        )
        + " }"
    )
    attack = [asyncio.create_task(send(hostile, mallory["accessToken"])) for _ in range(8)]
    await asyncio.sleep(0.05)
    for _ in range(5):
        r = await send(plain, bob["accessToken"])
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        assert r.json()["data"]["notifications"]["totalCount"] >= 0
    await asyncio.gather(*attack)
