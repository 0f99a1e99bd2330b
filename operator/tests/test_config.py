"""Operator settings: one class, env prefix HERALD_OPERATOR_."""

from __future__ import annotations

import pytest
from herald_operator.config import OperatorSettings
from pydantic import ValidationError


def test_defaults_watch_every_namespace_and_elect_a_leader() -> None:
    settings = OperatorSettings()
    assert settings.clusterwide and settings.namespaces == []
    assert settings.leader_election and settings.lease_name == "herald-operator"
    assert settings.scheduler_image is None
    assert settings.image_pull_policy == "IfNotPresent"
    assert "Books" in settings.segment_categories


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_OPERATOR_NAMESPACES", "shop, staging")
    monkeypatch.setenv("HERALD_OPERATOR_SCHEDULER_IMAGE", "herald/scheduler:2")
    monkeypatch.setenv("HERALD_OPERATOR_JOB_ENV_FROM_SECRETS", '["infra", "mongo"]')
    monkeypatch.setenv("HERALD_OPERATOR_JOB_ENV", '{"HERALD_ENVIRONMENT": "production"}')
    monkeypatch.setenv("HERALD_OPERATOR_JOB_RESOURCES", '{"limits": {"memory": "1Gi"}}')
    monkeypatch.setenv("HERALD_OPERATOR_SEGMENT_CATEGORIES", "")
    settings = OperatorSettings()
    assert settings.namespaces == ["shop", "staging"] and not settings.clusterwide
    assert settings.image_for("scheduler") == "herald/scheduler:2"
    assert settings.image_for("recommendations") is None
    assert settings.job_env_from_secrets == ["infra", "mongo"]
    assert settings.job_env == {"HERALD_ENVIRONMENT": "production"}
    assert settings.job_resources.limits == {"memory": "1Gi"}
    assert settings.job_resources.requests["cpu"] == "50m"
    assert settings.segment_categories == []


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_OPERATOR_IMAGE_PULL_POLICY", "Sometimes")
    with pytest.raises(ValidationError, match="image_pull_policy"):
        OperatorSettings()
