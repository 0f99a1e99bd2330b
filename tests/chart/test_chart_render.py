"""charts/herald rendered with the real helm: lint, schema, and policy checks on every
shipped value set (no container as root, resources and probes everywhere, only the
gateway exposed, Services and NetworkPolicies that select pods, labels, monitoring)."""

from __future__ import annotations

import filecmp
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from herald_testing.kube import KubeTools, selects

from .conftest import CHART, NAMESPACE, RELEASE, ROOT, Render, all_sets, helm_template

SETS = all_sets()
HERALD_SERVICES = {"users": 4001, "notifications": 4002, "recommendations": 4003, "scheduler": 4004}
COMPONENTS = {**HERALD_SERVICES, "gateway": 5000}
INFRA = {"mongodb", "rabbitmq", "redis"}
WORKLOADS = {"Deployment", "StatefulSet"}
FULLNAME = f"{RELEASE}-herald"


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_templates(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"])
        for d in docs
        if d["kind"] in WORKLOADS
    ]


def component_of(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


@pytest.fixture(params=sorted(SETS), ids=sorted(SETS))
def rendered(request: pytest.FixtureRequest, render: Render) -> tuple[str, list[dict[str, Any]]]:
    files, sets = SETS[request.param]
    return request.param, render(files, sets)


def test_helm_lint_strict_on_every_value_set(kube_tools: KubeTools) -> None:
    for name, (files, sets) in SETS.items():
        args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
        for f in files:
            args += ["-f", str(CHART / f)]
        for s in sets:
            args += ["--set", s]
        out = kube_tools.run("helm", *args).stdout
        assert "1 chart(s) linted, 0 chart(s) failed" in out, (name, out)


def test_chart_crds_are_the_top_level_crds() -> None:
    top, chart = ROOT / "crds", CHART / "crds"
    top_files = sorted(p.name for p in top.glob("*.yaml"))
    assert top_files, "no CRDs in crds/"
    assert sorted(p.name for p in chart.glob("*.yaml")) == top_files
    for name in top_files:
        assert filecmp.cmp(top / name, chart / name, shallow=False), (
            f"charts/herald/crds/{name} differs"
        )


def test_default_render_has_every_component(render: Render) -> None:
    docs = render()
    deployments = {d["metadata"]["name"] for d in by_kind(docs, "Deployment")}
    assert deployments == {f"{FULLNAME}-{c}" for c in [*COMPONENTS, "operator"]}
    statefulsets = {d["metadata"]["name"] for d in by_kind(docs, "StatefulSet")}
    assert statefulsets == {f"{FULLNAME}-{c}" for c in INFRA}
    for sts in by_kind(docs, "StatefulSet"):  # each keeps its data on a volume claim
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["resources"]["requests"]["storage"], sts["metadata"]["name"]
        mounts = {
            m["name"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        }
        assert claim["metadata"]["name"] in mounts, sts["metadata"]["name"]
    for c in [*COMPONENTS, "operator"]:
        one(docs, "ServiceAccount", f"{FULLNAME}-{c}")
        one(docs, "PodDisruptionBudget", f"{FULLNAME}-{c}") if c != "operator" else None
    for c, port in COMPONENTS.items():
        svc = one(docs, "Service", f"{FULLNAME}-{c}")
        assert svc["spec"]["ports"][0]["port"] == port
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    assert not by_kind(docs, "ServiceMonitor")


def test_no_container_runs_as_root_and_all_are_hardened(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = rendered
    for where, tpl in pod_templates(docs):
        pod_sc = tpl["spec"].get("securityContext") or {}
        assert pod_sc.get("runAsNonRoot") is True, (name, where)
        assert pod_sc.get("runAsUser", 0) != 0, (name, where)
        assert (pod_sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", (name, where)
        containers = tpl["spec"]["containers"] + tpl["spec"].get("initContainers", [])
        for c in containers:
            sc = c.get("securityContext") or {}
            label = (name, where, c["name"])
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, label
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, label
            assert sc.get("readOnlyRootFilesystem") is True, label
            assert sc.get("allowPrivilegeEscalation") is False, label
            assert sc.get("privileged", False) is False, label
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], label
            assert not sc.get("capabilities", {}).get("add"), label
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", label


def test_every_container_has_resources_and_probes(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = rendered
    for where, tpl in pod_templates(docs):
        for c in tpl["spec"]["containers"]:
            label = (name, where, c["name"])
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"].get(kind, {})), label
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe in c, (*label, probe)


def test_herald_components_probe_healthz_and_readyz(render: Render) -> None:
    docs = render()
    for c, port in COMPONENTS.items():
        dep = one(docs, "Deployment", f"{FULLNAME}-{c}")
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts  # the only writable path on a read-only root
        env = {e["name"]: e for e in container["env"]}
        assert env[f"HERALD_{c.upper()}_HOST"]["value"] == "0.0.0.0"
        assert env["HERALD_ENVIRONMENT"]["value"] == "production"
        for var in ("HERALD_MONGODB_URI", "HERALD_AMQP_URL", "HERALD_REDIS_URL"):
            assert env[var]["valueFrom"]["secretKeyRef"] == {
                "name": f"{FULLNAME}-infra",
                "key": var,
            }
        assert env["HERALD_JWKS_URL"]["value"] == (
            f"http://{FULLNAME}-users:4001/.well-known/jwks.json"
        )


def test_users_gets_the_signing_key_from_a_secret(render: Render) -> None:
    docs = render()
    secret = one(docs, "Secret", f"{FULLNAME}-jwt")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    import base64

    pem = base64.b64decode(secret["data"]["private-key.pem"]).decode()
    assert "PRIVATE KEY-----" in pem
    users = one(docs, "Deployment", f"{FULLNAME}-users")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in users["containers"][0]["env"]}
    assert env["HERALD_USERS_PRIVATE_KEY_FILE"] == "/var/run/secrets/herald/jwt/private-key.pem"
    (vol,) = [v for v in users["volumes"] if v["name"] == "jwt"]
    assert vol["secret"]["secretName"] == f"{FULLNAME}-jwt"
    # A supplied key: no generated Secret, the Deployment mounts the given one.
    supplied = render(
        [], ["users.jwt.existingSecret=my-jwt", "users.jwt.existingSecretKey=key.pem"]
    )
    assert not [
        d for d in supplied if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-jwt")
    ]
    users = one(supplied, "Deployment", f"{FULLNAME}-users")["spec"]["template"]["spec"]
    (vol,) = [v for v in users["volumes"] if v["name"] == "jwt"]
    assert vol["secret"]["secretName"] == "my-jwt"


def _users_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    users = one(docs, "Deployment", f"{FULLNAME}-users")["spec"]["template"]["spec"]
    return {e["name"]: e.get("value") for e in users["containers"][0]["env"]}


def test_users_trusts_forwarded_for_only_from_the_pod_networks(render: Render) -> None:
    # Default: every private network (only Herald's pods may reach users at all).
    env = _users_env(render())
    assert env["HERALD_USERS_TRUSTED_PROXIES"] == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
    # kind and the test cluster narrow it to their pod network.
    for files in (["values-kind.yaml"], [str(ROOT / "dev" / "cluster" / "values-cluster.yaml")]):
        assert _users_env(render(files))["HERALD_USERS_TRUSTED_PROXIES"] == "10.244.0.0/16"
    env = _users_env(render([], ["users.trustedProxies={10.1.2.3,fd00::/8}"]))
    assert env["HERALD_USERS_TRUSTED_PROXIES"] == "10.1.2.3,fd00::/8"
    # What the chart renders is what the users service accepts.
    from herald_users.config import UsersSettings

    settings = UsersSettings(trusted_proxies=env["HERALD_USERS_TRUSTED_PROXIES"])
    assert [str(n) for n in settings.trusted_networks()] == ["10.1.2.3/32", "fd00::/8"]


def test_probe_timings_are_overridable_for_every_workload(render: Render) -> None:
    default = render()
    cluster = render([str(ROOT / "dev" / "cluster" / "values-cluster.yaml")])
    for docs, startup_threshold, liveness_timeout in ((default, None, None), (cluster, 120, 10)):
        for d in docs:
            if d["kind"] not in WORKLOADS or component_of(d) == "operator":
                continue
            c = d["spec"]["template"]["spec"]["containers"][0]
            # The handler is always the chart's: only the timings change.
            assert "httpGet" in c["startupProbe"] or "tcpSocket" in c["startupProbe"]
            if startup_threshold is not None:
                assert c["startupProbe"]["failureThreshold"] == startup_threshold
                assert c["livenessProbe"]["timeoutSeconds"] == liveness_timeout
            else:
                assert c["startupProbe"]["failureThreshold"] == 60
                assert c["livenessProbe"]["timeoutSeconds"] in (3, 5)


def test_generated_passwords_agree_within_one_render(render: Render) -> None:
    docs = render()
    infra = one(docs, "Secret", f"{FULLNAME}-infra")["stringData"]
    broker = one(docs, "Secret", f"{FULLNAME}-rabbitmq-config")["stringData"]["rabbitmq.conf"]
    assert f"default_pass = {infra['rabbitmq-password']}\n" in broker
    assert f":{infra['rabbitmq-password']}@{FULLNAME}-rabbitmq:5672/" in infra["HERALD_AMQP_URL"]
    assert (
        f":{infra['mongodb-root-password']}@{FULLNAME}-mongodb:27017/"
        in infra["HERALD_MONGODB_URI"]
    )
    assert f":{infra['redis-password']}@{FULLNAME}-redis:6379/0" in infra["HERALD_REDIS_URL"]
    assert (
        "rabbitmq_prometheus"
        in one(docs, "Secret", f"{FULLNAME}-rabbitmq-config")["stringData"]["enabled_plugins"]
    )


def test_only_the_gateway_is_exposed(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    for svc in by_kind(docs, "Service"):
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", (name, svc["metadata"]["name"])
    for tpl_name, tpl in pod_templates(docs):
        assert not tpl["spec"].get("hostNetwork"), (name, tpl_name)
        for c in tpl["spec"]["containers"]:
            assert all("hostPort" not in p for p in c.get("ports", [])), (name, tpl_name)
    backends = {
        path["backend"]["service"]["name"]
        for ing in by_kind(docs, "Ingress")
        for rule in ing["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {f"{FULLNAME}-gateway"}, name


def test_every_service_selects_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    templates = pod_templates(docs)
    for svc in by_kind(docs, "Service"):
        selector = svc["spec"]["selector"]
        targets = [
            w
            for w, tpl in templates
            if selects({"matchLabels": selector}, tpl["metadata"]["labels"])
        ]
        assert len(targets) == 1, (name, svc["metadata"]["name"], targets)
        (tpl,) = [tpl for w, tpl in templates if w == targets[0]]
        container_ports = {
            p.get("name") for c in tpl["spec"]["containers"] for p in c.get("ports", [])
        } | {p["containerPort"] for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in container_ports, (
                name,
                svc["metadata"]["name"],
            )
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        assert any(
            selects(pdb["spec"]["selector"], tpl["metadata"]["labels"]) for _, tpl in templates
        )


def test_every_network_policy_selects_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    labels = [tpl["metadata"]["labels"] for _, tpl in pod_templates(docs)]
    policies = by_kind(docs, "NetworkPolicy")
    assert policies, name
    for np in policies:
        assert any(selects(np["spec"]["podSelector"], lab) for lab in labels), (
            name,
            np["metadata"]["name"],
        )
        # Peers inside the release must select pods too (no rule pointing at nothing).
        for rule in np["spec"].get("ingress", []) + np["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if set(peer) == {"podSelector"}:
                    assert any(selects(peer["podSelector"], lab) for lab in labels), (
                        name,
                        np["metadata"]["name"],
                        peer,
                    )


def _ingress_peers(np: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer for rule in np["spec"].get("ingress", []) for peer in rule.get("from", [])]


def test_network_policies_default_deny_and_allow_only_herald_paths(render: Render) -> None:
    docs = render()
    policies = {np["metadata"]["name"]: np for np in by_kind(docs, "NetworkPolicy")}
    deny = policies[f"{FULLNAME}-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    for _, tpl in pod_templates(docs):  # every pod of the release is under the default deny
        assert selects(deny["podSelector"], tpl["metadata"]["labels"])
    dns = policies[f"{FULLNAME}-dns"]["spec"]
    assert {p["port"] for p in dns["egress"][0]["ports"]} == {53}

    gateway = policies[f"{FULLNAME}-gateway"]["spec"]
    (peer,) = _ingress_peers(policies[f"{FULLNAME}-gateway"])
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert {p["port"] for r in gateway["ingress"] for p in r["ports"]} == {5000}
    gateway_egress = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in gateway["egress"]
        for peer in rule["to"]
    }
    assert gateway_egress == set(HERALD_SERVICES)

    for svc, port in HERALD_SERVICES.items():
        np = policies[f"{FULLNAME}-{svc}"]
        assert np["spec"]["policyTypes"] == ["Ingress"]
        (peer,) = _ingress_peers(np)
        if svc == "users":  # JWKS for everyone in the release
            assert peer["podSelector"]["matchExpressions"][0]["operator"] == "NotIn"
        else:  # only the gateway calls the other services
            assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
        assert {p["port"] for r in np["spec"]["ingress"] for p in r["ports"]} == {port}

    app_labels = [
        tpl["metadata"]["labels"]
        for _, tpl in pod_templates(docs)
        if tpl["metadata"]["labels"]["app.kubernetes.io/component"] not in INFRA
    ]
    for infra in INFRA:
        np = policies[f"{FULLNAME}-{infra}"]
        (peer,) = _ingress_peers(np)
        assert set(peer) == {"podSelector"}  # same namespace, Herald's own pods only
        assert all(selects(peer["podSelector"], lab) for lab in app_labels)
        infra_pods = [
            tpl["metadata"]["labels"]
            for _, tpl in pod_templates(docs)
            if tpl["metadata"]["labels"]["app.kubernetes.io/component"] in INFRA
        ]
        assert not any(selects(peer["podSelector"], lab) for lab in infra_pods)
    # The operator's Job pods (labels from its pod builder) are Herald pods: under the
    # default deny, and allowed to reach the infrastructure and the users service.
    job_labels = operator_job_labels()
    assert selects(policies[f"{FULLNAME}-app-egress"]["spec"]["podSelector"], job_labels)
    assert selects(deny["podSelector"], job_labels)
    for infra in [*INFRA, "users"]:
        (peer,) = _ingress_peers(policies[f"{FULLNAME}-{infra}"])
        assert selects(peer["podSelector"], job_labels)


def operator_job_labels() -> dict[str, str]:
    try:
        from herald_operator.builders.common import labels
    except ImportError:  # the contract: app.kubernetes.io/* with part-of=herald
        return {
            "app.kubernetes.io/name": "herald",
            "app.kubernetes.io/instance": "flash-sale",
            "app.kubernetes.io/component": "campaign",
            "app.kubernetes.io/part-of": "herald",
            "app.kubernetes.io/managed-by": "herald-operator",
        }
    return dict(labels("NotificationCampaign", "flash-sale"))


def test_operator_settings_are_the_operators(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every HERALD_OPERATOR_* variable the chart sets is a field of OperatorSettings."""
    docs = render(["values-external.yaml"], ["global.imagePullSecrets={regcred}"])
    operator = one(docs, "Deployment", f"{FULLNAME}-operator")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["HERALD_OPERATOR_NAMESPACES"]["value"] == NAMESPACE
    assert (
        env["HERALD_OPERATOR_JOB_ENV_FROM_SECRETS"]["value"]
        == f"{FULLNAME}-infra,herald-infrastructure"
    )
    assert env["HERALD_OPERATOR_IMAGE_PULL_SECRETS"]["value"] == "regcred"
    assert env["HERALD_OPERATOR_SERVICE_ACCOUNT"]["value"] == f"{FULLNAME}-jobs"
    one(docs, "ServiceAccount", f"{FULLNAME}-jobs")
    one(docs, "ConfigMap", f"{FULLNAME}-jobs-env")
    try:
        from herald_operator.config import OperatorSettings
    except ImportError:
        pytest.skip("herald_operator is not installed")
    fields = {f"HERALD_OPERATOR_{name.upper()}" for name in OperatorSettings.model_fields}
    ours = {name for name in env if name.startswith("HERALD_OPERATOR_")}
    assert ours <= fields, f"not operator settings: {sorted(ours - fields)}"
    values = {k: e["value"] for k, e in env.items() if k in ours and "value" in e}
    values["HERALD_OPERATOR_LEASE_NAMESPACE"] = NAMESPACE
    values["HERALD_OPERATOR_IDENTITY"] = "pod-0"
    for key in [k for k in os.environ if k.startswith("HERALD_OPERATOR_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = OperatorSettings()  # what the pod reads
    assert settings.namespaces == [NAMESPACE] and not settings.clusterwide
    assert settings.job_env_from_secrets == [f"{FULLNAME}-infra", "herald-infrastructure"]
    assert settings.job_resources.limits["memory"] == "1Gi"
    files, sets = SETS["cluster-wide-operator"]
    wide = one(render(files, sets), "Deployment", f"{FULLNAME}-operator")
    env = {e["name"]: e for e in wide["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert OperatorSettings(namespaces=env["HERALD_OPERATOR_NAMESPACES"]["value"]).clusterwide


def test_prometheus_may_scrape_only_when_monitoring_is_on(render: Render) -> None:
    def scrapers(docs: list[dict[str, Any]]) -> set[str]:
        return {
            np["metadata"]["name"]
            for np in by_kind(docs, "NetworkPolicy")
            for peer in _ingress_peers(np)
            if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            == "prometheus"
        }

    assert scrapers(render()) == set()
    assert scrapers(render(["values-monitoring.yaml"])) == {
        f"{FULLNAME}-{c}" for c in [*COMPONENTS, "rabbitmq", "operator"]
    }


def test_every_object_is_labelled(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    for d in docs:
        labels = d["metadata"].get("labels") or {}
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in labels, (name, d["kind"], d["metadata"]["name"], key)
        if d["kind"] in WORKLOADS:
            assert labels["app.kubernetes.io/component"], (name, d["metadata"]["name"])
            tpl_labels = d["spec"]["template"]["metadata"]["labels"]
            assert selects(d["spec"]["selector"], tpl_labels)
            assert tpl_labels["app.kubernetes.io/part-of"] == "herald"


def test_monitoring_on_renders_servicemonitors_rules_and_dashboards(render: Render) -> None:
    docs = render(["values-monitoring.yaml"])
    monitors = by_kind(docs, "ServiceMonitor")
    assert {component_of(m) for m in monitors} == {*COMPONENTS, "rabbitmq"}
    services = by_kind(docs, "Service")
    for m in monitors:
        assert m["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        (target,) = [s for s in services if selects(m["spec"]["selector"], s["metadata"]["labels"])]
        port_names = {p["name"] for p in target["spec"]["ports"]}
        for ep in m["spec"]["endpoints"]:
            assert ep["port"] in port_names
            assert ep["path"] == (
                "/metrics/per-object" if component_of(m) == "rabbitmq" else "/metrics"
            )
    # The operator has no Service: a PodMonitor scrapes its pods' /metrics port, which
    # its NetworkPolicy opens to Prometheus (and only when monitoring is on).
    (pm,) = by_kind(docs, "PodMonitor")
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    operator = one(docs, "Deployment", f"{FULLNAME}-operator")["spec"]["template"]
    assert selects(pm["spec"]["selector"], operator["metadata"]["labels"])
    (container,) = operator["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [ep["port"] for ep in pm["spec"]["podMetricsEndpoints"]] == ["http"]
    assert pm["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HERALD_OPERATOR_HEALTH_PORT"] == str(ports["http"])
    np = one(docs, "NetworkPolicy", f"{FULLNAME}-operator")
    assert [p["port"] for r in np["spec"]["ingress"] for p in r["ports"]] == [ports["http"]]
    assert one(render(), "NetworkPolicy", f"{FULLNAME}-operator")["spec"]["ingress"] == []
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == source
    dashboards = [
        d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]
    ]
    files = {p.name: p for p in (CHART / "dashboards").glob("*.json")}
    assert {"herald-overview.json", "herald-rabbitmq.json", "herald-gateway.json"} <= set(files)
    assert len(dashboards) == len(files)
    for cm in dashboards:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, body),) = cm["data"].items()
        assert json.loads(body) == json.loads(files[key].read_text())
    # A different kube-prometheus-stack release name.
    other = render(["values-monitoring.yaml"], ["monitoring.labels.release=prom"])
    assert all(
        m["metadata"]["labels"]["release"] == "prom" for m in by_kind(other, "ServiceMonitor")
    )


def test_ingress_tls_and_class(render: Render) -> None:
    files, sets = SETS["ingress-tls"]
    (ing,) = by_kind(render(files, sets), "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [
        {"hosts": ["herald.example.com"], "secretName": f"{FULLNAME}-gateway-tls"}
    ]
    assert ing["spec"]["rules"][0]["host"] == "herald.example.com"
    assert ing["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert not by_kind(render([], ["ingress.enabled=false"]), "Ingress")


def test_hpa_takes_over_replicas(render: Render) -> None:
    files, sets = SETS["hpa"]
    docs = render(files, sets)
    hpas = {component_of(h): h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"users", "gateway", "notifications"}
    for c, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"{FULLNAME}-{c}",
        }
        assert "replicas" not in one(docs, "Deployment", f"{FULLNAME}-{c}")["spec"]
    assert one(docs, "Deployment", f"{FULLNAME}-scheduler")["spec"]["replicas"] == 1


def test_high_availability_values(render: Render) -> None:
    docs = render(["values-ha.yaml"])
    for c in COMPONENTS:
        dep = one(docs, "Deployment", f"{FULLNAME}-{c}")
        hpa = [h for h in by_kind(docs, "HorizontalPodAutoscaler") if component_of(h) == c]
        replicas = hpa[0]["spec"]["minReplicas"] if hpa else dep["spec"]["replicas"]
        assert replicas >= 2, c
        anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert selects(term["labelSelector"], dep["spec"]["template"]["metadata"]["labels"])
        pdb = one(docs, "PodDisruptionBudget", f"{FULLNAME}-{c}")
        assert pdb["spec"]["maxUnavailable"] == 1
    assert one(docs, "Deployment", f"{FULLNAME}-operator")["spec"]["replicas"] == 2
    one(docs, "PodDisruptionBudget", f"{FULLNAME}-operator")


@pytest.mark.parametrize("name", ["external", "external-urls"])
def test_external_infrastructure(render: Render, name: str) -> None:
    files, sets = SETS[name]
    docs = render(files, sets)
    assert not by_kind(docs, "StatefulSet")
    users = one(docs, "Deployment", f"{FULLNAME}-users")["spec"]["template"]["spec"]["containers"][
        0
    ]
    env = {e["name"]: e for e in users["env"]}
    infra = one(docs, "Secret", f"{FULLNAME}-infra").get("stringData") or {}
    if name == "external":
        for var in ("HERALD_MONGODB_URI", "HERALD_AMQP_URL", "HERALD_REDIS_URL"):
            assert env[var]["valueFrom"]["secretKeyRef"] == {
                "name": "herald-infrastructure",
                "key": var,
            }
        assert infra == {}
    else:
        assert infra["HERALD_MONGODB_URI"] == "mongodb://db.example.com:27017/?replicaSet=rs0"
        assert infra["HERALD_AMQP_URL"] == "amqps://herald:pw@mq.example.com:5671/herald"
        assert infra["HERALD_REDIS_URL"] == "rediss://cache.example.com:6380/0"
    egress = one(docs, "NetworkPolicy", f"{FULLNAME}-app-egress")["spec"]["egress"]
    external = [r for r in egress if any("ipBlock" in p for p in r["to"])]
    assert external and {5671, 6380, 27017} <= {p["port"] for p in external[0]["ports"]}


def test_missing_external_infrastructure_fails_clearly(kube_tools: KubeTools) -> None:
    out = helm_template(kube_tools, sets=["mongodb.enabled=false"], check=False)
    assert out.returncode != 0
    assert "mongodb.enabled=false needs mongodb.external.uri" in out.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["users.replica=2"], "additional properties 'replica' not allowed"),
        (["gateway.replicas=two"], "got string, want integer"),
        (["ingress.tls.enabled=yes"], "got string, want boolean"),
        (["monitoring.enable=true"], "additional properties 'enable' not allowed"),
        (["environment=staging"], "value must be one of"),
        (["mongodb.external.uri=postgres://x"], "does not match pattern"),
        (["operator.watchNamespaces={Bad_NS}"], "does not match pattern"),
        (["operator.watchNamespaces={*,shop}"], "maxItems: got 2, want 1"),
        (["notifications.resources.limits.memory=lots"], "/notifications/resources/limits/memory"),
        (["typo=1"], "additional properties 'typo' not allowed"),
        (["networkPolicy.kubeAPIServer.ports={https}"], "got string, want integer"),
        (["users.trustedProxies={gateway}"], "/users/trustedProxies/0"),
        (["probes.startup.timeoutSecond=5"], "additional properties 'timeoutSecond' not allowed"),
        (["probes.liveness.failureThreshold=0"], "/probes/liveness/failureThreshold"),
    ],
)
def test_values_schema_rejects_typos_and_wrong_types(
    kube_tools: KubeTools, sets: list[str], message: str
) -> None:
    out = helm_template(kube_tools, sets=sets, check=False)
    assert out.returncode != 0, f"{sets} was accepted"
    assert message in out.stderr, out.stderr


def test_every_shipped_values_file_is_used_by_a_test() -> None:
    shipped = {p.name for p in CHART.glob("values-*.yaml")}
    used = {f for files, _ in SETS.values() for f in files}
    assert shipped == used


def test_notes_say_how_to_reach_graphql(kube_tools: KubeTools) -> None:
    out = kube_tools.run(
        "helm",
        "install",
        RELEASE,
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "--set",
        "ingress.host=herald.example.com",
        "--set",
        "ingress.tls.enabled=true",
    ).stdout
    assert "https://herald.example.com/graphql" in out
    out = kube_tools.run(
        "helm",
        "install",
        RELEASE,
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "--set",
        "ingress.enabled=false",
    ).stdout
    assert f"port-forward svc/{FULLNAME}-gateway 5000:5000" in out


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], tuple[set[str], set[str]]]:
    """(group, resource) -> (verbs, resourceNames) of a Role or ClusterRole."""
    return {
        (group, resource): (set(rule["verbs"]), set(rule.get("resourceNames") or []))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def _verbs(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    return {key: verbs for key, (verbs, _) in _rules(role).items()}


def test_operator_rbac_is_least_privilege(render: Render) -> None:
    docs = render(sets=["operator.watchNamespaces={shop}"])
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(docs, "Role")}
    watch = f"{FULLNAME}-operator"
    # A watching Role in each watched namespace: the release's and the listed one.
    assert {ns for ns, name in roles if name == watch} == {NAMESPACE, "shop"}
    verbs = _verbs(roles[("shop", watch)])
    assert verbs[("herald.io", "notificationcampaigns")] >= {"get", "list", "watch", "patch"}
    assert verbs[("herald.io", "schedules/status")] >= {"patch"}
    assert verbs[("batch", "jobs")] == {"get", "list", "watch"}  # kopf follows Jobs
    assert verbs[("", "events")] == {"create", "patch"}
    # Nothing is written to a tenant namespace but status and Events, nothing is read there
    # but the resources and Jobs: no CronJobs, pods, Secrets or ConfigMaps.
    assert {r for (_, r) in verbs} == {
        "notificationcampaigns",
        "schedules",
        "notificationcampaigns/status",
        "schedules/status",
        "jobs",
        "events",
    }
    # The Jobs' Role, in the release namespace only: CronJobs and Jobs, their pods, and
    # the Job environment by name.
    assert {ns for ns, name in roles if name == f"{watch}-jobs"} == {NAMESPACE}
    jobs = _rules(roles[(NAMESPACE, f"{watch}-jobs")])
    assert jobs[("batch", "cronjobs")][0] >= {"create", "delete", "patch"}
    assert jobs[("", "pods")] == ({"get", "list"}, set())
    assert jobs[("", "secrets")] == ({"get"}, {f"{FULLNAME}-infra"})
    assert jobs[("", "configmaps")] == ({"get"}, {f"{FULLNAME}-jobs-env"})
    assert jobs[("", "serviceaccounts")] == ({"get"}, {f"{FULLNAME}-jobs"})
    for role in [*roles.values(), *by_kind(docs, "ClusterRole")]:
        for rule in role["rules"]:
            assert (
                "*" not in rule["verbs"]
                and "*" not in rule["resources"]
                and "*" not in rule["apiGroups"]
            )
            if rule["resources"] in (["secrets"], ["configmaps"], ["serviceaccounts"]):
                assert rule.get("resourceNames"), f"{role['metadata']['name']}: {rule}"
    (cluster,) = by_kind(docs, "ClusterRole")
    assert {res for rule in cluster["rules"] for res in rule["resources"]} == {
        "customresourcedefinitions",
        "namespaces",
    }
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in cluster["rules"])
    # The external Secrets the Job pods load are the ones it may look up.
    files, sets = SETS["external"]
    external = render(files, sets)
    (jobs_role,) = [
        r for r in by_kind(external, "Role") if r["metadata"]["name"] == f"{watch}-jobs"
    ]
    names = _rules(jobs_role)[("", "secrets")][1]
    operator = one(external, "Deployment", f"{FULLNAME}-operator")
    env = {e["name"]: e for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert names == set(env["HERALD_OPERATOR_JOB_ENV_FROM_SECRETS"]["value"].split(","))
    # Cluster-wide watching moves the watching rules to the ClusterRole, and only then;
    # writing CronJobs and Jobs stays in the release namespace.
    files, sets = SETS["cluster-wide-operator"]
    wide = render(files, sets)
    assert {r["metadata"]["name"] for r in by_kind(wide, "Role")} == {
        f"{watch}-jobs",
        f"{watch}-leader-election",
    }
    (cluster,) = by_kind(wide, "ClusterRole")
    wide_verbs = _verbs(cluster)
    assert "notificationcampaigns" in {r for (_, r) in wide_verbs}
    assert wide_verbs[("batch", "jobs")] == {"get", "list", "watch"}
    assert ("batch", "cronjobs") not in wide_verbs
    assert not {"secrets", "configmaps", "pods", "serviceaccounts"} & {r for (_, r) in wide_verbs}


def test_operator_runs_every_job_in_the_release_namespace(render: Render) -> None:
    docs = render(sets=["operator.watchNamespaces={shop,staging}"])
    operator = one(docs, "Deployment", f"{FULLNAME}-operator")
    env = {e["name"]: e for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HERALD_OPERATOR_JOB_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    # The release namespace is watched too: the Jobs kopf follows are there.
    assert env["HERALD_OPERATOR_NAMESPACES"]["value"] == f"{NAMESPACE},shop,staging"
    # What the Job pods reference exists in the release namespace only.
    for kind, name in [
        ("ConfigMap", f"{FULLNAME}-jobs-env"),
        ("ServiceAccount", f"{FULLNAME}-jobs"),
        ("Secret", f"{FULLNAME}-infra"),
    ]:
        assert one(docs, kind, name)["metadata"]["namespace"] == NAMESPACE


def test_chart_files_are_valid_yaml_and_json() -> None:
    for path in CHART.glob("values*.yaml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
    for path in (CHART / "dashboards").glob("*.json"):
        json.loads(path.read_text())
    assert Path(CHART / "values.schema.json").exists()
    json.loads((CHART / "values.schema.json").read_text())
