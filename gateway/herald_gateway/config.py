"""Gateway settings (env prefix ``HERALD_GATEWAY_``; infra URLs also from ``HERALD_``)."""

from __future__ import annotations

from pathlib import Path

from herald_common.settings import HeraldSettings, component_config
from pydantic import Field


class GatewaySettings(HeraldSettings):
    """Where the services are and how hard the gateway protects them."""

    model_config = component_config("GATEWAY")

    service_name: str = "gateway"
    # The gateway is the public entry point: it listens on every interface by default.
    host: str = "0.0.0.0"
    port: int = 5000

    users_url: str = "http://127.0.0.1:4001"
    notifications_url: str = "http://127.0.0.1:4002"
    recommendations_url: str = "http://127.0.0.1:4003"
    scheduler_url: str = "http://127.0.0.1:4004"
    service_timeout_seconds: float = Field(default=5.0, gt=0)
    service_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    max_connections_per_service: int = Field(default=50, ge=1)

    # Protection.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_query_depth: int = Field(default=8, ge=2)
    max_query_complexity: int = Field(default=5000, ge=10)
    max_page_size: int = Field(default=100, ge=1)
    rate_limit_per_minute: int = Field(default=600, ge=0, description="0 disables it")
    # Hostile input (checked before parsing): nesting of variables and of the
    # document's brackets, and how many names (fields, arguments, types) it may hold.
    max_variables_depth: int = Field(default=16, ge=2, le=256)
    max_query_nesting: int = Field(default=64, ge=8, le=512)
    max_query_names: int = Field(default=1000, ge=50)
    # Cost of a request in service calls: aliases of one field with the same arguments
    # count once; mutations run one after another and each costs a call (register and
    # login also an argon2 hash).
    max_service_calls_per_request: int = Field(default=20, ge=1)
    max_mutations_per_request: int = Field(default=5, ge=1)
    max_password_mutations_per_request: int = Field(default=2, ge=1)
    # Fairness: one caller's service calls in flight in this process, out of
    # max_connections_per_service; further calls of that caller wait their turn.
    max_concurrent_calls_per_caller: int = Field(default=8, ge=1)
    # ... and one caller's operations executing at once (the event loop is shared);
    # beyond the waiting ones, RATE_LIMITED.
    max_concurrent_requests_per_caller: int = Field(default=4, ge=1)
    max_waiting_requests_per_caller: int = Field(default=32, ge=0)
    max_activity_batch: int = Field(default=1000, ge=1, le=1000)
    max_activity_future_seconds: int = Field(default=300, ge=0)

    # Caching (Redis) of profile, recommendations and unread count.
    cache_ttl_seconds: int = Field(default=60, ge=1)
    cache_enabled: bool = True
    cache_queue: str = "gateway.cache"
    # Product facts (name, category, price) kept in the process (herald_gateway.catalog);
    # 0 asks the recommendations service every time.
    product_cache_seconds: float = Field(default=300.0, ge=0)
    product_cache_size: int = Field(default=50_000, ge=1)
    # Namespace of the gateway's Redis keys (cache, rate limits); tests use their own.
    redis_prefix: str = "herald:gw"

    graphiql: bool = True
    # GraphiQL's files (gateway/graphiql/install.py puts them there; the image sets it).
    graphiql_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parents[1] / "graphiql" / "static"
    )
    websocket_ack_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often an authenticated WebSocket re-checks its token (deny-list: logout).
    websocket_token_recheck_seconds: float = Field(default=30.0, gt=0)
    # Messages one subscription may have waiting to be sent; one more ends it with
    # UNAVAILABLE (reason SLOW_CONSUMER) rather than holding up the others.
    subscription_queue_size: int = Field(default=100, ge=1)
    # Behind an ingress, the first X-Forwarded-For entry is the client (for rate limits).
    trust_forwarded_for: bool = False
