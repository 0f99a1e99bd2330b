"""Configuration rules and the signing key (no servers needed)."""

from pathlib import Path

import pytest
from herald_common.auth import generate_private_key_pem
from herald_users.config import LOCAL_ADMIN_EMAIL, UsersSettings
from herald_users.keys import SigningKeyError, load_private_key
from herald_users.main import create_app
from pydantic import SecretStr, ValidationError

PROD = {"amqp_url": "amqp://herald:s3cret@rabbit:5672/"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # Settings read the environment: keep the developer's shell out of these tests.
    import os

    for key in list(os.environ):
        if key.startswith("HERALD_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    s = UsersSettings()
    assert (s.port, s.mongodb_db, s.service_name) == (4001, "herald_users", "users")
    assert s.access_token_ttl_seconds == 900
    assert s.refresh_token_ttl_seconds == 30 * 24 * 3600
    assert s.admin_email == LOCAL_ADMIN_EMAIL and s.admin_password is not None
    # relative to the working directory, whatever files the checkout holds
    assert s.local_key_file == Path(".run/keys/users-jwt.pem")


def test_env_prefix(monkeypatch) -> None:
    monkeypatch.setenv("HERALD_USERS_PORT", "5123")
    monkeypatch.setenv("HERALD_USERS_LOGIN_MAX_FAILURES_PER_EMAIL", "3")
    s = UsersSettings()
    assert s.port == 5123 and s.login_max_failures_per_email == 3


def test_production_requires_a_key_and_has_no_default_admin() -> None:
    with pytest.raises(ValidationError, match="signing key"):
        UsersSettings(environment="production", **PROD)
    s = UsersSettings(
        environment="production", private_key_pem=SecretStr(generate_private_key_pem()), **PROD
    )
    assert s.admin_email is None and s.admin_password is None
    with pytest.raises(ValidationError, match="both"):
        UsersSettings(
            environment="production",
            private_key_pem=SecretStr(generate_private_key_pem()),
            admin_email="root@example.com",
            **PROD,
        )


def test_production_app_refuses_to_start_without_key() -> None:
    with pytest.raises(ValidationError, match="HERALD_USERS_PRIVATE_KEY_PEM"):
        create_app(UsersSettings(environment="production", **PROD))


def test_local_key_is_generated_once_and_reused(tmp_path) -> None:
    path = tmp_path / "keys" / "users-jwt.pem"
    s = UsersSettings(environment="local", local_key_file=path)
    first = load_private_key(s)
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    assert load_private_key(s) == first
    assert "PRIVATE KEY" in first


def test_key_from_file_and_bad_keys(tmp_path) -> None:
    pem = generate_private_key_pem()
    key_file = tmp_path / "k.pem"
    key_file.write_text(pem)
    assert load_private_key(UsersSettings(private_key_file=key_file)) == pem
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_private_key(UsersSettings(private_key_file=tmp_path / "missing.pem"))
    with pytest.raises(SigningKeyError, match="PEM"):
        load_private_key(UsersSettings(private_key_pem=SecretStr("not a key")))
    with pytest.raises(ValidationError, match="not both"):
        UsersSettings(private_key_pem=SecretStr(pem), private_key_file=key_file)
