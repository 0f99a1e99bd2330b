"""Campaign content templates: which variables they may use (validation).

A template is ``{title, body, data}``; ``{variable}`` placeholders (Python format
syntax, ``{{``/``}}`` for literal braces) in the title, the body and every string inside
``data`` are replaced per user by the scheduler's fan-out. Only the variables in
:data:`VARIABLES` exist; anything else (an unknown name, ``{0}``, ``{name.upper}``,
``{name!r}``, ``{name:>10}``) is rejected by :func:`check_template` when the campaign is
loaded, reconciled by the operator or fired, never at send time.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

# The variables a template may use; favourite_category is accepted as a spelling of
# favorite_category.
VARIABLES = ("name", "first_name", "favorite_category", "favourite_category", "product_name")
_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be rendered; ``field`` is the path inside the template."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def variables_of(text: str, field: str = "template") -> set[str]:
    """The variable names ``text`` uses; raises :class:`TemplateError` if malformed."""
    names: set[str] = set()
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:  # a single "{" or "}" and the like
        raise TemplateError(
            field, f"malformed placeholder ({exc}); use {{{{ or }}}} for a literal brace"
        ) from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise TemplateError(field, "positional placeholders ({} or {0}) are not allowed")
        if not name.isidentifier():
            raise TemplateError(field, f"placeholder {{{name}}} must be a plain variable name")
        if spec or conversion:
            raise TemplateError(
                field, f"placeholder {{{name}}} must not carry a format spec or conversion"
            )
        if name not in VARIABLES:
            raise TemplateError(
                field, f"unknown variable {{{name}}}; allowed: {', '.join(VARIABLES)}"
            )
        names.add(name)
    return names


def _walk_strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out.extend(_walk_strings(item, f"{path}.{key}"))
        return out
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            out.extend(_walk_strings(item, f"{path}[{i}]"))
        return out
    return []


def check_template(template: Mapping[str, Any], field: str = "template") -> set[str]:
    """Validate every placeholder of a ``{title, body, data}`` template; returns the
    variables it uses."""
    used: set[str] = set()
    for key in ("title", "body"):
        used |= variables_of(str(template.get(key, "")), f"{field}.{key}")
    for path, text in _walk_strings(template.get("data") or {}, f"{field}.data"):
        used |= variables_of(text, path)
    return used
