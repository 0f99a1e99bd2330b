"""Resource files: the CRDs are the schema; invalid files name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from herald_common.resources import (
    CRD_FILES,
    NotificationCampaign,
    ResourceError,
    Schedule,
    from_object,
    load_directories,
    load_file,
    load_text,
)
from herald_common.resources.schema import crd_text, openapi_schema

REPO = Path(__file__).resolve().parents[3]

CAMPAIGN = """\
apiVersion: herald.io/v1alpha1
kind: NotificationCampaign
metadata:
  name: spring-sale
spec:
  type: promotion
  schedule: "0 9 * * 1"
  timeZone: Europe/Paris
  template:
    title: "Hi {first_name}"
    body: "Deals in {favorite_category}"
"""


def _campaign(**replace: str) -> str:
    text = CAMPAIGN
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def test_packaged_crds_are_the_repository_crds() -> None:
    for name in CRD_FILES.values():
        assert (REPO / "crds" / name).read_text() == crd_text(
            next(k for k, v in CRD_FILES.items() if v == name)
        )


@pytest.mark.parametrize("kind", list(CRD_FILES))
def test_crds_are_complete(kind: str) -> None:
    doc = yaml.safe_load(crd_text(kind))
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["spec"]["group"] == "herald.io"
    [version] = doc["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Schedule", "Suspend", "Last-Run", "Age"} <= columns

    def structural(node: dict, path: str) -> None:
        # Every node says its type, except logical junctors and preserved objects.
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            raise AssertionError(f"{path} has no type")
        for name, sub in (node.get("properties") or {}).items():
            structural(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            structural(node["items"], f"{path}[]")

    structural(version["schema"]["openAPIV3Schema"], kind)
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["suspend"]["default"] is False
    assert spec["properties"]["timeZone"]["default"] == "UTC"


def test_examples_are_valid_and_cover_the_local_demo() -> None:
    resources, errors = load_directories(
        [REPO / "examples" / "campaigns", REPO / "examples" / "schedules"]
    )
    assert errors == []
    by_name = {r.name: r for r in resources}
    flash = by_name["flash-sale"]
    assert isinstance(flash, NotificationCampaign)
    assert flash.local_interval.total_seconds() == 10
    assert by_name["weekly-picks"].spec.schedule == "0 9 * * 1"
    sweep, batch = by_name["order-sweep"], by_name["recommendation-batch"]
    assert isinstance(sweep, Schedule) and sweep.spec.task == "order-sweep"
    assert isinstance(batch, Schedule) and batch.spec.task == "recommendation-batch"
    assert sweep.local_interval.total_seconds() == 10
    # The batch follows its cron locally too: no local-interval annotation.
    assert batch.local_interval is None and batch.spec.schedule == "*/5 * * * *"
    digest = by_name["digest"]
    assert isinstance(digest, Schedule) and digest.spec.task == "digest"
    assert digest.local_interval is None  # the local runner follows the cron
    assert digest.spec.schedule == "* * * * *"


def test_defaults_are_applied_like_the_api_server() -> None:
    [campaign] = load_text(_campaign(**{"  timeZone: Europe/Paris\n": ""}))
    assert isinstance(campaign, NotificationCampaign)
    assert campaign.spec.time_zone == "UTC"
    assert campaign.spec.suspend is False and campaign.spec.dry_run is False
    assert campaign.spec.audience.categories == [] and campaign.spec.template.data == {}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({'"0 9 * * 1"': '"0 25 * * 1"'}, "spec.schedule", "invalid cron"),
        ({'"0 9 * * 1"': '"*/10 * * * * *"'}, "spec.schedule", "5 fields"),
        ({"Europe/Paris": "Mars/Olympus"}, "spec.timeZone", "time zone"),
        ({"type: promotion": "type: order_update"}, "spec.type", "not one of"),
        ({"type: promotion": "type: promo"}, "spec.type", "not one of"),
        ({"{first_name}": "{firstname}"}, "spec.template.title", "unknown variable {firstname}"),
        ({"{favorite_category}": "{0}"}, "spec.template.body", "positional"),
        ({"  timeZone": "  tmeZone"}, "spec.tmeZone", "unknown field"),
        ({'    title: "Hi {first_name}"\n': ""}, "spec.template.title", "required"),
        ({'  schedule: "0 9 * * 1"\n': ""}, "spec", "exactly one of: schedule, runAt"),
        (
            {
                '  schedule: "0 9 * * 1"\n': '  schedule: "0 9 * * 1"\n  runAt: 2030-01-01T09:00:00Z\n'
            },
            "spec",
            "exactly one of",
        ),
        ({"name: spring-sale": "name: Spring_Sale"}, "metadata.name", "lowercase"),
        ({"kind: NotificationCampaign": "kind: Campaign"}, "kind", "must be one of"),
        (
            {"  type: promotion\n": "  type: promotion\n  suspend: maybe\n"},
            "spec.suspend",
            "boolean",
        ),
        (
            {"  type: promotion\n": "  type: promotion\n  audience:\n    userIds: [7]\n"},
            "spec.audience.userIds[0]",
            "string",
        ),
    ],
)
def test_invalid_campaign_file_names_the_file_and_field(
    tmp_path: Path, change: dict[str, str], field: str, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_campaign(**change))
    with pytest.raises(ResourceError) as caught:
        load_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert f": {field}: " in message, message
    assert words in message, message
    assert caught.value.field == field


def test_one_shot_campaign_needs_an_aware_instant() -> None:
    text = _campaign(**{'  schedule: "0 9 * * 1"\n': "  runAt: 2030-01-01T09:00:00Z\n"})
    [campaign] = load_text(text)
    assert campaign.spec.run_at.isoformat() == "2030-01-01T09:00:00+00:00"
    with pytest.raises(ResourceError, match=r"spec\.runAt: .*timezone"):
        load_text(text.replace("09:00:00Z", "09:00:00"))


def test_schedule_parameters_are_checked_per_task() -> None:
    text = """\
apiVersion: herald.io/v1alpha1
kind: Schedule
metadata: {name: sweep}
spec:
  task: order-sweep
  schedule: "* * * * *"
  parameters: {batchSize: 0}
"""
    with pytest.raises(ResourceError, match=r"spec\.parameters\.batchSize: must be at least 1"):
        load_text(text)
    with pytest.raises(ResourceError, match=r"spec\.parameters\.colour: unknown parameter"):
        load_text(text.replace("batchSize: 0", "colour: blue"))
    with pytest.raises(ResourceError, match=r"spec\.task: 'backup' is not one of"):
        load_text(text.replace("order-sweep", "backup"))


def test_bad_local_interval_and_bad_yaml_are_reported(tmp_path: Path) -> None:
    text = _campaign(
        **{
            "  name: spring-sale\n": "  name: spring-sale\n  annotations:\n    herald.io/local-interval: soon\n"
        }
    )
    with pytest.raises(ResourceError, match=r"metadata\.annotations\[herald\.io/local-interval\]"):
        load_text(text)
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "good.yaml").write_text(CAMPAIGN)
    (tmp_path / "dupe.yaml").write_text(CAMPAIGN)
    resources, errors = load_directories([tmp_path])
    assert [r.name for r in resources] == ["spring-sale"]
    messages = sorted(str(e) for e in errors)
    assert any("broken.yaml" in m and "invalid YAML" in m for m in messages)
    assert any("good.yaml" in m and "already defined in" in m for m in messages)


def test_schema_is_taken_from_the_crd() -> None:
    schema = openapi_schema("NotificationCampaign")
    assert schema["properties"]["spec"]["properties"]["type"]["enum"] == [
        "promotion",
        "recommendation",
    ]


@pytest.mark.parametrize("kind", list(CRD_FILES))
def test_every_spec_field_is_documented_for_kubectl_explain(kind: str) -> None:
    undocumented: list[str] = []

    def walk(node: dict, path: str) -> None:
        for name, sub in (node.get("properties") or {}).items():
            if not sub.get("description"):
                undocumented.append(f"{path}.{name}")
            walk(sub, f"{path}.{name}")

    walk(openapi_schema(kind)["properties"]["spec"], "spec")
    assert undocumented == []


def test_cluster_objects_load_without_server_metadata_or_status() -> None:
    body = {
        "apiVersion": "herald.io/v1alpha1",
        "kind": "NotificationCampaign",
        "metadata": {
            "name": "spring-sale",
            "namespace": "shop",
            "uid": "0c6f-42",
            "generation": 3,
            "resourceVersion": "981",
            "creationTimestamp": "2030-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"herald.io/run-now": "true"},
        },
        "spec": yaml.safe_load(CAMPAIGN)["spec"],
        "status": {"observedGeneration": 2},
    }
    campaign = from_object(body)
    assert isinstance(campaign, NotificationCampaign)
    assert (campaign.namespace, campaign.metadata.uid, campaign.metadata.generation) == (
        "shop",
        "0c6f-42",
        3,
    )
    assert campaign.source == "<cluster>"
    # What the API server cannot check is checked here, naming the field.
    body["spec"]["template"]["title"] = "Hi {coupon}"
    with pytest.raises(ResourceError) as caught:
        from_object(body)
    assert caught.value.reason.startswith("spec.template.title: unknown variable {coupon}")
