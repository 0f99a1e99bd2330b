"""Load and validate ``NotificationCampaign`` and ``Schedule`` documents.

From a YAML file (the local runner, the CLI) or a cluster object (the operator), a
document goes through the same checks: the CRD's schema with its defaults
(:mod:`.schema`), then what a schema cannot express: the cron expression (croniter),
the time zone (zoneinfo), the template's variables, the task parameters and the
one-shot instant.

Every error names the source and the field, e.g.
``examples/campaigns/bad.yaml: NotificationCampaign/spring-sale: spec.schedule: ...``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from herald_common.resources.cron import (
    LOCAL_INTERVAL_ANNOTATION,
    parse_interval,
    validate_cron,
    validate_time_zone,
)
from herald_common.resources.models import NotificationCampaign, Resource, Schedule
from herald_common.resources.schema import (
    API_VERSION,
    CRD_FILES,
    KubeYamlLoader,
    apply_defaults,
    describe,
    field_path,
    openapi_schema,
    priority,
    validator,
)
from herald_common.resources.tasks import validate_parameters
from herald_common.resources.templates import TemplateError, check_template

# A CronJob's name is limited to 52 characters; the operator names it after the resource.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 52
# The metadata fields a resource keeps from a cluster object.
_METADATA_KEYS = ("name", "namespace", "annotations", "labels", "generation", "uid")


class ResourceError(ValueError):
    """An invalid resource; the message names the source and the field."""

    def __init__(self, source: str, message: str, *, field: str | None = None, ref: str = ""):
        where = f"{source}: {ref + ': ' if ref else ''}"
        super().__init__(f"{where}{field + ': ' if field else ''}{message}")
        self.source = source
        self.field = field
        self.message = message
        self.ref = ref

    @property
    def reason(self) -> str:
        """The error without its source: ``spec.schedule: invalid cron ...``."""
        return f"{self.field + ': ' if self.field else ''}{self.message}"


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
    errors = sorted(validator(kind).iter_errors(doc), key=priority)
    if errors:
        field, message = describe(errors[0])
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
        field = field_path(err["loc"])
        raise ResourceError(source, err["msg"], field=field, ref=ref) from exc


def from_object(obj: Mapping[str, Any], source: str = "<cluster>") -> Resource:
    """Validate a resource read from the API server (a watch event's body).

    The server already applied the schema; what is checked again here are the rules a
    schema cannot express. Server-managed metadata (resourceVersion, managedFields, ...)
    and the status are left out.
    """
    meta = obj.get("metadata") or {}
    document = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: copy.deepcopy(meta[k]) for k in _METADATA_KEYS if meta.get(k) is not None},
        "spec": copy.deepcopy(dict(obj.get("spec") or {})),
    }
    return parse_resource(document, source)


def load_text(text: str, source: str = "<input>") -> list[Resource]:
    """Every resource in a (multi-document) YAML text."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=KubeYamlLoader) if d is not None]
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
