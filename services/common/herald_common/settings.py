"""Settings base shared by every Herald component.

Each component defines one subclass with its own env prefix, e.g.::

    class UsersSettings(HeraldSettings):
        model_config = component_config("USERS")   # HERALD_USERS_...
        port: int = 4001

Infrastructure URLs can be set once for every component with the plain ``HERALD_``
prefix (``HERALD_MONGODB_URI``); a component-specific variable
(``HERALD_USERS_MONGODB_URI``) wins over it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

GLOBAL_PREFIX = "HERALD_"


def component_config(component: str, **extra: object) -> SettingsConfigDict:
    """Settings config for a component: env prefix ``HERALD_<COMPONENT>_``."""
    return SettingsConfigDict(
        env_prefix=f"{GLOBAL_PREFIX}{component.upper()}_",
        extra="ignore",
        env_nested_delimiter="__",
        **extra,  # type: ignore[typeddict-item]
    )


class HeraldSettings(BaseSettings):
    """Fields every component has: where the infrastructure is and how to behave."""

    model_config = component_config("COMMON")

    environment: Literal["local", "test", "production"] = "local"
    service_name: str = "herald"
    log_level: str = "INFO"
    log_json: bool = True

    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_db: str = "herald"
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Messaging topology; tests give each run its own exchange names.
    events_exchange: str = "herald.events"
    dead_letter_exchange: str = "herald.dlx"
    queue_type: Literal["quorum", "classic"] = "quorum"
    prefetch: int = Field(default=32, ge=1, le=10_000)
    retry_delays_ms: list[int] = Field(default_factory=lambda: [1_000, 5_000, 30_000])

    # JWT verification (every component verifies the tokens the users service issues).
    jwt_issuer: str = "herald-users"
    jwt_audience: str = "herald"
    jwks_url: str = "http://127.0.0.1:4001/.well-known/jwks.json"
    jwt_public_key_pem: SecretStr | None = None

    @model_validator(mode="after")
    def _no_local_defaults_in_production(self) -> HeraldSettings:
        if self.environment == "production" and "guest:guest" in self.amqp_url.get_secret_value():
            raise ValueError("amqp_url: the local guest account must not be used in production")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Component prefix first, then the shared HERALD_ prefix as a fallback.
        shared = EnvSettingsSource(
            settings_cls,
            env_prefix=GLOBAL_PREFIX,
            env_nested_delimiter="__",
            case_sensitive=False,
        )
        return (init_settings, env_settings, shared, dotenv_settings, file_secret_settings)
