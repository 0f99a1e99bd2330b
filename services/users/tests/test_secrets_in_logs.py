"""Secrets never reach the logs: every flow that handles a password, a token or the
signing key runs with every logger at DEBUG, then each captured record (message,
arguments, extra fields, traceback) is searched for the secrets it used."""

from __future__ import annotations

import json
from typing import Any

import pytest
from herald_testing.logcapture import capture_logs

pytestmark = pytest.mark.integration

PASSWORD = "Secret-Passw0rd-in-Logs-9931"
WRONG = "Wrong-Passw0rd-in-Logs-4417"


@pytest.fixture
def captured():
    with capture_logs() as handler:
        yield handler


def _secret_parts(pem: str) -> list[str]:
    """Distinctive lines of a PEM (its base64 body)."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


async def test_flows_log_no_secrets(users, captured, signing_key) -> None:
    secrets: list[str] = [PASSWORD, WRONG, users.admin_password, *_secret_parts(signing_key)]
    registered = await users.register("secrets@example.com", password=PASSWORD)
    secrets += [registered["access_token"], registered["refresh_token"]]
    bearer = users.bearer(registered["access_token"])

    # Password mistakes: wrong, unknown account, weak, too long, wrong type.
    for body in (
        {"email": "secrets@example.com", "password": WRONG},
        {"email": "nobody@example.com", "password": WRONG},
    ):
        r = await users.client.post("/v1/auth/login", json=body)
        assert r.status_code == 401
        assert WRONG not in r.text
    for password in ("short", WRONG * 40, 12345):
        r = await users.client.post(
            "/v1/auth/register",
            json={"name": "X", "email": "weak@example.com", "password": password},
        )
        assert r.status_code == 400
        if isinstance(password, str):
            assert password not in r.text
    login = await users.login("secrets@example.com", PASSWORD)
    assert login.status_code == 200
    tokens = login.json()
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    refreshed = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    # Reusing a refresh token is logged as a security event: without the token.
    reused = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401
    admin = await users.admin_token()
    secrets.append(admin)
    r = await users.client.get("/v1/users", headers=bearer)
    assert r.status_code == 403
    r = await users.client.get("/v1/users/me", headers={"authorization": "Bearer " + PASSWORD})
    assert r.status_code == 401
    # (The reuse above ended the login's session; registration started another.)
    out = await users.client.post(
        "/v1/auth/logout",
        json={"refresh_token": registered["refresh_token"]},
        headers=bearer,
    )
    assert out.status_code == 204

    assert captured.lines, "nothing was logged: the capture is not working"
    leaks = [
        (secret[:12] + "…", line[:300])
        for line in captured.lines
        for secret in secrets
        if secret in line
    ]
    assert not leaks, json.dumps(leaks[:5], ensure_ascii=False)


def _settings_dump(settings: Any) -> str:
    return f"{settings!r} {settings} {settings.model_dump()}"


def test_settings_never_print_their_secrets(users_settings, signing_key) -> None:
    settings = users_settings()
    text = _settings_dump(settings)
    for part in _secret_parts(signing_key)[:3]:
        assert part not in text
    assert settings.admin_password is not None
    assert settings.admin_password.get_secret_value() not in text
