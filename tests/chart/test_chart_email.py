"""The chart's email settings: the relay and its credentials from an existing Secret,
the public URL of unsubscribe links, the shared unsubscribe secret, the egress policy to
the relay, and the schema's checks of ``notifications.email``."""

from __future__ import annotations

from typing import Any

import pytest
from herald_testing.kube import KubeTools

from .conftest import RELEASE, Render, helm_template

FULLNAME = f"{RELEASE}-herald"
EMAIL = [
    "ingress.host=shop.example.com",
    "ingress.tls.enabled=true",
    "notifications.email.smtp.host=smtp.example.com",
    "notifications.email.smtp.port=465",
    "notifications.email.smtp.security=tls",
    "notifications.email.smtp.existingSecret=relay-credentials",
    "notifications.email.egressCidrs={192.0.2.0/24}",
]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _env(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    spec = _one(docs, "Deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in spec["containers"][0]["env"]}


def test_email_is_off_without_a_relay(render: Render) -> None:
    docs = render()
    env = _env(docs, "notifications")
    assert env["HERALD_NOTIFICATIONS_EMAIL_ENABLED"] == "false"
    assert "HERALD_NOTIFICATIONS_SMTP_HOST" not in env
    assert not [d for d in docs if d["metadata"]["name"] == f"{FULLNAME}-notifications-smtp"]


def test_relay_credentials_public_url_and_egress(render: Render) -> None:
    docs = render([], EMAIL)
    env = _env(docs, "notifications")
    assert env["HERALD_NOTIFICATIONS_EMAIL_ENABLED"] == "true"
    assert env["HERALD_NOTIFICATIONS_SMTP_HOST"] == "smtp.example.com"
    assert env["HERALD_NOTIFICATIONS_SMTP_PORT"] == "465"
    assert env["HERALD_NOTIFICATIONS_SMTP_SECURITY"] == "tls"
    assert env["HERALD_NOTIFICATIONS_PUBLIC_URL"] == "https://shop.example.com"
    for var, key in (("USERNAME", "username"), ("PASSWORD", "password")):
        assert env[f"HERALD_NOTIFICATIONS_SMTP_{var}"] == {
            "secretKeyRef": {"name": "relay-credentials", "key": key}
        }
    policy = _one(docs, "NetworkPolicy", f"{FULLNAME}-notifications-smtp")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "notifications"
    assert policy["egress"] == [
        {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"protocol": "TCP", "port": 465}]}
    ]
    # Without credentials nothing refers to a Secret for them.
    plain = _env(render([], EMAIL[:-2]), "notifications")
    assert "HERALD_NOTIFICATIONS_SMTP_PASSWORD" not in plain
    explicit = _env(
        render([], [*EMAIL, "notifications.email.publicUrl=https://links.example.com"]),
        "notifications",
    )
    assert explicit["HERALD_NOTIFICATIONS_PUBLIC_URL"] == "https://links.example.com"


def test_unsubscribe_secret_is_generated_once_and_shared(render: Render) -> None:
    docs = render([], EMAIL)
    secret = _one(docs, "Secret", f"{FULLNAME}-unsubscribe")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(secret["stringData"]["unsubscribe-secret"]) == 32
    ref = {"secretKeyRef": {"name": f"{FULLNAME}-unsubscribe", "key": "unsubscribe-secret"}}
    assert _env(docs, "users")["HERALD_UNSUBSCRIBE_SECRET"] == ref
    assert _env(docs, "notifications")["HERALD_UNSUBSCRIBE_SECRET"] == ref
    supplied = render(
        [],
        [*EMAIL, "users.unsubscribe.existingSecret=mine", "users.unsubscribe.existingSecretKey=k"],
    )
    assert not [d for d in supplied if d["metadata"]["name"] == f"{FULLNAME}-unsubscribe"]
    assert _env(supplied, "notifications")["HERALD_UNSUBSCRIBE_SECRET"] == {
        "secretKeyRef": {"name": "mine", "key": "k"}
    }


def test_email_needs_a_public_url(kube_tools: KubeTools) -> None:
    out = helm_template(
        kube_tools, sets=["notifications.email.smtp.host=smtp.example.com"], check=False
    )
    assert out.returncode != 0
    assert "notifications.email.publicUrl (or ingress.host) is required" in out.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["notifications.email.smtp.security=ssl"], "/notifications/email/smtp/security"),
        (["notifications.email.smtp.port=0"], "/notifications/email/smtp/port"),
        (["notifications.email.relay=x"], "additional properties 'relay' not allowed"),
        (["notifications.email.egressCidrs={anywhere}"], "/notifications/email/egressCidrs/0"),
        (["notifications.email.publicUrl=shop.example.com"], "/notifications/email/publicUrl"),
    ],
)
def test_schema_checks_email_values(kube_tools: KubeTools, sets: list[str], message: str) -> None:
    out = helm_template(kube_tools, sets=sets, check=False)
    assert out.returncode != 0, f"{sets} was accepted"
    assert message in out.stderr, out.stderr
