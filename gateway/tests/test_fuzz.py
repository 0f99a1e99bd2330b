"""Fuzzing the gateway: hypothesis over the input checks, and generated GraphQL documents
(hypothesis-graphql, from the served schema) sent through a running gateway.

Properties: any input is accepted or refused with a typed ``BAD_USER_INPUT`` whose
message never repeats the value; any document, valid or not, is answered with HTTP
200/400 and every error carries a known ``extensions.code`` — never a 500, never an
untyped error. Example counts are bounded so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from herald_gateway.engine import schema_sdl
from herald_gateway.errors import GraphQLFailure
from herald_gateway.inputs import check_document, check_variables, decode_json

from .conftest import token

CODES = {"UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "NOT_FOUND", "RATE_LIMITED"}
FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=40,
)


def _leaves(value: Any) -> list[Any]:
    stack, out = [value], []
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            out.append(item)
    return out


@FAST
@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5), st.integers(2, 12))
def test_check_variables_accepts_or_refuses_typed(variables: dict, depth: int) -> None:
    try:
        check_variables(variables, max_depth=depth)
    except GraphQLFailure as exc:
        assert exc.to_error()["extensions"]["code"] == "BAD_USER_INPUT"
        return
    # What passes is finite and encodable: every service can store it.
    for leaf in _leaves(variables):
        if isinstance(leaf, float):
            assert math.isfinite(leaf)
        if isinstance(leaf, str):
            leaf.encode("utf-8")
    json.dumps(variables, allow_nan=False).encode("utf-8")


SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-", min_size=12)


@FAST
@given(SECRETS, st.sampled_from(["\ud800", float("inf"), float("nan")]))
def test_refusals_never_repeat_the_value(secret: str, poison: Any) -> None:
    """A refused variable's message names where, never what (holes 2 and 3)."""
    value = secret + poison if isinstance(poison, str) else [secret, poison]
    with pytest.raises(GraphQLFailure) as info:
        check_variables({"password": value}, max_depth=8)
    assert secret not in json.dumps(info.value.to_error())


@FAST
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_decode_json_raises_only_value_errors(raw: str) -> None:
    try:
        decode_json(raw, "body")
    except GraphQLFailure as exc:
        assert exc.to_error()["extensions"]["code"] == "BAD_USER_INPUT"
    except ValueError:
        pass  # the other documented outcome: the caller turns it into BAD_USER_INPUT


@FAST
@given(st.integers(1, 3000), st.sampled_from("[{"))
def test_decode_json_survives_any_nesting(depth: int, bracket: str) -> None:
    closing = "]" if bracket == "[" else "}"
    inner = "1" if bracket == "[" else ""
    text = (bracket if bracket == "[" else '{"a":') * depth + inner + closing * depth
    try:
        decode_json(text, "variables")
    except (GraphQLFailure, ValueError):
        pass  # refused as input, not a RecursionError: what this test is after


@FAST
@given(st.text(max_size=400), st.integers(1, 50), st.integers(1, 500))
def test_check_document_refuses_typed(query: str, nesting: int, names: int) -> None:
    try:
        check_document(query, max_nesting=nesting, max_names=names)
    except GraphQLFailure as exc:
        assert exc.to_error()["extensions"]["code"] == "BAD_USER_INPUT"


# --- generated GraphQL documents through a running gateway ------------------------------


def _documents(mode: Mode) -> st.SearchStrategy[str]:
    sdl = schema_sdl()
    return from_schema(
        sdl, mode=mode, custom_scalars={"JSON": st.text(max_size=10).map(nodes.String)}
    )


def _fuzz(url: str, mode: Mode, examples: int, bearers: list[str | None]) -> list[int]:
    """Runs in a worker thread: hypothesis drives a synchronous client."""
    seen: list[int] = []

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(document=_documents(mode), who=st.sampled_from(bearers))
    def fuzz(document: str, who: str | None) -> None:
        headers = {"authorization": f"Bearer {who}"} if who else {}
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post("/graphql", json={"query": document}, headers=headers)
        seen.append(response.status_code)
        assert response.status_code in (200, 400), (document, response.text)
        body = response.json()
        if mode is Mode.NEGATIVE:
            # A document that does not fit the schema is refused, never executed.
            assert response.status_code == 400 or body.get("errors"), (document, body)
        for error in body.get("errors", []):
            code = error.get("extensions", {}).get("code")
            assert code in CODES | {"UNAVAILABLE"}, (document, error)
            if code == "UNAVAILABLE":
                # Only a stand-in refusing what it was given may end up here, never an
                # internal failure of the gateway.
                assert "internal error" not in error["message"], (document, error)

    fuzz()
    return seen


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "invalid"])
async def test_generated_documents_get_typed_answers(gateway_factory, mode: Mode) -> None:
    gw = await gateway_factory(rate_limit_per_minute=0)
    bearers = [None, "garbage", token("fuzz-user"), token("fuzz-admin", roles=("admin",))]
    statuses = await asyncio.to_thread(_fuzz, gw.url, mode, 60, bearers)
    assert len(statuses) >= 10, "hypothesis sent too few documents"


# --- random variables of typed operations through a running gateway ---------------------

# One variable ``$v`` of the type named first; each value either fits it or not.
TYPED_OPERATIONS = (
    ("Int", "query($v: Int) { notifications(first: $v) { totalCount } }"),
    ("Boolean", "query($v: Boolean) { notifications(first: 1, unreadOnly: $v) { totalCount } }"),
    ("ID!", "query($v: ID!) { notification(id: $v) { id } }"),
    ("String!", "mutation($v: String!) { updateProfile(name: $v) { id } }"),
    ("[ID!]!", "query($v: [ID!]!) { products(ids: $v) { id } }"),
    (
        "ActivityKind!",
        'mutation($v: ActivityKind!) { trackActivity(events: [{kind: $v, productId: "p1"}]) }',
    ),
    (
        "PreferencesInput!",
        "mutation($v: PreferencesInput!) { updatePreferences(input: $v) { id } }",
    ),
)
ACTIVITY_KINDS = ("VIEW", "ADD_TO_CART", "PURCHASE")
# Random JSON, and values that fit one of the types above (so both outcomes are seen).
VARIABLE_VALUES = (
    JSON_VALUES
    | st.integers(-(2**31), 2**31 - 1)
    | st.booleans()
    | st.text(max_size=20)
    | st.sampled_from(ACTIVITY_KINDS)
    | st.lists(st.text(max_size=8) | st.integers(0, 10**6), max_size=5)
    | st.fixed_dictionaries({}, optional={"promotions": st.booleans(), "timezone": st.text()})
)


def _container_depth(value: Any) -> int:
    """How deep the deepest list or object sits (the variable itself at 1; 0 for none)."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _refused_by_input_checks(value: Any, max_depth: int) -> bool:
    """What the gateway refuses before GraphQL sees it (herald_gateway.inputs)."""
    keys: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            keys.append(item)
    for leaf in keys:
        if isinstance(leaf, float) and not math.isfinite(leaf):
            return True
        if isinstance(leaf, str):
            try:
                leaf.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return _container_depth(value) >= max_depth


def wrong_type(type_: str, value: Any) -> bool | None:
    """Whether ``value`` cannot be a ``type_`` under GraphQL's input coercion: True,
    False, or None where the specification leaves room (an integral float for ``Int``,
    an ``Int`` beyond 32 bits, a float for ``ID``, a single value for a list, the fields
    of an input object)."""
    if type_.endswith("!"):
        if value is None:
            return True
        type_ = type_[:-1]
    elif value is None:
        return False
    if type_.startswith("["):
        inner = type_[1:-1]
        if not isinstance(value, list):
            return True if wrong_type(inner, value) else None
        verdicts = [wrong_type(inner, item) for item in value]
        if any(verdicts):
            return True
        return None if None in verdicts else False
    if type_ == "Int":
        if isinstance(value, bool):
            return True
        if isinstance(value, int):
            return False if -(2**31) <= value < 2**31 else None
        if isinstance(value, float):
            return None if value.is_integer() else True
        return True
    if type_ == "Boolean":
        return not isinstance(value, bool)
    if type_ == "String":
        return not isinstance(value, str)
    if type_ == "ID":
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return False
        return None if isinstance(value, float) else True
    if type_ == "ActivityKind":
        return value not in ACTIVITY_KINDS
    if type_ == "PreferencesInput":
        return None if isinstance(value, dict) else True
    raise ValueError(type_)


def _fuzz_variables(url: str, examples: int, bearer: str, max_depth: int) -> dict[str, int]:
    """Runs in a worker thread: hypothesis drives a synchronous client."""
    seen = {"wrong": 0, "fitting": 0, "unclear": 0}

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(operation=st.sampled_from(TYPED_OPERATIONS), value=VARIABLE_VALUES)
    def fuzz(operation: tuple[str, str], value: Any) -> None:
        type_, query = operation
        # json.dumps as a client would send it: NaN/Infinity as literals, lone
        # surrogates as \ud8xx escapes.
        body = json.dumps({"query": query, "variables": {"v": value}})
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post(
                "/graphql",
                content=body.encode(),
                headers={"content-type": "application/json", "authorization": f"Bearer {bearer}"},
            )
        where = (type_, body[:500], response.status_code, response.text[:500])
        assert response.status_code in (200, 400), where
        errors = response.json().get("errors", [])
        got = {(e.get("extensions") or {}).get("code") for e in errors}
        assert got <= CODES | {"UNAVAILABLE"}, where
        for error in errors:
            if error["extensions"]["code"] == "UNAVAILABLE":
                # Only a stand-in refusing what it was given, never a gateway failure.
                assert "internal error" not in error["message"], where
        verdict = True if _refused_by_input_checks(value, max_depth) else wrong_type(type_, value)
        if verdict is True:
            seen["wrong"] += 1
            # Refused before anything ran: a 400 with BAD_USER_INPUT only.
            assert response.status_code == 400 and got == {"BAD_USER_INPUT"}, where
        elif verdict is False:
            seen["fitting"] += 1
            # A value of the right type is never refused as a variable of the wrong type.
            assert not any("Variable $v" in e["message"] for e in errors), where
        else:
            seen["unclear"] += 1

    fuzz()
    return seen


@pytest.mark.integration
@pytest.mark.slow
async def test_random_variables_of_typed_operations_get_typed_answers(gateway_factory) -> None:
    """Random JSON values (and well-typed ones) as the variable of typed queries and
    mutations, sent to a running gateway: never a 5xx, every error has a known code, and
    a value of the wrong type (or one the input checks refuse) is a 400
    ``BAD_USER_INPUT``."""
    gw = await gateway_factory(rate_limit_per_minute=0)
    depth = gw.settings.max_variables_depth
    seen = await asyncio.to_thread(_fuzz_variables, gw.url, 100, token("fuzz-vars"), depth)
    assert seen["wrong"] >= 10 and seen["fitting"] >= 10, seen
