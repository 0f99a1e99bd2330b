"""Helpers for the chart, image and monitoring tests: render charts/herald with helm."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from herald_testing.kube import KubeTools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "herald"
RELEASE = "demo"
NAMESPACE = "herald-test"

# The value sets the chart ships (beside the defaults) and the ones the tests add.
VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "external": ["values-external.yaml"],
    "monitoring": ["values-monitoring.yaml"],
    "ha": ["values-ha.yaml"],
    "ha-external": ["values-external.yaml", "values-ha.yaml"],
    "kind": ["values-kind.yaml"],
}
EXTRA_SETS: dict[str, list[str]] = {
    "ingress-tls": [
        "ingress.host=herald.example.com",
        "ingress.tls.enabled=true",
        "ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt",
    ],
    "hpa": [f"{c}.autoscaling.enabled=true" for c in ("users", "gateway", "notifications")],
    "cluster-wide-operator": ["operator.watchNamespaces={*}"],
    "email": [
        "ingress.host=shop.example.com",
        "ingress.tls.enabled=true",
        "notifications.email.smtp.host=smtp.example.com",
        "notifications.email.smtp.existingSecret=relay-credentials",
        "notifications.email.egressCidrs={192.0.2.0/24}",
    ],
    "external-urls": [
        "mongodb.enabled=false",
        "mongodb.external.uri=mongodb://db.example.com:27017/?replicaSet=rs0",
        "rabbitmq.enabled=false",
        "rabbitmq.external.url=amqps://herald:pw@mq.example.com:5671/herald",
        "redis.enabled=false",
        "redis.external.url=rediss://cache.example.com:6380/0",
    ],
}

Render = Callable[..., list[dict[str, Any]]]


def helm_template(
    tools: KubeTools,
    files: Iterable[str] = (),
    sets: Iterable[str] = (),
    *,
    namespace: str = NAMESPACE,
    include_crds: bool = False,
    check: bool = True,
) -> Any:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    for f in files:
        args += ["-f", str(CHART / f)]
    for s in sets:
        args += ["--set", s]
    if include_crds:
        args.append("--include-crds")
    return tools.run("helm", *args, check=check)


@pytest.fixture(scope="session")
def render(kube_tools: KubeTools) -> Render:
    """``render(files=[...], sets=[...])`` -> the rendered objects (cached per arguments)."""
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def _render(
        files: Iterable[str] = (), sets: Iterable[str] = (), **kw: Any
    ) -> list[dict[str, Any]]:
        key = (tuple(files), tuple(sets), tuple(sorted(kw.items())))
        if key not in cache:
            out = helm_template(kube_tools, files, sets, **kw).stdout
            cache[key] = [d for d in yaml.safe_load_all(out) if d]
        return cache[key]

    return _render


def all_sets() -> dict[str, tuple[list[str], list[str]]]:
    sets = {name: (files, []) for name, files in VALUE_SETS.items()}
    sets.update({name: ([], s) for name, s in EXTRA_SETS.items()})
    return sets
