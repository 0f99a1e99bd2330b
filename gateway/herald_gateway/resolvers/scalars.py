"""The ``JSON`` scalar: any JSON value (notification content, samples, message bodies)."""

from __future__ import annotations

from typing import Any

from tartiflette import Scalar
from tartiflette.language.ast import (
    BooleanValueNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
)

from herald_gateway.engine import SCHEMA_NAME


def _literal(node: Any) -> Any:
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, BooleanValueNode):
        return bool(node.value)
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode):
        return float(node.value)
    if isinstance(node, StringValueNode):
        return node.value
    if isinstance(node, ListValueNode):
        return [_literal(v) for v in node.values]
    if isinstance(node, ObjectValueNode):
        return {f.name.value: _literal(f.value) for f in node.fields}
    raise ValueError("not a JSON literal")


@Scalar("JSON", schema_name=SCHEMA_NAME)
class JSONScalar:
    """Passes JSON values through unchanged."""

    @staticmethod
    def coerce_output(value: Any) -> Any:
        return value

    @staticmethod
    def coerce_input(value: Any) -> Any:
        return value

    @staticmethod
    def parse_literal(ast: Any) -> Any:
        return _literal(ast)
