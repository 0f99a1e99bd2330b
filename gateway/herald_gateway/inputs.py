"""Hygiene of what a client sends, checked before anything is parsed or executed.

A GraphQL document and its variables come from anyone. Before Tartiflette parses the
document (its C parser and Python validation cost time, and overflow the stack on very
deep nesting) and before a variable can travel to a service, this module refuses:

* JSON nested deeper than the decoder's recursion limit (``RecursionError``), and
  ``NaN``/``Infinity`` literals, which JSON does not have;
* variables nested deeper than ``max_depth`` levels, non-finite numbers (``1e400``
  decodes to infinity) and lone UTF-16 surrogates (``"\\ud800"``), which no service can
  store or encode;
* documents nested deeper than ``max_nesting`` brackets, or with more than
  ``max_names`` names (fields, arguments, types), counted without parsing.

Every refusal is a :class:`~herald_gateway.errors.GraphQLFailure` with
``BAD_USER_INPUT`` whose message never repeats the offending value.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from herald_gateway.errors import GraphQLFailure

# String literals (block strings first) and comments: brackets and names inside them
# are text, not structure. The alternatives of each literal are disjoint, so matching
# stays linear on hostile input.
_NON_CODE = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|#[^\n\r]*', re.S)
_BRACKETS = re.compile(r"[{}\[\]()]")
_NAMES = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_OPENING = frozenset("{[(")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(raw: str | bytes, what: str) -> Any:
    """``json.loads`` that refuses ``NaN``/``Infinity`` and survives any nesting.

    Raises ``ValueError`` (malformed; the message says why) or :class:`GraphQLFailure`
    (nested too deeply for the decoder).
    """
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise GraphQLFailure(f"{what} is nested too deeply", field=what) from None


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a UTF-16 surrogate that is not part of a pair."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_variables(variables: dict[str, Any], *, max_depth: int) -> None:
    """Refuse deep, non-finite or unencodable variable values (iteratively: no recursion)."""
    stack: list[tuple[str, Any, int]] = [(f"variables.{k}", v, 1) for k, v in variables.items()]
    for key in variables:
        _check_text(key, "variables")
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, float):
            if not math.isfinite(value):
                where = where[:200]
                raise GraphQLFailure(
                    f"{where}: numbers must be finite (no NaN, Infinity or overflowing exponents)",
                    field=where,
                )
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                where = where[:200]
                raise GraphQLFailure(
                    f"{where}: nested deeper than {max_depth} levels", field="variables"
                )
            if isinstance(value, dict):
                for k, v in value.items():
                    _check_text(k, where)
                    stack.append((f"{where}.{k}" if len(where) < 200 else where, v, depth + 1))
            else:
                for i, v in enumerate(value):
                    stack.append((f"{where}[{i}]" if len(where) < 200 else where, v, depth + 1))


def _check_text(text: str, where: str) -> None:
    if has_lone_surrogate(text):
        where = where[:200]
        raise GraphQLFailure(
            f"{where}: contains a lone UTF-16 surrogate (not valid Unicode text)", field=where
        )


def check_document(query: str, *, max_nesting: int, max_names: int) -> None:
    """Refuse a document that is too deep or too long to be worth parsing."""
    _check_text(query, "query")
    code = _NON_CODE.sub(" ", query)
    deltas = [1 if b in _OPENING else -1 for b in _BRACKETS.findall(code)]
    nesting = max(accumulate(deltas, initial=0))
    if nesting > max_nesting:
        raise GraphQLFailure(
            f"query: brackets nested deeper than {max_nesting} levels", field="query"
        )
    names = sum(1 for _ in _NAMES.finditer(code))
    if names > max_names:
        raise GraphQLFailure(
            f"query: {names} names (fields, arguments, types); the limit is {max_names}",
            field="query",
        )
