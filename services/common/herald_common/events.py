"""Event contracts: the only definition of what travels over RabbitMQ.

Every message on the ``herald.events`` topic exchange is an :class:`Envelope` whose
``type`` is also the routing key and whose ``payload`` is the typed model registered
for that type in :data:`EVENT_TYPES`. All models forbid unknown fields, so a producer
typo is caught at the producer, and a consumer rejects (dead-letters) a malformed event
with a message naming the field.

JSON Schema snapshots of every event live in ``herald_common/schemas/`` and are
checked by a test; regenerate them with ``python -m herald_common.events --write``
only for an intended wire change (and bump the event ``version``).

Long module: the only definition of the wire format — every payload model, the
envelope, the binding patterns and the schema snapshots — kept in one place on purpose.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from herald_common.clock import utcnow
from herald_common.logs import current_correlation_id
from herald_common.preferences import Preferences

NotificationType = Literal["promotion", "order_update", "recommendation"]
# What an inbox may hold: the requested types plus the digests built from held ones.
StoredNotificationType = Literal["promotion", "order_update", "recommendation", "digest"]
ActivityKind = Literal["view", "add_to_cart", "purchase"]
OrderStatus = Literal["placed", "paid", "shipped", "out_for_delivery", "delivered", "cancelled"]
Content = str | dict[str, Any]

SCHEMA_DIR = Path(__file__).parent / "schemas"


class Payload(BaseModel):
    """Base of every event payload: strict about unknown fields. Each payload class
    knows its event type (``event_type``, set from :data:`EVENT_TYPES`), so
    ``make_event(payload, source=...)`` needs no type string."""

    model_config = ConfigDict(extra="forbid")
    event_type: ClassVar[str] = ""

    def routing_key(self) -> str:
        """The routing key the event is published with: its type, unless the payload
        chooses a lane of its own."""
        return self.event_type


# --- users ---------------------------------------------------------------------------


class UserRegistered(Payload):
    """``user.registered`` — producer: users. Consumers: notifications, scheduler,
    recommendations, gateway (cache).

    Carries the full user snapshot so a replica needs no other source. ``revision``
    grows by one with every change of the user; consumers ignore older revisions.
    """

    user_id: str
    name: str
    email: str
    roles: list[str] = Field(default_factory=list)
    preferences: Preferences
    revision: int = Field(ge=1)
    created_at: AwareDatetime


class UserPreferencesUpdated(Payload):
    """``user.preferences_updated`` — producer: users. Consumers: notifications,
    scheduler, recommendations, gateway (cache invalidation).

    A full snapshot of the user's profile and preferences after the change (not a
    diff), so applying the newest revision is enough to be current.
    """

    user_id: str
    name: str
    email: str
    preferences: Preferences
    revision: int = Field(ge=1)


class UserDeleted(Payload):
    """``user.deleted`` — producer: users. Consumers: notifications, scheduler,
    recommendations, gateway. Replicas drop the user; later revisions never revive it."""

    user_id: str
    revision: int = Field(ge=1)


# --- activity and orders ----------------------------------------------------------------


class Activity(Payload):
    """One browsing or purchase event of a user."""

    user_id: str
    kind: ActivityKind
    product_id: str
    occurred_at: AwareDatetime
    session_id: str | None = None
    quantity: int = Field(default=1, ge=1, le=1000)
    # Catalog details, filled in by the producer (the gateway looks them up) so that
    # consumers such as the scheduler need no catalog of their own.
    product_name: str | None = None
    category: str | None = None
    price: float | None = Field(default=None, ge=0)


class ActivityRecorded(Payload):
    """``activity.recorded`` — producers: gateway (trackActivity), mock data generator.
    Consumers: recommendations (all kinds), scheduler (purchases place orders).

    A batch: one message carries up to 1000 activities.
    """

    activities: list[Activity] = Field(min_length=1, max_length=1000)


class OrderItem(Payload):
    product_id: str
    name: str
    quantity: int = Field(ge=1)
    price: float = Field(ge=0)


class OrderStatusChanged(Payload):
    """``order.status_changed`` — producer: scheduler. Consumers: gateway (cache),
    analytics. ``sequence`` counts the order's changes (1 = placed)."""

    order_id: str
    user_id: str
    status: OrderStatus
    previous_status: OrderStatus | None = None
    items: list[OrderItem]
    total: float = Field(ge=0)
    sequence: int = Field(ge=1)
    changed_at: AwareDatetime


# --- campaigns --------------------------------------------------------------------------


class CampaignAudience(Payload):
    """Who a campaign goes to: users opted into its type, optionally narrowed."""

    categories: list[str] = Field(default_factory=list)
    user_ids: list[str] = Field(default_factory=list)


class CampaignTemplate(Payload):
    """Content template; ``{name}``, ``{favorite_category}``, ``{product_name}`` etc.
    are replaced per user."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)


class CampaignFired(Payload):
    """``campaign.fired`` — producers: the operator's CronJob pods, the local schedule
    runner, the gateway (fireCampaign). Consumer: scheduler (fan-out).

    ``run_id`` identifies one firing; fan-out is idempotent per run and user.
    """

    campaign: str = Field(min_length=1, max_length=253)
    namespace: str = "default"
    run_id: str = Field(min_length=1, max_length=200)
    type: NotificationType
    audience: CampaignAudience = Field(default_factory=CampaignAudience)
    template: CampaignTemplate
    dry_run: bool = False
    fired_at: AwareDatetime


# --- notifications ----------------------------------------------------------------------


class NotificationRequested(Payload):
    """``notification.requested`` — producers: scheduler (orders, campaigns),
    recommendations. Consumer: notifications.

    ``idempotency_key`` makes delivery exactly-once in effect: a redelivered or
    re-sent request with the same key never creates a second notification.
    ``collapse_key``: a newer notification with the same key replaces an unread older one.
    """

    idempotency_key: str = Field(min_length=1, max_length=300)
    user_id: str
    type: NotificationType
    content: Content
    collapse_key: str | None = Field(default=None, max_length=300)
    source: str = Field(min_length=1, max_length=100)
    requested_at: AwareDatetime

    def routing_key(self) -> str:
        """Order updates travel in a lane of their own (:data:`URGENT_TYPES`), so they
        never wait behind a campaign's backlog of promotions."""
        return f"{self.event_type}.urgent" if self.type in URGENT_TYPES else self.event_type


# Requested types that shoppers wait for: routed as ``notification.requested.urgent``.
URGENT_TYPES: frozenset[str] = frozenset({"order_update"})


class NotificationCreated(Payload):
    """``notification.created`` — producer: notifications. Consumers: gateway (cache
    invalidation), analytics. Real-time pushes go over Redis, not this event."""

    notification_id: str
    user_id: str
    type: StoredNotificationType
    content: Content
    sent_at: AwareDatetime
    collapse_key: str | None = None
    replaced_id: str | None = None
    source: str
    idempotency_key: str


class NotificationRead(Payload):
    """``notification.read`` — producer: notifications. Consumer: gateway (cache)."""

    user_id: str
    notification_ids: list[str]
    read_at: AwareDatetime


InboxChangeKind = Literal[
    "read", "seen", "archived", "unarchived", "deleted", "snoozed", "unsnoozed"
]


class NotificationInboxChanged(Payload):
    """``notification.inbox_changed`` — producer: notifications (staged in the changed
    notification's outbox, one event per notification). Consumer: gateway (cache
    invalidation). Open tabs learn of a change from the user's Redis channel, which
    also carries the new counts."""

    user_id: str
    kind: InboxChangeKind
    notification_ids: list[str]
    at: AwareDatetime


EVENT_TYPES: dict[str, type[Payload]] = {
    "user.registered": UserRegistered,
    "user.preferences_updated": UserPreferencesUpdated,
    "user.deleted": UserDeleted,
    "activity.recorded": ActivityRecorded,
    "order.status_changed": OrderStatusChanged,
    "campaign.fired": CampaignFired,
    "notification.requested": NotificationRequested,
    "notification.created": NotificationCreated,
    "notification.read": NotificationRead,
    "notification.inbox_changed": NotificationInboxChanged,
}
EVENT_VERSIONS: dict[str, int] = dict.fromkeys(EVENT_TYPES, 1)
for _type, _model in EVENT_TYPES.items():
    _model.event_type = _type

# Binding patterns of the consumer queues (topic-exchange routing keys): services bind
# with these, never with event-type literals of their own.
USER_EVENTS = "user.*"
ORDER_EVENTS = "order.*"
NOTIFICATION_EVENTS = "notification.*"
ACTIVITY_EVENTS = ActivityRecorded.event_type
CAMPAIGN_EVENTS = CampaignFired.event_type
NOTIFICATION_REQUESTS = NotificationRequested.event_type
URGENT_NOTIFICATION_REQUESTS = f"{NotificationRequested.event_type}.urgent"
ALL_NOTIFICATION_REQUESTS = f"{NotificationRequested.event_type}.#"  # both lanes

P = TypeVar("P", bound=Payload)


class Envelope(BaseModel, Generic[P]):
    """The wire format of every event."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    source: str
    correlation_id: str | None = None
    payload: P

    # Set by consumers, never sent: the broker may have delivered this event before (a
    # redelivery or a retry), so a handler that skips lookups for fresh events must do
    # them for this one.
    _maybe_seen: bool = PrivateAttr(default=False)

    @property
    def maybe_seen(self) -> bool:
        return self._maybe_seen

    @property
    def routing_key(self) -> str:
        """What the event is published with (:meth:`Payload.routing_key`)."""
        payload = self.payload
        return payload.routing_key() if isinstance(payload, Payload) else self.type

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class InvalidEvent(ValueError):
    """A message that is not a valid Herald event; the reason names the field."""


def _describe(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


@overload
def make_event(
    payload: Payload,
    /,
    *,
    source: str,
    correlation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope[Any]: ...


@overload
def make_event(
    type_: str,
    payload: Payload,
    /,
    *,
    source: str,
    correlation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope[Any]: ...


def make_event(
    first: str | Payload,
    second: Payload | None = None,
    /,
    *,
    source: str,
    correlation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope[Any]:
    """Build an envelope for ``payload`` (its class names the event type):
    ``make_event(payload, source=...)``. The older ``make_event(type_, payload, ...)``
    refuses a payload of the wrong model for ``type_``.

    ``event_id`` gives an event derived from stored state a stable id, so publishing it
    again (after a crash) is recognisable as the same event."""
    if isinstance(first, Payload):
        payload, type_ = first, first.event_type
    elif second is not None:
        payload, type_ = second, first
    else:
        raise InvalidEvent("payload: missing")
    model = EVENT_TYPES.get(type_)
    if model is None:
        raise InvalidEvent(f"type: unknown event type {type_!r}")
    if not isinstance(payload, model):
        raise InvalidEvent(f"payload: {type_} needs {model.__name__}, got {type(payload).__name__}")
    return Envelope[Any](
        id=event_id or uuid.uuid4(),
        type=type_,
        version=EVENT_VERSIONS[type_],
        source=source,
        correlation_id=correlation_id or current_correlation_id(),
        payload=payload,
    )


# The envelope model of each type, made once instead of parametrizing the generic
# model for every message.
_ENVELOPES: dict[str, type[Envelope[Any]]] = {t: Envelope[m] for t, m in EVENT_TYPES.items()}  # type: ignore[valid-type]


def parse_event(raw: bytes | str | dict[str, Any]) -> Envelope[Any]:
    """Parse and validate a message into an envelope with a typed payload."""
    if isinstance(raw, (bytes, str)):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"body: not JSON ({exc})") from exc
    else:
        data = raw
    if not isinstance(data, dict):
        raise InvalidEvent("body: must be a JSON object")
    type_ = data.get("type")
    envelope = _ENVELOPES.get(type_) if isinstance(type_, str) else None
    if envelope is None:
        raise InvalidEvent(f"type: unknown event type {type_!r}")
    try:
        return envelope.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from exc


def _strip_descriptions(node: Any) -> Any:
    # Docstrings are documentation, not wire format: keep them out of the snapshot.
    if isinstance(node, dict):
        return {k: _strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def json_schema(type_: str) -> dict[str, Any]:
    """The JSON Schema of the full envelope for one event type."""
    model = EVENT_TYPES[type_]
    schema = _strip_descriptions(Envelope[model].model_json_schema())  # type: ignore[valid-type]
    schema["title"] = type_
    schema["x-herald-version"] = EVENT_VERSIONS[type_]
    return schema


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for type_ in EVENT_TYPES:
        path = directory / f"{type_}.json"
        path.write_text(json.dumps(json_schema(type_), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - maintenance command
    import sys

    if "--write" in sys.argv:
        for p in write_schemas():
            print(p)
    else:
        print("usage: python -m herald_common.events --write")
