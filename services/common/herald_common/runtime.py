"""What every Herald service process connects to, started and stopped in one place.

A service's lifespan is then::

    @asynccontextmanager
    async def lifespan(app):
        runtime = ServiceRuntime(settings, documents=[User])
        await runtime.start(app)
        await runtime.broker.consume("notifications.users", ["user.*"], handle_user_event)
        yield
        await runtime.stop()
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from herald_common.auth import TokenVerifier
from herald_common.db import connect_db, disconnect_db, ping_db, run_db
from herald_common.logs import configure_logging
from herald_common.messaging import Broker
from herald_common.outbox import OutboxDocument, OutboxRelay
from herald_common.redis_client import create_redis
from herald_common.settings import HeraldSettings

log = logging.getLogger(__name__)


class ServiceRuntime:
    """MongoDB, Redis, RabbitMQ, the outbox relay and the token verifier of a process."""

    def __init__(
        self,
        settings: HeraldSettings,
        *,
        documents: Sequence[type[OutboxDocument]] = (),
        use_db: bool = True,
        use_broker: bool = True,
        use_redis: bool = True,
        verify_tokens: bool = True,
        configure_logs: bool = True,
    ) -> None:
        self.settings = settings
        self.documents = list(documents)
        self.use_db, self.use_broker, self.use_redis = use_db, use_broker, use_redis
        self.verify_tokens = verify_tokens
        self.configure_logs = configure_logs
        self.redis: Any = None
        self.broker: Broker | None = None
        self.relay: OutboxRelay | None = None
        self.verifier: TokenVerifier | None = None

    async def start(self, app: FastAPI | None = None) -> None:
        s = self.settings
        if self.configure_logs:
            configure_logging(s.service_name, s.log_level, s.log_json)
        checks: dict[str, Any] = {}
        if self.use_db:
            await run_db(connect_db, s)
            checks["mongodb"] = lambda: run_db(ping_db)
        if self.use_redis:
            self.redis = create_redis(s)
            checks["redis"] = self.redis.ping
        if self.use_broker:
            self.broker = Broker(s, source=s.service_name)
            await self.broker.connect()

            async def _broker_ok() -> bool:
                return self.broker is not None and self.broker.connected

            checks["rabbitmq"] = _broker_ok
            if self.documents:
                self.relay = OutboxRelay(self.broker, self.documents)
                await run_db(self.relay.ensure_indexes)
                self.relay.start()
        if self.verify_tokens:
            pem = s.jwt_public_key_pem.get_secret_value() if s.jwt_public_key_pem else None
            self.verifier = TokenVerifier(
                issuer=s.jwt_issuer,
                audience=s.jwt_audience,
                public_pem=pem,
                jwks_url=None if pem else s.jwks_url,
                redis=self.redis,
            )
        if app is not None:
            app.state.runtime = self
            app.state.token_verifier = self.verifier
            app.state.ready_checks.update(checks)
        log.info("runtime started", extra={"service": s.service_name})

    def outbox_written(self) -> None:
        """Call after staging events: the relay publishes them right away."""
        if self.relay is not None:
            self.relay.wake()

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
            # Publish what is already staged so a clean shutdown leaves nothing behind.
            try:
                await self.relay.relay_once()
            except Exception:
                log.warning("final outbox pass failed; events stay staged", exc_info=True)
        if self.broker is not None:
            await self.broker.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.use_db:
            disconnect_db()
