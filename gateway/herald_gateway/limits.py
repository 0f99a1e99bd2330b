"""Query depth and complexity limits, checked on the parsed document before execution.

Depth counts nested fields (fragments expanded). Complexity is an upper bound on the
work a query asks for: every field costs 1, and the subtree of a list field is
multiplied by its page size (``first``/``limit``, the number of ``ids``, or the field's
default page size). Introspection (``__schema``/``__type``) has its own, larger depth
limit so GraphiQL's schema query works, and costs 1 per field.

Service calls are estimated from the root fields (:func:`estimate_calls`): a query's
root field costs its service calls once per distinct (field, arguments) pair, since
aliases of one field with the same arguments are resolved once; catalog and user
lookups are batched per request; each mutation field costs a call, and mutations are
also counted on their own (register and login hash a password). Over a limit, the
document is refused before anything reaches a service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tartiflette.language.ast import (
    BooleanValueNode,
    EnumValueNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    VariableNode,
)

from herald_gateway.errors import GraphQLFailure

INTROSPECTION_DEPTH = 16
# The page sizes of list fields when the query does not say (the SDL defaults).
DEFAULT_PAGE = {
    "notifications": 20,
    "recommendations": 10,
    "orders": 20,
    "campaigns": 50,
    "deadLetters": 4,
    "items": 5,
    "messages": 20,
}
PAGE_ARGS = ("first", "limit")


@dataclass(frozen=True)
class QueryCost:
    depth: int
    complexity: int


class _Walker:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]):
        self.fragments = fragments
        self.variables = variables

    def _int(self, node: Any) -> int | None:
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, VariableNode):
            value = self.variables.get(node.name.value)
            return value if isinstance(value, int) and not isinstance(value, bool) else None
        return None

    def _multiplier(self, field: FieldNode) -> int:
        for arg in field.arguments or []:
            name = arg.name.value
            if name in PAGE_ARGS:
                value = self._int(arg.value)
                if value is not None:
                    return max(value, 1)
            if name == "ids":
                if isinstance(arg.value, ListValueNode):
                    return max(len(arg.value.values), 1)
                if isinstance(arg.value, VariableNode):
                    value = self.variables.get(arg.value.name.value)
                    if isinstance(value, list):
                        return max(len(value), 1)
        return DEFAULT_PAGE.get(field.name.value, 1)

    def walk(
        self, selection_set: Any, depth: int, introspection: bool, seen: frozenset[str]
    ) -> tuple[int, int]:
        """(max depth below, cost) of a selection set entered at ``depth``."""
        if selection_set is None:
            return depth - 1, 0
        max_depth, cost = depth - 1, 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                inner_intro = introspection or name in ("__schema", "__type")
                sub_depth, sub_cost = self.walk(
                    selection.selection_set, depth + 1, inner_intro, seen
                )
                max_depth = max(max_depth, depth if selection.selection_set is None else sub_depth)
                if inner_intro:
                    cost += 1 + sub_cost
                else:
                    cost += 1 + sub_cost * self._multiplier(selection)
            elif isinstance(selection, InlineFragmentNode):
                sub_depth, sub_cost = self.walk(selection.selection_set, depth, introspection, seen)
                max_depth, cost = max(max_depth, sub_depth), cost + sub_cost
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # validation reports these
                    continue
                sub_depth, sub_cost = self.walk(
                    fragment.selection_set, depth, introspection, seen | {name}
                )
                max_depth, cost = max(max_depth, sub_depth), cost + sub_cost
        return max_depth, cost


def _introspection_only(op: OperationDefinitionNode) -> bool:
    return all(
        isinstance(s, FieldNode) and s.name.value.startswith("__")
        for s in op.selection_set.selections
    )


def measure(
    document: Any, operation_name: str | None, variables: dict[str, Any] | None
) -> QueryCost:
    """Depth and complexity of the operation that will run."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    walker = _Walker(fragments, variables or {})
    depth = complexity = 0
    for op in operations:
        d, c = walker.walk(op.selection_set, 1, _introspection_only(op), frozenset())
        if _introspection_only(op):
            # Checked against its own limit below.
            d = -d
        depth = d if abs(d) > abs(depth) else depth
        complexity = max(complexity, c)
    return QueryCost(depth=depth, complexity=complexity)


def enforce(
    document: Any,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    *,
    max_depth: int,
    max_complexity: int,
) -> QueryCost:
    """Raise a BAD_USER_INPUT failure when the operation is too deep or too costly."""
    cost = measure(document, operation_name, variables)
    limit = max_depth if cost.depth >= 0 else max(INTROSPECTION_DEPTH, max_depth)
    if abs(cost.depth) > limit:
        raise GraphQLFailure(
            f"query is nested {abs(cost.depth)} levels deep; the limit is {limit}",
            "BAD_USER_INPUT",
            field="query",
        )
    if cost.complexity > max_complexity:
        raise GraphQLFailure(
            f"query complexity {cost.complexity} exceeds the limit of {max_complexity}; "
            "ask for fewer items (smaller `first`) or fewer nested fields",
            "BAD_USER_INPUT",
            field="query",
        )
    return cost


# Root query fields resolved through a per-request loader: one batch call for all.
LOADER_FIELDS = {"products": "products", "product": "products", "user": "users"}
# Root fields that call every service when not narrowed to one queue.
FAN_OUT_FIELDS = {"deadLetters": ("queue", 4)}
FREE_FIELDS = frozenset({"__typename", "__schema", "__type"})
PASSWORD_MUTATIONS = frozenset({"register", "login"})


@dataclass(frozen=True)
class CallEstimate:
    """Worst-case service calls of an operation, and its mutation fields."""

    calls: int
    mutations: int
    password_mutations: int


def _value(node: Any, variables: dict[str, Any]) -> Any:
    """An argument's value with variables substituted (for de-duplication keys)."""
    if isinstance(node, VariableNode):
        return variables.get(node.name.value)
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, ListValueNode):
        return [_value(v, variables) for v in node.values]
    if isinstance(node, ObjectValueNode):
        return {f.name.value: _value(f.value, variables) for f in node.fields}
    if isinstance(node, BooleanValueNode | IntValueNode | FloatValueNode | StringValueNode):
        return node.value
    if isinstance(node, EnumValueNode):
        return node.value
    return repr(node)


def _operation(
    document: Any, operation_name: str | None
) -> tuple[OperationDefinitionNode | None, dict[str, FragmentDefinitionNode]]:
    """The operation that will run (None unless exactly one matches) and the fragments."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return (operations[0] if len(operations) == 1 else None), fragments


def root_field_names(document: Any, operation_name: str | None) -> frozenset[str] | None:
    """The root fields of the operation that will run (fragments expanded)."""
    op, fragments = _operation(document, operation_name)
    if op is None:
        return None
    return frozenset(f.name.value for f in _root_fields(op.selection_set, fragments, frozenset()))


def _root_fields(
    selection_set: Any, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str]
) -> list[FieldNode]:
    fields: list[FieldNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            fields.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            fields.extend(_root_fields(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                fields.extend(_root_fields(fragment.selection_set, fragments, seen | {name}))
    return fields


def operation_selects(info: Any, name: str) -> bool:
    """Whether the operation a resolver runs in selects the field ``name`` anywhere."""
    return _selects(info.operation.selection_set, name, info.fragments or {})


def _selects(selection_set: Any, name: str, fragments: dict[str, FragmentDefinitionNode]) -> bool:
    """Whether ``name`` is selected anywhere below (fragments expanded once)."""
    stack, seen = [selection_set], set()
    while stack:
        current = stack.pop()
        if current is None:
            continue
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value == name:
                    return True
                stack.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and selection.name.value not in seen:
                    seen.add(selection.name.value)
                    stack.append(fragment.selection_set)
    return False


def estimate_calls(
    document: Any, operation_name: str | None, variables: dict[str, Any] | None
) -> CallEstimate:
    """Service calls and mutation fields of the operation that will run."""
    variables = variables or {}
    op, fragments = _operation(document, operation_name)
    if op is None:
        return CallEstimate(0, 0, 0)
    fields = [
        f
        for f in _root_fields(op.selection_set, fragments, frozenset())
        if f.name.value not in FREE_FIELDS
    ]
    kind = str(op.operation_type)
    if kind == "mutation":
        password = sum(1 for f in fields if f.name.value in PASSWORD_MUTATIONS)
        return CallEstimate(len(fields), len(fields), password)
    if kind != "query":
        return CallEstimate(0, 0, 0)
    distinct: dict[tuple[str, str], int] = {}
    loaders: set[str] = set()
    for f in fields:
        name = f.name.value
        args = {a.name.value: _value(a.value, variables) for a in f.arguments or []}
        if name in LOADER_FIELDS:
            loaders.add(LOADER_FIELDS[name])
            continue
        cost = 1
        if name in FAN_OUT_FIELDS:
            narrowing, fan_out = FAN_OUT_FIELDS[name]
            cost = 1 if args.get(narrowing) else fan_out
        if name == "orders" and _selects(f.selection_set, "product", fragments):
            loaders.add("products")
        distinct[(name, json.dumps(args, sort_keys=True, default=str))] = cost
    return CallEstimate(sum(distinct.values()) + len(loaders), 0, 0)


def enforce_calls(
    document: Any,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    *,
    max_calls: int,
    max_mutations: int,
    max_password_mutations: int,
) -> CallEstimate:
    """Raise a BAD_USER_INPUT failure when the operation would cost too many calls."""
    estimate = estimate_calls(document, operation_name, variables)
    if estimate.password_mutations > max_password_mutations:
        raise GraphQLFailure(
            f"{estimate.password_mutations} register/login fields in one request; the limit "
            f"is {max_password_mutations}",
            "BAD_USER_INPUT",
            field="query",
        )
    if estimate.mutations > max_mutations:
        raise GraphQLFailure(
            f"{estimate.mutations} mutation fields in one request; the limit is {max_mutations}",
            "BAD_USER_INPUT",
            field="query",
        )
    if estimate.calls > max_calls:
        raise GraphQLFailure(
            f"this request needs about {estimate.calls} service calls; the limit is "
            f"{max_calls} (aliases of one field with the same arguments count once)",
            "BAD_USER_INPUT",
            field="query",
        )
    return estimate
