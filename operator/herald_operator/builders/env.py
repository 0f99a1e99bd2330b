"""What the Job pods take from the namespace they run in, and what to say when some of
it is not there (``JobEnvMissing``): the Secrets and ConfigMaps loaded whole
(``envFrom``) and the ServiceAccount.

A pod that references a Secret or ConfigMap that does not exist never starts
(``CreateContainerConfigError``) and its Job hangs until its deadline; the operator
checks first and says so on the resource instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from herald_operator.builders.common import SpecError
from herald_operator.config import OperatorSettings
from herald_operator.constants import JOB_ENV_MISSING

# The setting that names each kind of reference (for the message).
SETTING_OF = {
    "Secret": "HERALD_OPERATOR_JOB_ENV_FROM_SECRETS",
    "ConfigMap": "HERALD_OPERATOR_JOB_ENV_FROM_CONFIG_MAPS",
    "ServiceAccount": "HERALD_OPERATOR_SERVICE_ACCOUNT",
}

Ref = tuple[str, str]


def job_env_refs(settings: OperatorSettings) -> list[Ref]:
    """``(kind, name)`` of every object the Job pods reference, in the settings' order."""
    refs = [("Secret", name) for name in settings.job_env_from_secrets]
    refs += [("ConfigMap", name) for name in settings.job_env_from_config_maps]
    if settings.service_account:
        refs.append(("ServiceAccount", settings.service_account))
    return refs


def job_env_missing(
    namespace: str, missing: Iterable[Ref], unreadable: Iterable[Ref] = ()
) -> SpecError | None:
    """The ``JobEnvMissing`` error for these references (None when all are there)."""
    missing, unreadable = list(missing), list(unreadable)
    if not missing and not unreadable:
        return None
    parts = []
    if missing:
        names = ", ".join(f"{kind} {name}" for kind, name in missing)
        parts.append(f"{names} not found in namespace {namespace}")
    if unreadable:
        names = ", ".join(f"{kind} {name}" for kind, name in unreadable)
        parts.append(f"{names} in namespace {namespace} not readable by the operator")
    settings = sorted({SETTING_OF[kind] for kind, _ in missing + unreadable})
    return SpecError(
        JOB_ENV_MISSING,
        f"the Job pods need {'; '.join(parts)}: create them there (the chart installs "
        f"them in its namespace) or correct {', '.join(settings)}; no Job starts until then",
    )
