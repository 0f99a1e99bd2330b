"""Settings of the users service (env prefix ``HERALD_USERS_``).

Secrets have no defaults outside local/test mode: production needs a signing key
(``HERALD_USERS_PRIVATE_KEY_PEM`` or ``HERALD_USERS_PRIVATE_KEY_FILE``) and bootstraps an
admin only when both ``HERALD_USERS_ADMIN_EMAIL`` and ``HERALD_USERS_ADMIN_PASSWORD``
are given.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from herald_common.settings import HeraldSettings, component_config
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Where the gateway calls from when Herald runs locally (dev/run.sh, the e2e tests).
LOOPBACK = ["127.0.0.0/8", "::1/128"]

LOCAL_ADMIN_EMAIL = "admin@herald.local"
# Only ever used when environment is local/test; production has no default.
LOCAL_ADMIN_PASSWORD = "herald-admin-local"


# Where a local/test run keeps its generated signing key: relative to the working
# directory (dev/run.sh runs every component from the repository root, so it is
# ``<repo>/.run/keys/users-jwt.pem`` there); HERALD_USERS_LOCAL_KEY_FILE moves it.
LOCAL_KEY_FILE = Path(".run/keys/users-jwt.pem")


class UsersSettings(HeraldSettings):
    """Configuration of the users service."""

    model_config = component_config("USERS")

    service_name: str = "users"
    mongodb_db: str = "herald_users"
    host: str = "127.0.0.1"
    port: int = Field(default=4001, ge=1, le=65535)

    # Signing key (RS256). Neither set in local/test: a key is generated once into
    # ``local_key_file`` and reused, so tokens survive restarts.
    private_key_pem: SecretStr | None = None
    private_key_file: Path | None = None
    local_key_file: Path = LOCAL_KEY_FILE

    # Public keys of earlier signing keys, still served in the JWKS after a key
    # rotation until the tokens they signed have expired.
    previous_public_keys_pem: list[str] = Field(default_factory=list)

    access_token_ttl_seconds: int = Field(default=15 * 60, ge=10, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60, le=365 * 24 * 3600)
    # How often expired refresh-token records are swept (no TTL indexes on FerretDB).
    refresh_sweep_interval_seconds: float = Field(default=3600.0, gt=0)

    # Password hashing (argon2id). Defaults are argon2-cffi's recommended profile.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)

    # Login rate limits (Redis fixed windows).
    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=15 * 60, ge=1)
    login_max_attempts_per_address: int = Field(default=20, ge=1)
    login_address_window_seconds: int = Field(default=60, ge=1)
    # X-Forwarded-For is believed only from these peers (addresses or networks,
    # comma-separated in the environment): the gateway's. Locally the gateway calls
    # from loopback; in a cluster, list the gateway pods' network. Anyone else's header
    # is ignored, so a direct caller cannot pick the address its logins count against.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(LOOPBACK))
    # Off: the socket peer is always the client address.
    trust_forwarded_for: bool = True
    rate_limit_prefix: str = "herald:users:ratelimit"

    # Shared with the notifications service: verifies one-click unsubscribe links
    # (herald_common.unsubscribe). Required in production; a development secret locally.
    unsubscribe_secret: SecretStr | None = None

    # Admin bootstrapped (created or updated) at startup.
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    admin_name: str = "Herald admin"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or network"
                ) from None
        return value

    def trusted_networks(self) -> list[IPNetwork]:
        """``trusted_proxies`` as networks."""
        return [ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies]

    @model_validator(mode="after")
    def _users_rules(self) -> UsersSettings:
        if self.private_key_pem is not None and self.private_key_file is not None:
            raise ValueError("set private_key_pem or private_key_file, not both")
        if self.environment == "production":
            if self.private_key_pem is None and self.private_key_file is None:
                raise ValueError(
                    "production needs a token signing key: set HERALD_USERS_PRIVATE_KEY_PEM "
                    "or HERALD_USERS_PRIVATE_KEY_FILE (`herald-users generate-key` makes one)"
                )
            if (self.admin_email is None) != (self.admin_password is None):
                raise ValueError(
                    "set both HERALD_USERS_ADMIN_EMAIL and _ADMIN_PASSWORD, or neither"
                )
        elif self.admin_email is None and self.admin_password is None:
            self.admin_email = LOCAL_ADMIN_EMAIL
            self.admin_password = SecretStr(LOCAL_ADMIN_PASSWORD)
        elif self.admin_email is None or self.admin_password is None:
            raise ValueError("set both HERALD_USERS_ADMIN_EMAIL and _ADMIN_PASSWORD, or neither")
        return self
