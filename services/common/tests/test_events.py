"""Event contracts: strict models and committed JSON Schema snapshots."""

import json
from datetime import UTC, datetime

import pytest
from herald_common.events import (
    EVENT_TYPES,
    SCHEMA_DIR,
    USER_EVENTS,
    InvalidEvent,
    NotificationRequested,
    UserDeleted,
    json_schema,
    make_event,
    parse_event,
)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_schema_snapshot_matches_models(event_type: str) -> None:
    snapshot = SCHEMA_DIR / f"{event_type}.json"
    assert snapshot.exists(), (
        f"missing snapshot {snapshot}; run python -m herald_common.events --write"
    )
    committed = json.loads(snapshot.read_text())
    assert committed == json.loads(json.dumps(json_schema(event_type))), (
        f"the wire format of {event_type} changed; if intended, bump its version and "
        "regenerate with python -m herald_common.events --write"
    )


def test_every_documented_event_has_a_model() -> None:
    assert set(EVENT_TYPES) == {
        "user.registered",
        "user.preferences_updated",
        "user.deleted",
        "activity.recorded",
        "order.status_changed",
        "campaign.fired",
        "notification.requested",
        "notification.created",
        "notification.read",
        "notification.inbox_changed",
    }
    for model in EVENT_TYPES.values():
        assert "producer" in (model.__doc__ or ""), f"{model.__name__} docstring names no producer"


def test_round_trip() -> None:
    event = make_event("user.deleted", UserDeleted(user_id="u1", revision=3), source="users")
    parsed = parse_event(event.to_bytes())
    assert parsed.id == event.id
    assert isinstance(parsed.payload, UserDeleted)
    assert parsed.payload.revision == 3


def test_unknown_field_is_rejected_naming_it() -> None:
    event = make_event("user.deleted", UserDeleted(user_id="u1", revision=1), source="users")
    data = json.loads(event.to_bytes())
    data["payload"]["surprise"] = True
    with pytest.raises(InvalidEvent, match=r"payload\.surprise: Extra inputs are not permitted"):
        parse_event(data)
    data = json.loads(event.to_bytes())
    data["extra_top"] = 1
    with pytest.raises(InvalidEvent, match=r"extra_top"):
        parse_event(data)


def test_wrong_type_is_rejected_naming_the_field() -> None:
    payload = {
        "idempotency_key": "k",
        "user_id": "u1",
        "type": "spam",
        "content": "hello",
        "source": "test",
        "requested_at": datetime.now(UTC).isoformat(),
    }
    with pytest.raises(InvalidEvent, match=r"payload\.type"):
        parse_event({"type": "notification.requested", "source": "t", "payload": payload})
    payload["type"] = "promotion"
    payload["requested_at"] = "yesterday"
    with pytest.raises(InvalidEvent, match=r"payload\.requested_at"):
        parse_event({"type": "notification.requested", "source": "t", "payload": payload})


def test_unknown_event_type_and_garbage() -> None:
    with pytest.raises(InvalidEvent, match="unknown event type"):
        parse_event({"type": "user.exploded", "source": "t", "payload": {}})
    with pytest.raises(InvalidEvent, match="not JSON"):
        parse_event(b"{nope")
    with pytest.raises(InvalidEvent, match="JSON object"):
        parse_event(b"[1, 2]")


def test_make_event_refuses_a_mismatched_payload() -> None:
    with pytest.raises(InvalidEvent, match="needs NotificationRequested"):
        make_event("notification.requested", UserDeleted(user_id="u", revision=1), source="x")


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_payload_class_knows_its_event_type(event_type: str) -> None:
    assert EVENT_TYPES[event_type].event_type == event_type


def test_make_event_takes_the_type_from_the_payload() -> None:
    event = make_event(UserDeleted(user_id="u", revision=3), source="x")
    assert event.type == "user.deleted"
    assert parse_event(event.to_bytes()).payload == UserDeleted(user_id="u", revision=3)
    assert event.type.startswith(USER_EVENTS.removesuffix("*"))


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(InvalidEvent, match=r"payload\.requested_at"):
        parse_event(
            {
                "type": "notification.requested",
                "source": "t",
                "payload": NotificationRequested(
                    idempotency_key="k",
                    user_id="u",
                    type="promotion",
                    content={"title": "t", "body": "b"},
                    source="s",
                    requested_at=datetime.now(UTC),
                ).model_dump(mode="json")
                | {"requested_at": "2026-01-01T10:00:00"},
            }
        )
