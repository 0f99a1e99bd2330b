"""The gateway's view of the internal HTTP APIs, checked against the services' real
OpenAPI documents, so a contract change on either side fails here at once.

Each service's app is created in-process (no servers: only its routes and models are
needed) and its ``/openapi.json`` read. Then:

* every call the gateway's clients make (``herald_gateway/clients/services.py``, read
  from the source) names a real method and path, only query parameters the route
  declares, only body keys the request model has, and reads only fields the answer
  declares;
* every route of the test stand-ins (``standins.py``) exists in the real service, and
  what the stand-in answers validates against the real route's answer schema.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from herald_common.app import admin_principal, current_principal
from herald_common.auth import Principal
from herald_notifications.main import create_app as notifications_app
from herald_recommendations.main import create_app as recommendations_app
from herald_scheduler.main import create_app as scheduler_app
from herald_users.main import create_app as users_app

from . import standins

CLIENTS = Path(__file__).resolve().parents[1] / "herald_gateway/clients/services.py"
SERVICE_OF_CLASS = {
    "UsersClient": "users",
    "NotificationsClient": "notifications",
    "RecommendationsClient": "recommendations",
    "SchedulerClient": "scheduler",
}
APPS: dict[str, Callable[[], FastAPI]] = {
    "users": users_app,
    "notifications": notifications_app,
    "recommendations": recommendations_app,
    "scheduler": scheduler_app,
}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    return {name: make().openapi() for name, make in APPS.items()}


# --- the real schema -------------------------------------------------------------------


def _segments(template: str) -> list[str | None]:
    """A path template as segments, a parameter (``{…}``) as None."""
    return [None if re.fullmatch(r"\{[^}]*\}", s) else s for s in template.strip("/").split("/")]


def _matches(client_path: list[str | None], real_path: list[str | None]) -> bool:
    # A value the client fills in may stand for a parameter or a literal segment (an
    # action name); a literal of the client must be the same literal in the service.
    return len(client_path) == len(real_path) and all(
        c is None or c == r for c, r in zip(client_path, real_path, strict=True)
    )


def operations(
    schema: dict[str, Any], method: str, path: list[str | None]
) -> list[tuple[str, dict[str, Any]]]:
    """The real operations a call of ``method`` on ``path`` can reach."""
    return [
        (template, item[method])
        for template, item in schema["paths"].items()
        if method in item and _matches(path, _segments(template))
    ]


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = schema["components"]["schemas"][name]
    return node


def properties(schema: dict[str, Any], node: dict[str, Any]) -> set[str] | None:
    """The property names an object schema allows (None: any)."""
    node = resolve(schema, node)
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        found = [properties(schema, o) for o in options if resolve(schema, o).get("type") != "null"]
        if any(f is None for f in found):
            return None
        return set().union(*found) if found else set()
    if node.get("type") == "array":
        return properties(schema, node.get("items", {}))
    if "properties" not in node:
        return None
    return set(node["properties"])


def query_names(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


def body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema")


def answer_schema(operation: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The success status and its JSON schema (None when the route declares none)."""
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            return status, schema or None
    return "", None


# --- the clients' calls, read from their source ----------------------------------------


@dataclass
class Call:
    """One HTTP call in a client method."""

    where: str
    services: tuple[str, ...]
    method: str
    path: list[str | None]
    query: set[str] = field(default_factory=set)
    body_keys: set[str] | None = None
    reads: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        shown = "/".join("{…}" if s is None else s for s in self.path)
        return f"{self.where}: {self.method.upper()} /{shown}"


def _path(node: ast.expr, names: dict[str, ast.expr]) -> list[str | None]:
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]  # ``path = f"..."`` first
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _segments(node.value)
    assert isinstance(node, ast.JoinedStr), ast.unparse(node)
    text = "".join(
        v.value if isinstance(v, ast.Constant) else "{}" for v in node.values
    )  # every interpolation is one path segment (``_seg``)
    return _segments(text)


def _keys(node: ast.expr) -> set[str] | None:
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return {k.value for k in node.keys if isinstance(k, ast.Constant)}
    return None  # a body built elsewhere (passed through from GraphQL input)


def _calls_in(fn: ast.AsyncFunctionDef, where: str, services: tuple[str, ...]) -> list[Call]:
    """The HTTP calls of one client function; fields read from an answer assigned to a
    name (``body = await self.get(...)``; ``body["count"]``) go with its call."""
    names = {
        n.targets[0].id: n.value
        for n in ast.walk(fn)
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
    }
    calls: dict[int, Call] = {}
    for node in ast.walk(fn):
        call = _http_call(node, where, services, names)
        if call is not None:
            calls[id(node)] = call
    answers: dict[str, Call] = {}
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Await)
            and id(node.value.value) in calls
        ):
            answers[node.targets[0].id] = calls[id(node.value.value)]
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in answers
            and isinstance(node.slice, ast.Constant)
        ):
            answers[node.value.id].reads.add(node.slice.value)
    return list(calls.values())


def _http_call(
    node: ast.AST, where: str, services: tuple[str, ...], names: dict[str, ast.expr]
) -> Call | None:
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "request")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("self", "client")
    ):
        return None
    kwargs = {k.arg: k.value for k in node.keywords if k.arg}
    if node.func.attr == "get":
        return Call(where, services, "get", _path(node.args[0], names), query=set(kwargs))
    method = node.args[0]
    assert isinstance(method, ast.Constant), ast.unparse(node)
    call = Call(where, services, str(method.value).lower(), _path(node.args[1], names))
    if "params" in kwargs:
        call.query = _keys(kwargs["params"]) or set()
    if "json" in kwargs:
        call.body_keys = _keys(kwargs["json"])
    return call


def client_calls() -> list[Call]:
    tree = ast.parse(CLIENTS.read_text())
    calls: list[Call] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in SERVICE_OF_CLASS:
            for fn in node.body:
                if isinstance(fn, ast.AsyncFunctionDef):
                    where = f"{node.name}.{fn.name}"
                    calls += _calls_in(fn, where, (SERVICE_OF_CLASS[node.name],))
        elif isinstance(node, ast.AsyncFunctionDef):
            # Module functions take the client of any service with queues (the
            # dead-letter admin API; users consumes nothing).
            calls += _calls_in(node, node.name, tuple(s for s in APPS if s != "users"))
    return calls


CALLS = client_calls()


def test_the_clients_source_was_read() -> None:
    assert {c.services[0] for c in CALLS} == set(APPS)
    assert len(CALLS) >= 20, [str(c) for c in CALLS]


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_client_call_matches_the_service(call: Call, schemas: dict[str, Any]) -> None:
    for service in call.services:
        schema = schemas[service]
        found = operations(schema, call.method, call.path)
        assert found, f"{call}: no such route in {service}'s OpenAPI document"
        for template, operation in found:
            unknown = call.query - query_names(operation)
            assert not unknown, f"{call}: {service} {template} has no query {sorted(unknown)}"
            body = body_schema(operation)
            if call.body_keys is not None and call.body_keys:
                assert body is not None, f"{call}: {service} {template} takes no body"
                allowed = properties(schema, body)
                if allowed is not None:
                    extra = call.body_keys - allowed
                    assert not extra, f"{call}: {service} {template} has no body keys {extra}"
            if call.reads:
                _, answer = answer_schema(operation)
                assert answer is not None, f"{call}: {service} {template} declares no answer"
                allowed = properties(schema, answer)
                assert allowed is None or call.reads <= allowed, (
                    f"{call}: reads {sorted(call.reads - (allowed or set()))} that "
                    f"{service} {template} does not answer"
                )


# --- the stand-ins ---------------------------------------------------------------------


STANDINS: dict[str, Callable[..., FastAPI]] = {
    "users": standins.users_app,
    "notifications": standins.notifications_app,
    "recommendations": standins.recommendations_app,
    "scheduler": standins.scheduler_app,
}
# Sample values for the stand-ins' required parameters.
SAMPLES = {"ids": "p1,p2", "queue": "notifications.requests", "name": "spring-sale"}
BODIES = {
    "/v1/auth/login": {"email": "a@example.com", "password": "x"},
    "/v1/auth/register": {"name": "A", "email": "a@example.com", "password": "x"},
}


def _standin_routes() -> list[tuple[str, str, str]]:
    out = []
    for service, make in STANDINS.items():
        app = make(None, standins.Recorder())
        for route in app.routes:
            if isinstance(route, APIRoute) and route.path.startswith("/v1/"):
                out += [(service, m.lower(), route.path) for m in sorted(route.methods)]
    return out


ROUTES = _standin_routes()


def test_the_standins_were_read() -> None:
    assert {s for s, _, _ in ROUTES} == set(APPS)


@pytest.mark.parametrize(("service", "method", "path"), ROUTES, ids=lambda v: str(v))
async def test_standin_route_and_answer_match_the_service(
    service: str, method: str, path: str, schemas: dict[str, Any]
) -> None:
    schema = schemas[service]
    # A stand-in parameter may stand for several literal routes (``/{nid}/{action}``):
    # each real route it serves is checked.
    found = operations(schema, method, _segments(path))
    assert found, f"stand-in {method.upper()} {path}: no such route in {service}"
    for template, operation in found:
        await _check_answer(service, method, path, template, operation, schema)


async def _check_answer(
    service: str,
    method: str,
    path: str,
    template: str,
    operation: dict[str, Any],
    schema: dict[str, Any],
) -> None:
    app = STANDINS[service](None, standins.Recorder())
    caller = Principal(user_id="u1", roles=("user", "admin"))
    app.dependency_overrides[current_principal] = lambda: caller
    app.dependency_overrides[admin_principal] = lambda: caller
    url = "/".join(
        real if not real.startswith("{") else SAMPLES.get(real.strip("{}"), "x")
        for real in template.strip("/").split("/")
    )
    params = {
        p["name"]: SAMPLES.get(p["name"], "1")
        for p in operation.get("parameters", [])
        if p["in"] == "query" and (p.get("required") or p["name"] in SAMPLES)
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as client:
        response = await client.request(
            method.upper(),
            "/" + url,
            params=params,
            json=BODIES.get(template, BODIES.get(path, {}))
            if method in ("post", "patch", "put")
            else None,
        )
    assert response.status_code < 300, (template, response.status_code, response.text)
    status, answer = answer_schema(operation)
    assert str(response.status_code) == status, f"{template}: stand-in {response.status_code}"
    if answer is None or status == "204":
        return
    try:
        jsonschema.validate(response.json(), {**answer, "components": schema["components"]})
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        pytest.fail(
            f"stand-in {method.upper()} {path} ({template}) answers what {service} never "
            f"does: {where}: {exc.message}"
        )
