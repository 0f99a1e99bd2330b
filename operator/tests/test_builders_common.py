"""Names, labels, owner references, the hardened pod and the checks before building."""

from __future__ import annotations

import json

import pytest
from herald_common.resources import load_text
from herald_operator.builders.common import (
    MAX_INLINE_RESOURCE,
    SpecError,
    child_name,
    container_for,
    inline_resource,
    labels,
    owner_reference,
    pod_template,
    run_job_name,
)
from herald_operator.config import OperatorSettings

from .conftest import campaign, schedule


def test_child_names_are_prefixed_by_kind_and_fit_52_characters() -> None:
    assert child_name("NotificationCampaign", "flash-sale") == "campaign-flash-sale"
    assert child_name("Schedule", "flash-sale") == "schedule-flash-sale"
    long = "a" * 50
    name = child_name("Schedule", long)
    assert len(name) == 52 and name.startswith("schedule-aaa")
    assert name != child_name("Schedule", long + "b")
    assert len(run_job_name("Schedule", long, "run-now=1")) <= 63
    assert run_job_name("Schedule", "s", "a") == run_job_name("Schedule", "s", "a")
    assert run_job_name("Schedule", "s", "a") != run_job_name("Schedule", "s", "b")


def test_labels_and_owner_reference() -> None:
    c = campaign()
    assert labels(c.kind, c.name) == {
        "app.kubernetes.io/name": "herald",
        "app.kubernetes.io/instance": "flash-sale",
        "app.kubernetes.io/component": "campaign",
        "app.kubernetes.io/part-of": "herald",
        "app.kubernetes.io/managed-by": "herald-operator",
        "herald.io/owner-kind": "NotificationCampaign",
        "herald.io/owner-name": "flash-sale",
    }
    assert owner_reference(c) == {
        "apiVersion": "herald.io/v1alpha1",
        "kind": "NotificationCampaign",
        "name": "flash-sale",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    [from_file] = load_text(
        "apiVersion: herald.io/v1alpha1\nkind: Schedule\nmetadata: {name: s}\n"
        "spec: {task: order-sweep, schedule: '* * * * *'}\n"
    )
    with pytest.raises(ValueError, match="no uid"):
        owner_reference(from_file)


def test_campaign_pod_runs_the_scheduler_fire_command(settings: OperatorSettings) -> None:
    c = campaign()
    container = container_for(c, settings)
    assert container["image"] == "registry.example/herald/scheduler:1.0"
    command = container["command"]
    assert command[:3] == ["herald-scheduler", "fire-campaign", "--resource-json"]
    inline = json.loads(command[3])
    assert inline["metadata"] == {"name": "flash-sale", "namespace": "shop"}
    assert inline["spec"]["schedule"] == "0 * * * *" and "runAt" not in inline["spec"]
    # What the pod gets is what the scheduler's loader accepts.
    [loaded] = load_text(command[3])
    assert loaded.spec == c.spec
    assert "--force" in command and "--wait-seconds" in command
    assert command[command.index("--termination-log") + 1] == "/dev/termination-log"
    assert "--preview" not in command
    dry = container_for(campaign(dryRun=True), settings)["command"]
    assert "--preview" in dry and "--wait-seconds" not in dry
    assert container_for(c, settings, run_id="r-7")["command"][-2:] == ["--run-id", "r-7"]
    assert container["env"] == [{"name": "HERALD_ENVIRONMENT", "value": "production"}]
    assert container["envFrom"] == [{"secretRef": {"name": "herald-infra"}}]
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_schedule_pods_run_their_task_in_its_image(settings: OperatorSettings) -> None:
    sweep = container_for(schedule(), settings)
    assert sweep["image"] == "registry.example/herald/scheduler:1.0"
    assert sweep["command"] == ["herald-scheduler", "sweep-orders", "--batch-size", "500"]
    batch = container_for(
        schedule(task="recommendation-batch", parameters={"changedSinceLastRun": True}), settings
    )
    assert batch["image"] == "registry.example/herald/recommendations:1.0"
    assert batch["command"] == ["herald-recommendations", "batch", "--changed-since-last-run"]


def test_pods_are_hardened(settings: OperatorSettings) -> None:
    pod = pod_template(schedule(), settings)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "herald-jobs"
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    [container] = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["metadata"]["labels"]["herald.io/owner-name"] == "order-sweep"


@pytest.mark.parametrize(
    ("build", "overrides", "reason", "words"),
    [
        (
            lambda: campaign(),
            {"scheduler_image": None},
            "ImageNotSet",
            "HERALD_OPERATOR_SCHEDULER_IMAGE",
        ),
        (
            lambda: schedule(task="recommendation-batch", parameters={}),
            {"recommendations_image": None},
            "ImageNotSet",
            "HERALD_OPERATOR_RECOMMENDATIONS_IMAGE",
        ),
        (
            lambda: campaign(audience={"categories": ["Books", "Spaceships"], "userIds": []}),
            {},
            "UnknownSegment",
            "unknown category 'Spaceships'",
        ),
        (
            lambda: campaign(
                audience={"categories": [], "userIds": [f"user-{i:07d}" for i in range(9000)]}
            ),
            {},
            "SpecTooLarge",
            f"at most {MAX_INLINE_RESOURCE}",
        ),
    ],
)
def test_specs_that_cannot_work_say_why(
    settings: OperatorSettings, build, overrides: dict, reason: str, words: str
) -> None:
    resource = build()
    with pytest.raises(SpecError) as caught:
        container_for(resource, settings.model_copy(update=overrides))
    assert caught.value.reason == reason
    assert words in caught.value.message


def test_segment_check_can_be_turned_off(settings: OperatorSettings) -> None:
    c = campaign(audience={"categories": ["Spaceships"], "userIds": []})
    container_for(c, settings.model_copy(update={"segment_categories": []}))


def test_inline_resource_is_stable() -> None:
    assert inline_resource(campaign()) == inline_resource(campaign())


def test_pod_commands_are_ones_the_scheduler_cli_accepts(settings: OperatorSettings) -> None:
    from herald_scheduler.cli import build_parser

    for resource, run_id in (
        (campaign(), None),
        (campaign(dryRun=True), "r-1"),
        (schedule(), None),
    ):
        command = container_for(resource, settings, run_id=run_id)["command"]
        assert command[0] == "herald-scheduler"
        args = build_parser().parse_args(command[1:])
        if args.command == "fire-campaign":
            assert args.resource_json and args.force and args.termination_log
            assert args.preview is resource.spec.dry_run
            assert args.wait_seconds == (0 if resource.spec.dry_run else settings.fire_wait_seconds)
            assert args.run_id == run_id
        else:
            assert (args.command, args.batch_size) == ("sweep-orders", 500)


def test_recommendation_batch_commands_are_ones_its_cli_accepts(settings: OperatorSettings) -> None:
    from herald_recommendations.cli import build_parser

    for changed in (True, False):
        resource = schedule(
            task="recommendation-batch", parameters={"changedSinceLastRun": changed}
        )
        command = container_for(resource, settings)["command"]
        assert command[0] == "herald-recommendations"
        args = build_parser().parse_args(command[1:])
        assert args.changed is changed


def test_digest_schedule_runs_the_notifications_digest_command(settings: OperatorSettings) -> None:
    from herald_notifications.cli import build_parser

    for parameters, limit in (({}, 500), ({"limit": 50}, 50)):
        container = container_for(schedule(task="digest", parameters=parameters), settings)
        assert container["image"] == "registry.example/herald/notifications:1.0"
        command = container["command"]
        assert command[:2] == ["herald-notifications", "digest"]
        args = build_parser().parse_args(command[1:])
        assert (args.command, args.limit) == ("digest", limit)


def test_digest_schedule_without_the_notifications_image_names_the_variable() -> None:
    settings = OperatorSettings(scheduler_image="s:1", recommendations_image="r:1")
    with pytest.raises(SpecError) as failed:
        container_for(schedule(task="digest", parameters={}), settings)
    assert "HERALD_OPERATOR_NOTIFICATIONS_IMAGE" in str(failed.value)
