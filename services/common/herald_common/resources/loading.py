"""NotificationCampaign and Schedule resources: load YAML files the way the cluster would.

The CRDs in ``crds/`` (packaged as ``herald_scheduler/crds``) are the one definition of
both kinds. A file is checked against the CRD's ``openAPIV3Schema`` with ``jsonschema``
after the schema's defaults are applied, as the API server does, and unknown fields are
refused (like ``kubectl apply``'s strict field validation), so a file that the local
runner accepts is one the cluster accepts, and the other way round. On top of the schema
come the checks a schema cannot express: the cron expression (croniter), the time zone
(zoneinfo), the template's variables and the one-shot instant.

Every error names the file and the field, e.g.
``examples/campaigns/bad.yaml: NotificationCampaign/spring-sale: spec.schedule: ...``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any, Literal

import yaml
from herald_common.events import CampaignAudience, CampaignFired, CampaignTemplate
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from herald_scheduler.cron import (
    LOCAL_INTERVAL_ANNOTATION,
    parse_interval,
    validate_cron,
    validate_time_zone,
)
from herald_scheduler.tasks import validate_parameters
from herald_scheduler.templates import TemplateError, check_template

API_VERSION = "herald.io/v1alpha1"
CRD_FILES = {
    "NotificationCampaign": "herald.io_notificationcampaigns.yaml",
    "Schedule": "herald.io_schedules.yaml",
}
# A CronJob's name is limited to 52 characters; the operator names it after the resource.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 52


class ResourceError(ValueError):
    """An invalid resource file; the message names the file and the field."""

    def __init__(self, source: str, message: str, *, field: str | None = None, ref: str = ""):
        where = f"{source}: {ref + ': ' if ref else ''}"
        super().__init__(f"{where}{field + ': ' if field else ''}{message}")
        self.source = source
        self.field = field
        self.message = message


# --- YAML --------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML loader that keeps timestamps as strings, as the Kubernetes API server does
    (``runAt: 2030-01-01T09:00:00Z`` is a string field, not a datetime)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# --- schemas -----------------------------------------------------------------------------


def crd_text(kind: str) -> str:
    """The packaged CRD manifest of ``kind`` (identical to the repository's ``crds/``)."""
    return (importlib_resources.files("herald_scheduler") / "crds" / CRD_FILES[kind]).read_text()


@cache
def crd(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(crd_text(kind), Loader=_Loader)  # noqa: S506 - safe loader subclass
    return loaded


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
def openapi_schema(kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the served version of ``kind``."""
    for version in crd(kind)["spec"]["versions"]:
        if version["name"] == API_VERSION.split("/")[1]:
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"CRD of {kind} has no version {API_VERSION}")


@cache
def _validator(kind: str) -> Draft7Validator:
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


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: SchemaError) -> tuple[str, str]:
    """(field, message) for one schema violation, phrased for people."""
    field = _path(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [r for r in error.validator_value if r not in instance]
        name = missing[0] if missing else "?"
        return _path([*error.absolute_path, name]), "required field is missing"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set((error.schema.get("properties") or {}).keys())
        extra = sorted(set(instance) - allowed)
        name = extra[0] if extra else "?"
        return (
            _path([*error.absolute_path, name]),
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


def _priority(error: SchemaError) -> tuple[int, int, str]:
    # An unknown field (often a typo) explains the other errors it causes (a required
    # field "missing"); then the most specific (deepest) error; "one of" errors last.
    rank = {"additionalProperties": 0, "oneOf": 2}.get(str(error.validator), 1)
    return rank, -len(error.absolute_path), _path(error.absolute_path)


# --- models ------------------------------------------------------------------------------


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Metadata(_Camel):
    name: str
    namespace: str = "default"
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None


class Audience(_Camel):
    categories: list[str] = Field(default_factory=list)
    user_ids: list[str] = Field(default_factory=list, alias="userIds")


class Template(_Camel):
    title: str
    body: str
    data: dict[str, Any] = Field(default_factory=dict)


class CampaignSpec(_Camel):
    """``spec`` of a NotificationCampaign."""

    type: Literal["promotion", "recommendation"]
    schedule: str | None = None
    time_zone: str = Field(default="UTC", alias="timeZone")
    run_at: AwareDatetime | None = Field(default=None, alias="runAt")
    audience: Audience = Field(default_factory=Audience)
    template: Template
    suspend: bool = False
    dry_run: bool = Field(default=False, alias="dryRun")


class ScheduleSpec(_Camel):
    """``spec`` of a Schedule."""

    task: Literal["order-sweep", "recommendation-batch"]
    schedule: str
    time_zone: str = Field(default="UTC", alias="timeZone")
    parameters: dict[str, Any] = Field(default_factory=dict)
    suspend: bool = False
    requested_run_at: AwareDatetime | None = Field(default=None, alias="requestedRunAt")


class _Resource(_Camel):
    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: Metadata
    source: str = ""

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.metadata.name}"

    @property
    def local_interval(self) -> Any:
        """The ``herald.io/local-interval`` annotation as a timedelta, or None."""
        raw = self.metadata.annotations.get(LOCAL_INTERVAL_ANNOTATION)
        return parse_interval(raw) if raw else None


class NotificationCampaign(_Resource):
    kind: Literal["NotificationCampaign"]
    spec: CampaignSpec

    def fired(
        self, *, run_id: str, fired_at: datetime, dry_run: bool | None = None
    ) -> CampaignFired:
        """The ``campaign.fired`` payload of one firing of this campaign."""
        spec = self.spec
        return CampaignFired(
            campaign=self.metadata.name,
            namespace=self.metadata.namespace,
            run_id=run_id,
            type=spec.type,
            audience=CampaignAudience(
                categories=list(spec.audience.categories), user_ids=list(spec.audience.user_ids)
            ),
            template=CampaignTemplate(
                title=spec.template.title, body=spec.template.body, data=dict(spec.template.data)
            ),
            dry_run=spec.dry_run if dry_run is None else dry_run,
            fired_at=fired_at,
        )


class Schedule(_Resource):
    kind: Literal["Schedule"]
    spec: ScheduleSpec


Resource = NotificationCampaign | Schedule


# --- loading -----------------------------------------------------------------------------


def parse_resource(document: Any, source: str = "<input>") -> Resource:
    """Validate one parsed YAML document and return the typed resource."""
    if not isinstance(document, dict):
        raise ResourceError(source, "must be a mapping (a Kubernetes object)")
    kind = document.get("kind")
    if document.get("apiVersion") != API_VERSION:
        raise ResourceError(
            source,
            f"must be {API_VERSION!r}, got {document.get('apiVersion')!r}",
            field="apiVersion",
        )
    if kind not in CRD_FILES:
        raise ResourceError(
            source, f"must be one of {', '.join(CRD_FILES)}, got {kind!r}", field="kind"
        )
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise ResourceError(source, "required field is missing", field="metadata.name")
    name = metadata["name"]
    ref = f"{kind}/{name}"
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > NAME_MAX:
        raise ResourceError(
            source,
            f"{name!r} must be lowercase letters, digits and '-', at most {NAME_MAX} characters",
            field="metadata.name",
            ref=ref,
        )
    annotations = metadata.get("annotations") or {}
    if LOCAL_INTERVAL_ANNOTATION in annotations:
        try:
            parse_interval(str(annotations[LOCAL_INTERVAL_ANNOTATION]))
        except ValueError as exc:
            raise ResourceError(
                source,
                str(exc),
                field=f"metadata.annotations[{LOCAL_INTERVAL_ANNOTATION}]",
                ref=ref,
            ) from exc

    schema = openapi_schema(kind)
    doc = apply_defaults(schema, copy.deepcopy(document))
    spec = doc.get("spec")
    # The cron and time zone checks say more than the schema's pattern does: run them
    # first when those fields are there.
    if isinstance(spec, dict):
        if isinstance(spec.get("schedule"), str):
            try:
                validate_cron(spec["schedule"])
            except ValueError as exc:
                raise ResourceError(source, str(exc), field="spec.schedule", ref=ref) from exc
        if isinstance(spec.get("timeZone"), str):
            try:
                validate_time_zone(spec["timeZone"])
            except ValueError as exc:
                raise ResourceError(source, str(exc), field="spec.timeZone", ref=ref) from exc
    errors = sorted(_validator(kind).iter_errors(doc), key=_priority)
    if errors:
        field, message = _describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ResourceError(source, message + more, field=field, ref=ref)

    if kind == "NotificationCampaign":
        try:
            check_template(spec["template"], "spec.template")
        except TemplateError as exc:
            raise ResourceError(source, exc.message, field=exc.field, ref=ref) from exc
    else:
        try:
            validate_parameters(spec["task"], spec.get("parameters") or {})
        except ValueError as exc:
            key, _, message = str(exc).partition(": ")
            raise ResourceError(source, message, field=f"spec.parameters.{key}", ref=ref) from exc

    model: type[Resource] = NotificationCampaign if kind == "NotificationCampaign" else Schedule
    try:
        return model.model_validate({**doc, "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _path(err["loc"])
        raise ResourceError(source, err["msg"], field=field, ref=ref) from exc


def load_text(text: str, source: str = "<input>") -> list[Resource]:
    """Every resource in a (multi-document) YAML text."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise ResourceError(source, f"invalid YAML: {exc}") from exc
    if not documents:
        raise ResourceError(source, "no resource in file")
    return [parse_resource(d, source) for d in documents]


def load_file(path: str | Path) -> list[Resource]:
    """Every resource in one YAML file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ResourceError(str(p), f"cannot read: {exc.strerror or exc}") from exc
    return load_text(text, str(p))


def resource_files(directories: Iterable[str | Path]) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files under ``directories`` (recursively), sorted."""
    files: list[Path] = []
    for directory in directories:
        d = Path(directory)
        if d.is_file():
            files.append(d)
            continue
        files.extend(p for p in d.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return sorted(set(files))


def load_directories(
    directories: Iterable[str | Path],
) -> tuple[list[Resource], list[ResourceError]]:
    """Load every resource under ``directories``; invalid files are returned as errors
    (the valid ones still load). A second resource with the same kind and name is an
    error."""
    loaded: list[Resource] = []
    errors: list[ResourceError] = []
    seen: dict[str, str] = {}
    for path in resource_files(directories):
        try:
            found = load_file(path)
        except ResourceError as exc:
            errors.append(exc)
            continue
        for res in found:
            if res.ref in seen:
                errors.append(
                    ResourceError(
                        str(path),
                        f"already defined in {seen[res.ref]}",
                        field="metadata.name",
                        ref=res.ref,
                    )
                )
                continue
            seen[res.ref] = str(path)
            loaded.append(res)
    return loaded, errors
