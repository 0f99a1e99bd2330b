"""The ``herald-users`` operator commands."""

import io
import json

import pytest
from herald_users.cli import main
from herald_users.models import User

pytestmark = pytest.mark.integration


def test_create_admin_creates_then_promotes(users_settings, monkeypatch, capsys) -> None:
    settings = users_settings()
    monkeypatch.setattr("sys.stdin", io.StringIO("ops-Password-1\n"))
    assert main(["create-admin", "--email", "Ops@Example.com", "--password-stdin"], settings) == 0
    assert "admin ready" in capsys.readouterr().out
    from herald_common.db import connect_db, disconnect_db

    connect_db(settings)
    try:
        [ops] = User.objects(email="ops@example.com")
        assert ops.roles == ["user", "admin"] and ops.revision == 1
        assert ops.outbox_pending  # user.registered waits for the service's relay
        # Idempotent: running it again neither duplicates nor re-publishes.
        disconnect_db()
        monkeypatch.setattr("sys.stdin", io.StringIO("ops-Password-2\n"))
        assert (
            main(["create-admin", "--email", "ops@example.com", "--password-stdin"], settings) == 0
        )
        connect_db(settings)
        [again] = User.objects(email="ops@example.com")
        assert again.id == ops.id and len(again.outbox) == 1
        assert again.password_hash != ops.password_hash  # the new password took over
    finally:
        disconnect_db()


def test_create_admin_refuses_weak_password(users_settings, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("weak\n"))
    code = main(
        ["create-admin", "--email", "ops@example.com", "--password-stdin"], users_settings()
    )
    assert code == 2 and "admin_password" in capsys.readouterr().err


def test_generate_key_and_jwks(users_settings, tmp_path, capsys) -> None:
    out = tmp_path / "key.pem"
    assert main(["generate-key", "--out", str(out)]) == 0
    assert (out.stat().st_mode & 0o777) == 0o600 and "PRIVATE KEY" in out.read_text()
    assert main(["generate-key", "--out", str(out)]) == 2  # never overwrites
    capsys.readouterr()
    assert main(["jwks"], users_settings()) == 0
    [key] = json.loads(capsys.readouterr().out)["keys"]
    assert key["alg"] == "RS256" and "d" not in key
