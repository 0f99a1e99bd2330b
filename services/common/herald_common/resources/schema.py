"""The CRDs as schemas: defaults and validation the way the API server applies them.

The CRDs in the repository's ``crds/`` (packaged here as ``crds/``, a test keeps the
copies identical) are the one definition of both kinds. A document is checked against
the served version's ``openAPIV3Schema`` with ``jsonschema`` after the schema's defaults
are applied, as the API server does, and unknown fields are refused (like
``kubectl apply``'s strict field validation), so a file that the local runner accepts is
one the cluster accepts, and the other way round.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError as SchemaError

GROUP = "herald.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_FILES = {
    "NotificationCampaign": "herald.io_notificationcampaigns.yaml",
    "Schedule": "herald.io_schedules.yaml",
}
PLURALS = {"NotificationCampaign": "notificationcampaigns", "Schedule": "schedules"}


class KubeYamlLoader(yaml.SafeLoader):
    """YAML loader that keeps timestamps as strings, as the Kubernetes API server does
    (``runAt: 2030-01-01T09:00:00Z`` is a string field, not a datetime)."""


KubeYamlLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def crd_text(kind: str) -> str:
    """The packaged CRD manifest of ``kind`` (identical to the repository's ``crds/``)."""
    return (importlib_resources.files(__package__) / "crds" / CRD_FILES[kind]).read_text()


@cache
def crd(kind: str) -> dict[str, Any]:
    """The CRD of ``kind``, parsed."""
    loaded: dict[str, Any] = yaml.load(crd_text(kind), Loader=KubeYamlLoader)  # noqa: S506 - safe loader subclass
    return loaded


@cache
def openapi_schema(kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the served version of ``kind``."""
    for version in crd(kind)["spec"]["versions"]:
        if version["name"] == VERSION:
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"CRD of {kind} has no version {API_VERSION}")


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD does not preserve them.

    (A CRD may not say ``additionalProperties: false``; the API server prunes or, with
    strict field validation, rejects unknown fields instead. This reproduces the latter.)
    """
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in out
    ):
        out["additionalProperties"] = False
    return out


@cache
def validator(kind: str) -> Draft7Validator:
    """A strict validator of ``kind`` documents (metadata and status are not checked)."""
    schema = _strict(openapi_schema(kind))
    # Metadata is validated separately (name rules) and may carry anything else.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"].pop("status", None)
    return Draft7Validator(schema)


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Fill in the schema's defaults the way the API server does (top-down)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def field_path(parts: Iterable[Any]) -> str:
    """``["spec", "audience", "userIds", 0]`` → ``spec.audience.userIds[0]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(error: SchemaError) -> tuple[str, str]:
    """(field, message) for one schema violation, phrased for people."""
    field = field_path(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [r for r in error.validator_value if r not in instance]
        name = missing[0] if missing else "?"
        return field_path([*error.absolute_path, name]), "required field is missing"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set((error.schema.get("properties") or {}).keys())
        extra = sorted(set(instance) - allowed)
        name = extra[0] if extra else "?"
        return (
            field_path([*error.absolute_path, name]),
            f"unknown field; allowed: {', '.join(sorted(allowed))}",
        )
    if error.validator == "oneOf":
        options = ["/".join(branch.get("required", [])) for branch in error.validator_value or []]
        return field, f"set exactly one of: {', '.join(options)}"
    if error.validator == "enum":
        return field, f"{instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "pattern":
        return field, f"{instance!r} does not have the expected format"
    return field, error.message


def priority(error: SchemaError) -> tuple[int, int, str]:
    """Sort key: the error most worth showing first."""
    # An unknown field (often a typo) explains the other errors it causes (a required
    # field "missing"); then the most specific (deepest) error; "one of" errors last.
    rank = {"additionalProperties": 0, "oneOf": 2}.get(str(error.validator), 1)
    return rank, -len(error.absolute_path), field_path(error.absolute_path)
