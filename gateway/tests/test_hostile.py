"""Hostile input: the probe's inputs, reproduced exactly, each answered as a client mistake.

Each test names the hole it closes (issue 16): deeply nested JSON, wrong-typed and
unencodable variables, secrets in logs, alias amplification, and documents that must
never reach a service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .conftest import token

pytestmark = pytest.mark.integration

# The probe: about 1,100 levels of `[` in `variables`.
PROBE_DEPTH = 1100
NESTED = "[" * PROBE_DEPTH + "]" * PROBE_DEPTH
DEEP_BODY = '{"query": "{ unreadCount }", "variables": {"v": ' + NESTED + "}}"
LOGIN = 'mutation($p: String!) { login(email: "ann@example.com", password: $p) { accessToken } }'
FIRST = "query($n: Int) { notifications(first: $n) { totalCount } }"
PASSWORD = "secret-Probe-Password-4711"


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def service_calls(gw: Any) -> int:
    return sum(r.total() for r in gw.recorders.values())


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)
    }
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return status, headers, body


async def _exchange(
    writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    host: str,
    request_line: str,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    head = (
        f"{request_line} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {token()}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    return await _read_response(reader)


async def test_deeply_nested_variables_are_bad_input_and_keep_the_connection(
    gateway_factory,
) -> None:
    """Hole 1 over HTTP: POST body and GET ``variables``, on one keep-alive connection."""
    gw = await gateway_factory()
    url = urlsplit(gw.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        get = (
            "GET /graphql?query="
            + quote("{ unreadCount }")
            + "&variables="
            + quote('{"v": ' + NESTED + "}")
        )
        for line, body in [("POST /graphql", DEEP_BODY.encode()), (get, b"")]:
            status, headers, raw = await _exchange(writer, reader, url.netloc, line, body)
            answer = json.loads(raw)
            assert status == 400, raw
            assert headers.get("connection", "").lower() != "close"
            assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            assert "nested too deeply" in answer["errors"][0]["message"]
            assert "data" not in answer or answer["data"] is None
        # The same connection still serves a plain query.
        status, _, raw = await _exchange(
            writer, reader, url.netloc, "POST /graphql", b'{"query": "{ unreadCount }"}'
        )
        assert status == 200 and json.loads(raw) == {"data": {"unreadCount": 3}}
    finally:
        writer.close()
        await writer.wait_closed()

    # Nesting the decoder survives, but deeper than the variables limit.
    shallow = [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]
    r = await gw.gql("{ unreadCount }", {"v": shallow})
    assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"]
    assert r.json()["errors"][0]["extensions"]["field"] == "variables"
    # Only the plain query reached a service.
    assert service_calls(gw) == 1


def _ws(gw: Any) -> Any:
    return connect(gw.url.replace("http", "ws") + "/graphql", subprotocols=["graphql-transport-ws"])


async def _init(ws: Any) -> None:
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token()}"}}
    await ws.send(json.dumps(init))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}


async def _closed_with(ws: Any) -> int | None:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code is not None
    return int(ws.close_code)


async def test_deeply_nested_websocket_frames_close_with_4400(gateway_factory) -> None:
    """Hole 1 over WebSocket: the probe's payload as first frame and inside ``subscribe``."""
    gw = await gateway_factory()
    async with _ws(gw) as ws:
        await ws.send(DEEP_BODY)
        assert await _closed_with(ws) == 4400

    async with _ws(gw) as ws:
        await _init(ws)
        subscribe = (
            '{"id": "1", "type": "subscribe", "payload": {"query": "{ unreadCount }", '
            '"variables": {"v": ' + NESTED + "}}}"
        )
        await ws.send(subscribe)
        assert await _closed_with(ws) == 4400
        assert ws.close_reason.startswith("Invalid message received")

    # Variables that decode but nest too deep fail their operation only.
    async with _ws(gw) as ws:
        await _init(ws)
        nested: Any = 1
        for _ in range(100):
            nested = [nested]
        payload = {"query": "{ unreadCount }", "variables": {"v": nested}}
        await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": payload}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert error["type"] == "error" and error["id"] == "2"
        assert error["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}
        await ws.send(b"\x00binary")
        assert await _closed_with(ws) == 4400
    assert service_calls(gw) == 0


# Hole 2: the probe's wrong-typed and unencodable variables, as raw JSON text.
PROBE_VARIABLES = [
    (FIRST, '{"n": "x"}'),
    (LOGIN, '{"p": 5}'),
    (FIRST, '{"n": 1.5}'),
    (FIRST, '{"n": NaN}'),
    (FIRST, '{"n": Infinity}'),
    (FIRST, '{"n": 1e400}'),
    (LOGIN, '{"p": 1e400}'),
    (LOGIN, '{"p": "\\ud800"}'),
    (LOGIN, '{"p": {"\\ud800": 1}}'),
    (LOGIN, '{"p": ["' + PASSWORD + '"]}'),
]


@pytest.mark.parametrize(("query", "variables"), PROBE_VARIABLES)
async def test_wrong_typed_variables_are_bad_input_not_server_errors(
    gateway_factory, caplog, query: str, variables: str
) -> None:
    """Hole 2: BAD_USER_INPUT, 400, no ERROR logged, nothing sent to a service."""
    gw = await gateway_factory()
    caplog.set_level(logging.DEBUG)
    body = '{"query": ' + json.dumps(query) + ', "variables": ' + variables + "}"
    r = await gw.client.post(
        "/graphql",
        content=body.encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token()}"},
    )
    assert r.status_code == 400, r.text
    assert codes(r.json()) == ["BAD_USER_INPUT"]
    assert PASSWORD not in r.text
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert service_calls(gw) == 0


async def test_unencodable_text_in_the_document_is_bad_input(gateway_factory, caplog) -> None:
    gw = await gateway_factory()
    caplog.set_level(logging.DEBUG)
    for body in [
        '{"query": "mutation { login(email: \\"a@b.c\\", password: \\"\\ud800\\") { accessToken } }"}',
        '{"query": "{ unreadCount }", "operationName": "\\udfff"}',
    ]:
        r = await gw.client.post(
            "/graphql", content=body.encode(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and codes(r.json()) == ["BAD_USER_INPUT"], r.text
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert service_calls(gw) == 0


async def test_variables_never_reach_the_logs(gateway_factory, caplog, capfd) -> None:
    """Hole 3: the probe's ``{"p": ["secret…"]}`` and every other failure path."""
    gw = await gateway_factory()
    caplog.set_level(logging.DEBUG)
    await gw.gql(LOGIN, {"p": [PASSWORD]}, user=None)
    await gw.gql(LOGIN, {"p": PASSWORD}, user=None)
    await gw.gql(LOGIN, {"p": {"nested": [PASSWORD]}}, user=None)
    await gw.gql(LOGIN + " fragment", {"p": PASSWORD}, user=None)
    await gw.gql(
        "mutation($in: RegisterInput!) { register(input: $in) { accessToken } }",
        {"in": {"name": "Ann", "email": "taken@example.com", "password": PASSWORD}},
        user=None,
    )
    await gw.client.get(
        "/graphql", params={"query": LOGIN, "variables": json.dumps({"p": PASSWORD})}
    )
    formatter = logging.Formatter("%(message)s %(exc_text)s")
    logged = "\n".join(formatter.format(rec) for rec in caplog.records)
    out, err = capfd.readouterr()
    assert PASSWORD not in logged + out + err


async def test_unexpected_errors_are_logged_without_their_message(caplog) -> None:
    """The resolver-failure log shows the type and stack, never the exception's text."""
    from herald_gateway.errors import log_unexpected

    caplog.set_level(logging.DEBUG)
    try:
        try:
            raise KeyError(PASSWORD)
        except KeyError as inner:
            raise TypeError(f"cannot use {PASSWORD!r}") from inner
    except TypeError as exc:
        log_unexpected(logging.getLogger("test"), "resolver failed", exc)
    text = "\n".join(logging.Formatter().format(rec) for rec in caplog.records)
    assert "TypeError" in text and "KeyError" in text and "test_hostile.py" in text
    assert PASSWORD not in text


def aliases(field: str, count: int) -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


async def test_aliases_of_one_field_are_resolved_once(gateway_factory) -> None:
    """Hole 4: the probe's ``{ a0: unreadCount … a149: unreadCount }`` is one call."""
    gw = await gateway_factory(cache_enabled=False)
    r = await gw.gql(aliases("unreadCount", 150))
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {f"a{i}": 3 for i in range(150)}
    assert gw.recorders["notifications"].calls["GET /v1/notifications/unread-count"] == 1

    # Same arguments (literal or variable) share one call; different ones do not.
    r = await gw.gql(
        "query($n: Int) { a: notifications(first: 2) { totalCount } "
        "b: notifications(first: $n) { totalCount } c: notifications(first: 3) { totalCount } }",
        {"n": 2},
    )
    assert r.json()["data"]["a"] == r.json()["data"]["b"] == {"totalCount": 42}
    assert gw.recorders["notifications"].calls["GET /v1/notifications"] == 2


async def test_costly_documents_are_refused_before_any_service_call(gateway_factory) -> None:
    """Hole 4: 200 ``register`` / 50 ``login`` aliases, and many distinct calls."""
    gw = await gateway_factory()
    register = (
        'register(input: {name: "A", email: "a@example.com", password: "Correct-Horse-42"}) '
        "{ accessToken }"
    )
    login = 'login(email: "a@example.com", password: "Correct-Horse-42") { accessToken }'
    for document in [
        "mutation " + aliases(register, 200),
        "mutation " + aliases(login, 50),
        "mutation " + aliases(login, 3),
        "mutation " + aliases("markAllNotificationsRead", 6),
        "{ "
        + " ".join(f"n{i}: notifications(first: {i + 1}) {{ totalCount }}" for i in range(21))
        + " }",
        "{ " + " ".join(f"d{i}: deadLetters(limit: {i}) {{ queue }}" for i in range(6)) + " }",
    ]:
        r = await gw.gql(document, user=None if "register" in document else "u1")
        assert r.status_code == 400, r.text
        assert codes(r.json()) == ["BAD_USER_INPUT"]
        assert r.json()["errors"][0]["extensions"]["field"] == "query"
    assert service_calls(gw) == 0
    # At the limits, the documents run.
    r = await gw.gql("mutation " + aliases(login, 2), user=None)
    assert r.status_code == 200 and len(r.json()["data"]) == 2


async def test_documents_that_do_not_parse_or_validate_never_reach_a_service(
    gateway_factory,
) -> None:
    """Everything refused before execution: nothing is sent to any service."""
    gw = await gateway_factory(max_query_complexity=300)
    refused = [
        ("{ me { id ", None),
        ("{ me { shoeSize } }", None),
        ("{ me " + "{ preferences " * 100 + "}" * 101, None),
        ("{ products(ids: " + "[" * 100 + '"p1"' + "]" * 100 + ") { id } }", None),
        ("{ " + " ".join(f"a{i}: me {{ id }}" for i in range(600)) + " }", None),
        ("{ notifications(first: 100) { edges { node { id content } } } }", None),
        (FIRST, {"n": "x"}),
        ("query($id: ID!) { notification(id: $id) { id } }", {}),
        ("subscription { notificationAdded { id } }", None),
        ("query A { me { id } } query B { unreadCount }", None),
    ]
    for document, variables in refused:
        r = await gw.gql(document, variables)
        assert r.status_code == 400, (document[:60], r.text)
        assert codes(r.json()) and set(codes(r.json())) == {"BAD_USER_INPUT"}
    r = await gw.client.get(
        "/graphql",
        params={"query": "mutation { logout }"},
        headers={"authorization": f"Bearer {token()}"},
    )
    assert r.status_code == 405
    assert service_calls(gw) == 0


async def test_a_hostile_caller_does_not_hold_up_another(gateway_factory) -> None:
    """Hole 4's bound: one caller's calls wait for that caller's own slots only.

    Relative, not absolute: the plain query under load is compared with its own
    baseline on the same (slow) stand-ins (the median of three within 3x), and must
    finish while the hostile requests are still running.
    """
    gw = await gateway_factory(cache_enabled=False, latency=0.2, max_concurrent_calls_per_caller=4)
    plain = "{ unreadCount }"

    async def timed(query: str, user: str) -> float:
        started = time.perf_counter()
        r = await gw.gql(query, user=user)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return time.perf_counter() - started

    baseline = min([await timed(plain, "bob") for _ in range(3)])
    hostile = (
        "{ "
        + " ".join(f"n{i}: notifications(first: {i + 1}) {{ totalCount }}" for i in range(20))
        + " }"
    )
    attack = [asyncio.create_task(timed(hostile, "mallory")) for _ in range(6)]
    await asyncio.sleep(0.1)
    under_load = [await timed(plain, "bob") for _ in range(3)]
    attack_done = [task.done() for task in attack]
    attack_times = await asyncio.gather(*attack)

    assert not all(attack_done), "the hostile requests finished before the plain ones"
    # The median, not the maximum: one plain request may share the event loop with the
    # burst that starts the hostile documents (or a busy machine); queued behind the
    # hostile caller's slots, every one of them would take seconds.
    assert sorted(under_load)[1] < 3 * baseline, (baseline, under_load)
    assert max(attack_times) > 5 * max(under_load), (attack_times, under_load)
    # Each request carries its own token: the per-caller cap shows across all of them.
    in_flight = gw.recorders["notifications"].max_in_flight
    assert sum(in_flight.values()) > 0 and max(in_flight.values()) <= 4, in_flight
    assert gw.gateway.slots.active_callers() == 0


async def test_caller_slots_queue_a_caller_then_refuse_it() -> None:
    """Per caller: ``per_caller`` run, ``max_waiting`` wait, the next is RATE_LIMITED."""
    from herald_gateway.budget import CallBudget, CallerSlots
    from herald_gateway.errors import GraphQLFailure

    slots = CallerSlots(1, max_waiting=1)
    release = asyncio.Event()
    order: list[str] = []

    async def hold(name: str, caller: str = "mallory") -> None:
        async with slots.hold(caller):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("second"))
    await asyncio.sleep(0)
    with pytest.raises(GraphQLFailure) as refused:
        async with slots.hold("mallory"):
            pass
    assert refused.value.code == "RATE_LIMITED" and refused.value.retry_after == 1
    other = asyncio.create_task(hold("bob", caller="bob"))
    await asyncio.sleep(0)
    assert order == ["first", "bob"]
    release.set()
    await asyncio.gather(first, second, other)
    assert order == ["first", "bob", "second"] and slots.active_callers() == 0

    budget = CallBudget(2, "mallory")
    budget.spend("users")
    budget.spend("users")
    with pytest.raises(GraphQLFailure) as spent:
        budget.spend("users")
    assert spent.value.code == "BAD_USER_INPUT" and spent.value.field == "query"
