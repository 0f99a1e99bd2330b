"""Settings of the notifications service (env prefix ``HERALD_NOTIFICATIONS_``)."""

from __future__ import annotations

from typing import Literal

from herald_common.events import NotificationType
from herald_common.settings import HeraldSettings, component_config
from pydantic import Field, SecretStr


class NotificationsSettings(HeraldSettings):
    """Everything the notifications service can be told from the environment."""

    model_config = component_config("NOTIFICATIONS")

    service_name: str = "notifications"
    mongodb_db: str = "herald_notifications"
    host: str = "127.0.0.1"
    port: int = 4002

    # Queues (names start with "notifications" so the gateway routes DLQ admin by prefix).
    users_queue: str = "notifications.users"
    requests_queue: str = "notifications.requests"
    batch_max: int = Field(default=100, ge=1, le=1000)
    batch_wait_ms: int = Field(default=50, ge=0, le=10_000)
    # Batches in progress at once (one stores while the next reads its users).
    batch_concurrency: int = Field(default=2, ge=1, le=16)
    # Order updates have a queue of their own (``<requests_queue>.urgent``), batched with
    # a shorter wait: they never queue behind a campaign's promotions.
    urgent_batch_wait_ms: int = Field(default=5, ge=0, le=10_000)

    @property
    def urgent_requests_queue(self) -> str:
        return f"{self.requests_queue}.urgent"

    # Replicated users kept in the process (herald_common.replica_cache); 0 turns it off.
    user_cache_seconds: float = Field(default=30.0, ge=0)
    user_cache_size: int = Field(default=50_000, ge=0)

    # Delivery policy.
    quiet_hours_types: list[NotificationType] = Field(
        default_factory=lambda: list[NotificationType](["promotion", "recommendation"])
    )
    unknown_user_recheck_seconds: float = Field(default=10.0, gt=0)
    unknown_user_grace_seconds: float = Field(default=3600.0, ge=0)

    # Periodic work: releasing deferred requests, retention.
    run_sweeps: bool = True
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    retention_days: int = Field(default=90, ge=1)
    retention_sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    # TTL index on sent_at: only for a real MongoDB (FerretDB 1.x has no TTL indexes);
    # the retention sweep runs either way.
    use_ttl_index: bool = False

    page_size_max: int = Field(default=100, ge=1, le=1000)

    # Email channel (herald_notifications.email): its own queue on notification.created.
    email_enabled: bool = True
    email_queue: str = "notifications.email"
    email_batch_max: int = Field(default=20, ge=1, le=500)
    email_batch_wait_ms: int = Field(default=100, ge=0, le=10_000)
    email_from: str = "Herald <no-reply@herald.local>"
    # Right part of each Message-ID (<notification id>@domain).
    email_message_id_domain: str = "herald.local"
    # Where the gateway is reached from a mail client: unsubscribe links.
    public_url: str = "http://localhost:5000"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_validate_certs: bool = True
    smtp_ca_file: str | None = None
    # Shared with the users service (signs one-click unsubscribe links); required in
    # production, a development secret locally.
    unsubscribe_secret: SecretStr | None = None
