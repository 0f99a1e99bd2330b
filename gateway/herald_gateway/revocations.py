"""Revoked tokens end their WebSockets at once: one listener per gateway process.

The users service deny-lists a revoked token id and announces it on
``herald:revocations`` in one Redis pipeline (``herald_common.redis_client.revoke_token``).
Each gateway process subscribes once (:class:`Revocations`, started and stopped by the
app's lifespan); every authenticated WebSocket registers its token id and gets a
:class:`TokenWatch`. An announcement of that id sets the watch's ``revoked`` flag and
wakes the connection's own watch task, which closes the connection with 4401
"token revoked" — the listener itself never touches a connection.

Announcements published while the listener is disconnected from Redis are lost, so
after every (re)subscription it wakes all watches with ``recheck`` set: each connection
then re-checks the deny-list itself. The connections' periodic re-check
(``websocket_token_recheck_seconds``) stays as the fallback. Idle costs nothing: the
listener blocks on the subscription's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from herald_common.redis_client import REVOCATIONS_CHANNEL

log = logging.getLogger(__name__)


class TokenWatch:
    """What the listener tells one connection: its token was revoked, or re-check it."""

    def __init__(self, jti: str) -> None:
        self.jti = jti
        self.revoked = False
        self.recheck = False
        self.wake = asyncio.Event()


class Revocations:
    """The process's subscription to revocation announcements and the watches it wakes."""

    def __init__(
        self,
        redis: Any,
        *,
        channel: str = REVOCATIONS_CHANNEL,
        retry_initial: float = 0.5,
        retry_max: float = 15.0,
    ) -> None:
        self.redis = redis
        self.channel = channel
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._watches: dict[str, set[TokenWatch]] = {}
        self._task: asyncio.Task[None] | None = None
        # Set while subscribed (tests and readiness wait on it).
        self.subscribed = asyncio.Event()

    # --- connections -----------------------------------------------------------------

    def register(self, jti: str) -> TokenWatch:
        watch = TokenWatch(jti)
        self._watches.setdefault(jti, set()).add(watch)
        return watch

    def unregister(self, watch: TokenWatch) -> None:
        watches = self._watches.get(watch.jti)
        if watches is None:
            return
        watches.discard(watch)
        if not watches:
            del self._watches[watch.jti]

    @property
    def watched(self) -> int:
        """How many connections are registered."""
        return sum(len(w) for w in self._watches.values())

    def announce(self, jti: str) -> int:
        """Wake every connection holding ``jti`` as revoked; returns how many."""
        watches = self._watches.get(jti, ())
        for watch in watches:
            watch.revoked = True
            watch.wake.set()
        return len(watches)

    def recheck(self, jti: str) -> int:
        """Wake every connection holding ``jti`` to re-check it against the deny-list
        (a reader that lost its Redis subscription found it rejected); returns how many."""
        watches = self._watches.get(jti, ())
        for watch in watches:
            watch.recheck = True
            watch.wake.set()
        return len(watches)

    def recheck_all(self) -> None:
        """Wake every connection to re-check its token against the deny-list."""
        for watches in self._watches.values():
            for watch in watches:
                watch.recheck = True
                watch.wake.set()

    # --- the listener ----------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="herald-revocations")

    async def stop(self) -> None:
        """Cancel the listener (the subscription is closed by the task itself)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # the cancellation we asked for
            await task

    async def _listen(self) -> None:
        delay = self.retry_initial
        first = True
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if not first:
                    log.info("revocation announcements resumed; re-checking open connections")
                    self.recheck_all()
                delay = self.retry_initial
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.announce(str(message.get("data")))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis unavailable: retry with back-off
                log.warning(
                    "revocation listener lost Redis; retrying in %.1fs", delay, exc_info=True
                )
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):  # the connection may already be broken
                    await pubsub.aclose()
            first = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)
