"""The Tartiflette engine: SDL from ``schema/*.graphql``, resolvers from ``resolvers/``.

Tartiflette keeps resolvers in a process-wide registry per schema name, so the engine
is cooked once per process and shared; everything request-specific travels in the
execution context (:class:`herald_gateway.context.RequestContext`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tartiflette import Engine

from herald_gateway.errors import error_coercer

SCHEMA_NAME = "herald"
SCHEMA_DIR = Path(__file__).parent / "schema"
_MODULES = [
    "herald_gateway.resolvers.scalars",
    "herald_gateway.resolvers.query",
    "herald_gateway.resolvers.mutation",
    "herald_gateway.resolvers.subscription",
    "herald_gateway.resolvers.types",
    "herald_gateway.resolvers.why",
]

_engine: Engine | None = None
_lock: asyncio.Lock | None = None


async def dict_resolver(parent: Any, args: dict[str, Any], ctx: Any, info: Any) -> Any:
    """Default field resolver: the resolvers return dicts, so read keys first.

    Tartiflette's own default tries attributes first, which finds ``dict.items`` for a
    field named ``items``.
    """
    if isinstance(parent, dict):
        return parent.get(info.field_name)
    return getattr(parent, info.field_name, None)


def schema_sdl() -> str:
    """The public schema as one SDL text (served at ``/graphql/schema.graphql``)."""
    return "\n".join(p.read_text() for p in sorted(SCHEMA_DIR.glob("*.graphql")))


async def get_engine() -> Engine:
    """The process's cooked engine."""
    global _engine, _lock
    if _engine is not None:
        return _engine
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _engine is None:
            engine = Engine(
                sdl=str(SCHEMA_DIR),
                schema_name=SCHEMA_NAME,
                error_coercer=error_coercer,
                custom_default_resolver=dict_resolver,
                modules=_MODULES,
            )
            await engine.cook()
            _engine = engine
    return _engine


def parse(engine: Engine, query: str) -> tuple[Any, list[Any]]:
    """Parse and validate (cached by query text): ``(document, errors)``."""
    # Tartiflette's own parse-and-validate cache; its attribute is typed Optional.
    parse_and_validate = engine._cached_parse_and_validate_query
    assert parse_and_validate is not None, "engine not built"
    return parse_and_validate(query, engine._schema)


def operation_type(document: Any, operation_name: str | None) -> str | None:
    """``query``, ``mutation`` or ``subscription`` of the operation to run."""
    ops = [d for d in document.definitions if type(d).__name__ == "OperationDefinitionNode"]
    if operation_name:
        ops = [o for o in ops if o.name is not None and o.name.value == operation_name]
    if len(ops) != 1:
        return None
    return str(ops[0].operation_type)
