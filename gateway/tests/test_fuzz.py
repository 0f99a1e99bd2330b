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
