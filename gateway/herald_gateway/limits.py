"""Query depth and complexity limits, checked on the parsed document before execution.

Depth counts nested fields (fragments expanded). Complexity is an upper bound on the
work a query asks for: every field costs 1, and the subtree of a list field is
multiplied by its page size (``first``/``limit``, the number of ``ids``, or the field's
default page size). Introspection (``__schema``/``__type``) has its own, larger depth
limit so GraphiQL's schema query works, and costs 1 per field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tartiflette.language.ast import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
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
