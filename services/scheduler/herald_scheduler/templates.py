"""Campaign content templates: per-user rendering.

A template is ``{title, body, data}``; ``{variable}`` placeholders (Python format
syntax, ``{{``/``}}`` for literal braces) in the title, the body and every string inside
``data`` are replaced per user. Which variables exist and the check that rejects
anything else (:func:`check_template`) live with the resource models in
:mod:`herald_common.resources.templates`, shared with the operator; they are re-exported
here for the fan-out.

A user without a known value gets a neutral fallback (see :data:`FALLBACKS`), so a
template never renders an empty hole or the literal placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herald_common.resources.templates import (
    VARIABLES,
    TemplateError,
    check_template,
    variables_of,
)

__all__ = [
    "FALLBACKS",
    "VARIABLES",
    "TemplateError",
    "UserContext",
    "check_template",
    "render",
    "variables_of",
]

FALLBACKS: dict[str, str] = {
    "name": "there",
    "first_name": "there",
    "favorite_category": "our catalog",
    "favourite_category": "our catalog",
    "product_name": "our latest picks",
}


@dataclass(frozen=True)
class UserContext:
    """What is known about one user when rendering."""

    name: str | None = None
    favorite_category: str | None = None
    product_name: str | None = None

    def variables(self) -> dict[str, str]:
        name = (self.name or "").strip()
        values = {
            "name": name,
            "first_name": name.split()[0] if name else "",
            "favorite_category": self.favorite_category or "",
            "favourite_category": self.favorite_category or "",
            "product_name": self.product_name or "",
        }
        return {k: v or FALLBACKS[k] for k, v in values.items()}


def _render_value(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(variables)
    if isinstance(value, Mapping):
        return {k: _render_value(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, variables) for v in value]
    return value


def render(template: Mapping[str, Any], context: UserContext) -> dict[str, Any]:
    """The content for one user: ``{title, body, data}`` with variables replaced.

    The template must have passed :func:`check_template`.
    """
    variables = context.variables()
    return {
        "title": str(template["title"]).format_map(variables),
        "body": str(template["body"]).format_map(variables),
        "data": _render_value(dict(template.get("data") or {}), variables),
    }
