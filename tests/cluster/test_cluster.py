"""Herald for real on the single-node cluster of dev/cluster (marker ``cluster``).

One chart install per module (fixture ``release``), exercised in order: every pod
Ready, GraphQL through the gateway Service (via kube-proxy: no ingress controller is
built here), a purchase's order update, NetworkPolicies (enforced by kube-router), a
NotificationCampaign's CronJob firing a promotion into the inbox, an upgrade that rolls
the pods without losing a notification, and an uninstall that leaves nothing behind.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, RUN, NodeCluster, Release, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(2700)]

USER: dict[str, Any] = {}
INBOX = "{ notifications(first: 50) { totalCount edges { node { id type content } } } }"


def _inbox(release: Release) -> list[dict[str, Any]]:
    data = release.gql(INBOX, token=USER["token"])
    return [e["node"] for e in data["notifications"]["edges"]]


def test_every_pod_ready(release: Release) -> None:
    c = release.cluster
    deployments = c.get("deployments", "-n", release.namespace)["items"]
    names = {d["metadata"]["name"] for d in deployments}
    assert {
        f"herald-{n}"
        for n in ("users", "notifications", "recommendations", "scheduler", "gateway", "operator")
    } <= names
    for d in deployments:
        cond = {x["type"]: x["status"] for x in d["status"].get("conditions", [])}
        assert cond.get("Available") == "True", d["metadata"]["name"]
    for sts in c.get("statefulsets", "-n", release.namespace)["items"]:
        assert sts["status"].get("readyReplicas") == 1, sts["metadata"]["name"]
    pods = c.get("pods", "-n", release.namespace)["items"]
    for p in pods:
        ready = {x["type"]: x["status"] for x in p["status"].get("conditions", [])}.get("Ready")
        assert ready == "True", (p["metadata"]["name"], p["status"].get("phase"))
        for cs in p["status"]["containerStatuses"]:
            # Built here and loaded into containerd, never pulled.
            assert cs["image"].startswith("localhost/herald/"), cs["image"]


def test_graphql_register_and_order_update(release: Release) -> None:
    email = f"ann-{int(time.time())}@example.com"
    data = release.gql(
        """mutation($e: String!) { register(input: {name: "Ann", email: $e, password: "Correct-Horse-42",
           preferences: {promotions: true, orderUpdates: true, recommendations: true, timezone: "UTC",
                         maxPromotionsPerDay: 50}}) { accessToken user { id } } }""",
        {"e": email},
    )
    USER.update(token=data["register"]["accessToken"], id=data["register"]["user"]["id"])

    def recommendations() -> list[dict[str, Any]] | None:
        # A new user's first recommendations are computed cold; on the loaded 2-core node
        # that can outlast the gateway's call timeout (UNAVAILABLE for that field only):
        # asked again until the service answers (any other answer is the last one reported).
        body = release.post("{ recommendations(first: 3) { productId } }", token=USER["token"])
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        if codes == ["UNAVAILABLE"]:
            return None
        assert not codes, body
        return list(body["data"]["recommendations"])

    recs = wait_for(recommendations, 180, "the new user's recommendations", interval=3)
    product = recs[0]["productId"]
    accepted = release.gql(
        "mutation($p: ID!) { trackActivity(events: [{kind: PURCHASE, productId: $p}]) }",
        {"p": product},
        token=USER["token"],
    )
    assert accepted == {"trackActivity": 1}
    updates = wait_for(
        lambda: [n for n in _inbox(release) if n["type"] == "ORDER_UPDATE"],
        120,
        "the order update of the purchase",
    )
    assert updates[0]["content"]["data"]["status"] == "placed"
    orders = release.gql("{ orders { id status } }", token=USER["token"])["orders"]
    assert [o["id"] for o in orders] == [updates[0]["content"]["data"]["order_id"]]


PROBE_SCRIPT = """
import json, socket, sys, time
allowed, denied, seconds = json.loads(sys.argv[1])
def connect(target, timeout):
    host, port = target.rsplit(":", 1)
    try:
        address = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4]
    except OSError as e:
        return f"unresolved: {e}"
    try:
        socket.create_connection(address, timeout=timeout).close()
        return "connected"
    except OSError as e:
        return f"refused: {e}"
result = {}
# kube-router admits a new pod's address a moment after the pod starts: the allowed
# paths are retried until they connect, which also proves this pod's address is known.
for target in allowed:
    deadline = time.monotonic() + seconds
    while True:
        result[target] = connect(target, 3)
        if result[target] == "connected" or time.monotonic() > deadline:
            break
        time.sleep(1)
for target in denied:
    result[target] = connect(target, 3)
print(json.dumps(result))
"""


def _probe_pod(
    cluster: NodeCluster,
    namespace: str,
    name: str,
    allowed: list[str],
    denied: list[str],
    labels: dict[str, str] | None = None,
    seconds: int = 60,
) -> dict[str, bool]:
    """One pod in ``namespace`` that opens TCP connections to host:port targets: the
    ``allowed`` ones retried until they connect, then the ``denied`` ones once each.
    Returns whether each target connected."""
    image = _images()["IMAGE_users"]  # any Herald image: it has python3
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": [
                        "python3",
                        "-c",
                        PROBE_SCRIPT,
                        json.dumps([allowed, denied, seconds]),
                    ],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    try:
        wait_for(
            lambda: (
                cluster.get("pod", "-n", namespace, name)["status"].get("phase")
                in ("Succeeded", "Failed")
            ),
            300,
            f"probe pod {namespace}/{name}",
        )
        log = cluster.kubectl("logs", "-n", namespace, name, check=False).stdout.strip()
    finally:
        cluster.kubectl("delete", "pod", "-n", namespace, name, "--wait=false", check=False)
    try:
        result = json.loads(log.splitlines()[-1])
    except (ValueError, IndexError):
        pytest.fail(f"probe pod {namespace}/{name} printed no result: {log!r}")
    assert set(result) == set(allowed) | set(denied), result
    # A name that does not resolve says nothing about the policies.
    assert not any(a.startswith("unresolved") for a in result.values()), result
    return {target: answer == "connected" for target, answer in result.items()}


def _images() -> dict[str, str]:
    lines = (RUN / "images.env").read_text().split()
    return dict(line.split("=", 1) for line in lines)


def test_network_policies(release: Release) -> None:
    c, ns = release.cluster, release.namespace
    users = f"herald-users.{ns}.svc.cluster.local:4001"
    gateway = f"herald-gateway.{ns}.svc.cluster.local:5000"
    # kube-router enforces NetworkPolicies; the release fixture waited until its iptables
    # rules cover every pod of the release with the policies selecting it.
    policies = {p["metadata"]["name"] for p in c.get("networkpolicies", "-n", ns)["items"]}
    assert policies, "the chart created no NetworkPolicy"
    # The ingress controller's namespace and pod labels reach the gateway, nothing else.
    ingress_labels = {"app.kubernetes.io/name": "ingress-nginx"}
    seen = _probe_pod(
        c, release.ingress_namespace, "ingress-probe", [gateway], [users], ingress_labels
    )
    assert seen == {gateway: True, users: False}, seen
    # A pod outside Herald reaches no Herald component (default deny).
    c.kubectl("create", "namespace", f"{ns}-outside", check=False)
    try:
        seen = _probe_pod(c, f"{ns}-outside", "outside-probe", [], [gateway, users])
        assert seen == {gateway: False, users: False}, seen
    finally:
        c.kubectl("delete", "namespace", f"{ns}-outside", "--wait=false", check=False)
    # Inside Herald the allowed paths work: the gateway answered GraphQL calls that need
    # users and notifications (previous test), through these same policies.


def test_campaign_cronjob_fires_promotion(release: Release) -> None:
    c, ns = release.cluster, release.namespace
    campaign = yaml.safe_load((ROOT / "examples" / "campaigns" / "flash-sale.yaml").read_text())
    campaign["metadata"] = {"name": "flash-sale", "namespace": ns}
    campaign["spec"]["schedule"] = "* * * * *"  # the next minute, not the next hour
    campaign["spec"]["timeZone"] = "UTC"
    c.kubectl("apply", "-f", "-", stdin=json.dumps(campaign))
    cronjob = wait_for(
        lambda: [
            cj
            for cj in c.get("cronjobs", "-n", ns)["items"]
            if any(
                o["kind"] == "NotificationCampaign" and o["name"] == "flash-sale"
                for o in cj["metadata"].get("ownerReferences", [])
            )
        ],
        120,
        "the operator to create the campaign's CronJob",
    )[0]
    assert cronjob["spec"]["schedule"] == "* * * * *"
    cj_name = cronjob["metadata"]["name"]
    # The CronJob controller starts a Job; its pod runs the fire command and succeeds.
    job = wait_for(
        lambda: [
            j
            for j in c.get("jobs", "-n", ns)["items"]
            if any(
                o["kind"] == "CronJob" and o["name"] == cj_name
                for o in j["metadata"].get("ownerReferences", [])
            )
            and j["status"].get("succeeded")
        ],
        240,
        f"a Job of CronJob {cj_name} to succeed",
    )[0]
    assert job["status"]["succeeded"] >= 1
    promos = wait_for(
        lambda: [n for n in _inbox(release) if n["type"] == "PROMOTION"],
        120,
        "the campaign's promotion in the user's inbox",
    )
    assert "flash sale" in promos[0]["content"]["title"]
    status = wait_for(
        lambda: (
            c.get("notificationcampaign", "-n", ns, "flash-sale")
            .get("status", {})
            .get("lastRunTime")
        ),
        120,
        "the campaign's status to record the run",
    )
    assert status
    c.kubectl("delete", "notificationcampaign", "-n", ns, "flash-sale")
    wait_for(
        lambda: not c.get("cronjobs", "-n", ns)["items"],
        120,
        "the CronJob to be removed with its campaign",
    )


def test_upgrade_rolls_pods_without_losing_notifications(release: Release) -> None:
    c, ns = release.cluster, release.namespace
    before = {n["id"] for n in _inbox(release)}
    assert before
    old_pods = {
        p["metadata"]["name"]
        for p in c.get("pods", "-n", ns, "-l", "app.kubernetes.io/component=notifications")["items"]
    }
    c.helm(
        "upgrade",
        release.name,
        str(Path(ROOT / "charts" / "herald")),
        "-n",
        ns,
        *release.values_args("--set", "logLevel=DEBUG"),
        "--wait",
        "--timeout",
        "6m",
        timeout=500,
    )

    def rolled() -> set[str] | None:
        # helm --wait returns once the new pods are ready; an old one may still be
        # terminating for its grace period.
        pods = {
            p["metadata"]["name"]
            for p in c.get("pods", "-n", ns, "-l", "app.kubernetes.io/component=notifications")[
                "items"
            ]
        }
        return pods if pods and not (pods & old_pods) else None

    wait_for(rolled, 120, "the notifications pods rolled: none of the old ones left")
    after = wait_for(lambda: {n["id"] for n in _inbox(release)}, 120, "the inbox after the upgrade")
    assert before <= after


def test_zz_uninstall_leaves_nothing(release: Release) -> None:
    c, ns = release.cluster, release.namespace
    c.helm("uninstall", release.name, "-n", ns, "--wait", "--timeout", "3m", timeout=300)

    def leftovers() -> list[str]:
        out = c.kubectl(
            "get",
            "all,configmaps,secrets,networkpolicies,pdb,roles,rolebindings,serviceaccounts,"
            "cronjobs,jobs,pvc,leases",
            "-n",
            ns,
            "-l",
            f"app.kubernetes.io/instance={release.name}",
            "-o",
            "name",
        ).stdout
        return sorted(out.split())

    # What stays on purpose: the Secrets the chart marks helm.sh/resource-policy: keep
    # (the JWT signing key, so a reinstall keeps every issued token valid, and any other
    # generated key) and the StatefulSets' volume claims (Kubernetes keeps them: the
    # data of MongoDB, RabbitMQ and Redis).
    claims = [
        "persistentvolumeclaim/data-herald-mongodb-0",
        "persistentvolumeclaim/data-herald-rabbitmq-0",
        "persistentvolumeclaim/data-herald-redis-0",
    ]

    def only_kept() -> bool:
        left = leftovers()
        secrets = [name for name in left if name.startswith("secret/")]
        if sorted(set(left) - set(secrets)) != claims or "secret/herald-jwt" not in secrets:
            return False
        for name in secrets:
            secret = c.get("secret", "-n", ns, name.split("/", 1)[1])
            annotations = secret["metadata"].get("annotations") or {}
            assert annotations.get("helm.sh/resource-policy") == "keep", name
        return True

    wait_for(only_kept, 180, "only the kept objects to remain", interval=3)
