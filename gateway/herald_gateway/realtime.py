"""One Redis pub/sub connection per gateway process, shared by every open subscription.

Every ``notificationAdded`` and ``inboxChanged`` subscription of the process reads the
caller's channel (``herald_common.redis_client.user_channel``) through the
:class:`RealtimeHub`, started and stopped by the app's lifespan (as the revocation
listener, :mod:`herald_gateway.revocations`, listens once per process):

* **One connection.** The hub has a connection of its own, outside the client pool
  that the cache, the rate limit and the deny-list share: however many subscriptions
  are open, they take none of those connections.
* **Reference counts.** A channel is subscribed when its first local subscriber
  arrives and unsubscribed when its last one leaves; two subscriptions of one user (two
  tabs, or both fields on one socket) share one Redis subscription. The hub keeps
  Redis in step with the wanted set (``SUBSCRIBE``/``UNSUBSCRIBE`` of the difference,
  batched), so no ordering of arrivals and departures can leave it out of step.
* **Bounded queues.** Each message is decoded once and offered to every subscriber of
  its channel, each with a queue of its own of at most ``queue_size`` messages; the
  hub never waits for a subscriber, so a slow socket delays nobody else. A subscriber
  whose queue is full when a message arrives has fallen behind: its subscription ends
  with :class:`SubscriptionOverflow` (``UNAVAILABLE``, ``extensions.reason``
  ``SLOW_CONSUMER``), what was still queued for it is dropped and it leaves the
  channel. Nothing is dropped silently: the client knows it missed pushes, re-reads the
  inbox (the truth) and subscribes again.
* **Losing Redis.** When the connection is lost (an error, or no answer to the
  keep-alive ``PING`` within two ``keepalive`` periods) the hub connects again at once,
  then with exponential back-off (:data:`RETRY_INITIAL_SECONDS` doubling up to
  :data:`RETRY_MAX_SECONDS`, plus up to :data:`RETRY_JITTER_SECONDS` of jitter) and
  subscribes every live channel again in one command. Messages published meanwhile are
  not replayed. Announcements of revoked tokens may have been missed too, so every
  subscriber open at that moment runs its ``on_resume`` check (the token re-check,
  :mod:`herald_gateway.resolvers.subscription`) before anything more is delivered to it.
* **Shutdown.** :meth:`RealtimeHub.stop` closes the connection and ends the
  subscriptions still open with ``UNAVAILABLE``.

Long module: the connection loop, the reference counts and the subscribers' queues are
one piece of state that every step reads and changes; split up, each part would reach
into the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge
from redis.asyncio.connection import ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from herald_gateway.errors import GraphQLFailure

log = logging.getLogger(__name__)

# Redis cannot be reached (stopped, restarting, network).
REDIS_LOST = (RedisConnectionError, RedisTimeoutError, OSError)
RETRY_INITIAL_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
RETRY_JITTER_SECONDS = 1.0
# A PING when nothing was sent for this long; no answer at all for twice as long is a
# lost connection (a peer gone without a word would otherwise leave the hub deaf).
KEEPALIVE_SECONDS = 15.0
# Channels per SUBSCRIBE/UNSUBSCRIBE command.
BATCH = 500

CHANNELS = Gauge("herald_gateway_realtime_channels", "User channels the hub is subscribed to")
SUBSCRIBERS = Gauge("herald_gateway_realtime_subscribers", "Open subscriptions on the hub")
OVERFLOWS = Counter(
    "herald_gateway_realtime_overflows_total",
    "Subscriptions ended because their queue was full (slow consumer)",
)
RESUMES = Counter(
    "herald_gateway_realtime_resumes_total", "Reconnections of the hub after losing Redis"
)


def backoff() -> wait_exponential_jitter:
    """The wait between attempts to reach Redis again (also the token re-check's)."""
    return wait_exponential_jitter(
        multiplier=RETRY_INITIAL_SECONDS, max=RETRY_MAX_SECONDS, jitter=RETRY_JITTER_SECONDS
    )


def retry_logger(what: str, level: int = logging.INFO) -> Callable[[RetryCallState], None]:
    """A ``before_sleep`` for :func:`backoff` loops: logs ``what`` with the coming wait
    and the attempt number."""

    def log_retry(state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.log(level, "%s; trying again in %.1fs (attempt %d)", what, wait, state.attempt_number)

    return log_retry


def pause(attempt: int) -> float:
    """The :func:`backoff` wait before attempt ``attempt + 1``, for loops of its own."""
    exponential = RETRY_INITIAL_SECONDS * 2 ** min(attempt - 1, 16)
    return min(exponential + random.uniform(0, RETRY_JITTER_SECONDS), RETRY_MAX_SECONDS)


class SubscriptionOverflow(GraphQLFailure):
    """The subscriber fell more than its queue behind: its subscription ends."""

    def __init__(self, queue_size: int) -> None:
        super().__init__(
            f"this subscription fell behind (more than {queue_size} messages waiting to be "
            "sent) and was ended; re-read the inbox and subscribe again",
            "UNAVAILABLE",
        )
        self.queue_size = queue_size

    @property
    def extensions(self) -> dict[str, Any]:
        return {**super().extensions, "reason": "SLOW_CONSUMER"}


def shutting_down() -> GraphQLFailure:
    return GraphQLFailure("the gateway is shutting down; subscribe again", "UNAVAILABLE")


class Subscriber:
    """One open subscription's share of a channel: its queue and what it must do next."""

    def __init__(self, channel: str, queue_size: int, wants: Callable[[Any], bool] | None) -> None:
        self.channel = channel
        self.queue_size = queue_size
        self.wants = wants
        self.queue: deque[Any] = deque()
        self.wake = asyncio.Event()
        # Redis was lost (or not yet reached) since this subscriber joined: run on_resume.
        self.resume = False
        self.failure: GraphQLFailure | None = None

    def offer(self, message: Any) -> bool:
        """Queue ``message`` if this subscriber wants it; ``False`` when the queue was
        full (the subscriber is then failed with :class:`SubscriptionOverflow`)."""
        if self.failure is not None:
            return True
        if self.wants is not None and not self.wants(message):
            return True
        if len(self.queue) >= self.queue_size:
            self.fail(SubscriptionOverflow(self.queue_size))
            return False
        self.queue.append(message)
        self.wake.set()
        return True

    def fail(self, failure: GraphQLFailure) -> None:
        self.failure = failure
        self.queue.clear()
        self.wake.set()

    def resumed(self) -> None:
        self.resume = True
        self.wake.set()


class RealtimeHub:
    """The process's pub/sub connection and the subscribers of each channel."""

    def __init__(
        self,
        redis_url: str,
        *,
        queue_size: int = 100,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.queue_size = queue_size
        self.keepalive = keepalive
        # Its own connection: never one of the shared pool, and every loss is seen
        # here (no silent reconnection by the client library, which would skip the
        # token re-checks), no health-check reads racing the hub's own reader, and
        # RESP2, where published messages are plain replies read by that reader.
        options: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 5}
        options.update(parse_url(redis_url))
        options.update(
            max_connections=1,
            decode_responses=False,
            health_check_interval=0,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
        )
        self._pool = ConnectionPool(**options)
        self._subscribers: dict[str, set[Subscriber]] = {}
        # Channels subscribed on the current connection (the writer's view).
        self._live: set[str] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_sent = 0.0
        # Set while connected and subscribed (tests wait on it).
        self.connected = asyncio.Event()

    # --- subscribers -----------------------------------------------------------------

    @property
    def channels(self) -> int:
        """How many channels have local subscribers."""
        return len(self._subscribers)

    def subscribers(self, channel: str) -> int:
        """How many local subscribers ``channel`` has."""
        return len(self._subscribers.get(channel, ()))

    async def messages(
        self,
        channel: str,
        *,
        wants: Callable[[Any], bool] | None = None,
        on_resume: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Every message of ``channel`` (decoded JSON; shared with the channel's other
        subscribers: read-only) that ``wants`` accepts, until the consumer stops.

        After Redis was lost and reached again, ``on_resume`` is awaited before
        anything more is yielded (its exception ends the subscription). Raises
        :class:`SubscriptionOverflow` when the consumer fell behind, ``UNAVAILABLE``
        when the hub is stopped or not started."""
        if self._task is None:
            raise shutting_down()
        subscriber = Subscriber(channel, self.queue_size, wants)
        self._add(subscriber)
        if not self.connected.is_set():
            # Waiting for Redis is possibly missing a revocation: check once it is back.
            subscriber.resume = True
        try:
            while True:
                if subscriber.failure is not None:
                    raise subscriber.failure
                if subscriber.resume and self.connected.is_set():
                    subscriber.resume = False
                    if on_resume is not None:
                        await on_resume()
                    continue
                if subscriber.queue and not subscriber.resume:
                    yield subscriber.queue.popleft()
                    continue
                subscriber.wake.clear()
                await subscriber.wake.wait()
        finally:
            self._remove(subscriber)

    def _add(self, subscriber: Subscriber) -> None:
        members = self._subscribers.get(subscriber.channel)
        if members is None:
            members = self._subscribers[subscriber.channel] = set()
            CHANNELS.inc()
            self._changed.set()
        members.add(subscriber)
        SUBSCRIBERS.inc()

    def _remove(self, subscriber: Subscriber) -> None:
        members = self._subscribers.get(subscriber.channel)
        if members is None or subscriber not in members:
            return
        members.discard(subscriber)
        SUBSCRIBERS.dec()
        if not members:
            del self._subscribers[subscriber.channel]
            CHANNELS.dec()
            self._changed.set()

    def _dispatch(self, channel: str, payload: bytes) -> None:
        members = self._subscribers.get(channel)
        if not members:
            return  # an unsubscription on its way
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("unreadable real-time message", extra={"channel": channel})
            return
        for subscriber in tuple(members):
            if not subscriber.offer(message):
                OVERFLOWS.inc()
                log.warning(
                    "real-time subscriber fell behind; its subscription is ended",
                    extra={"channel": channel, "queue_size": subscriber.queue_size},
                )
                self._remove(subscriber)

    # --- the connection --------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="herald-realtime")

    async def stop(self) -> None:
        """Close the connection and end every subscription still open."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the cancellation we asked for
                await task
        for members in list(self._subscribers.values()):
            for subscriber in list(members):
                subscriber.fail(shutting_down())
                self._remove(subscriber)
        await self._pool.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        lost = False
        # Connections in a row that were lost within RETRY_MAX_SECONDS of being made.
        short_lived = 0
        while True:
            connection = await self._connect(lost)
            made = loop.time()
            try:
                await self._serve(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.WARNING if isinstance(exc, REDIS_LOST) else logging.ERROR
                log.log(
                    level,
                    "real-time hub lost Redis (%s); %d channels to subscribe again",
                    type(exc).__name__,
                    len(self._subscribers),
                    exc_info=level == logging.ERROR,
                )
            finally:
                self.connected.clear()
                self._live.clear()
                with contextlib.suppress(Exception):  # it may be broken already
                    await connection.disconnect(nowait=True)
                await self._pool.release(connection)
            lost = True
            # A connection lost as soon as it is made (a proxy or a server that accepts
            # and drops) is not made again at once, over and over.
            short_lived = short_lived + 1 if loop.time() - made < RETRY_MAX_SECONDS else 0
            if short_lived:
                await asyncio.sleep(pause(short_lived))

    async def _connect(self, lost: bool) -> Any:
        """A connection subscribed to every live channel. After a loss every open
        subscriber, and any that joined while Redis was away, is told to re-check
        before it gets anything more."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=backoff(),
            before_sleep=retry_logger("real-time hub cannot reach Redis"),
            reraise=True,
        ):
            with attempt:
                connection = await self._pool.get_connection()
                try:
                    self._changed.clear()
                    await self._sync(connection)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await connection.disconnect(nowait=True)
                    await self._pool.release(connection)
                    raise
        # Before the first message is read: nothing reaches a subscriber unchecked.
        for members in self._subscribers.values():
            for subscriber in members:
                if lost or subscriber.resume:
                    subscriber.resumed()
        self.connected.set()
        if lost:
            RESUMES.inc()
            log.info("real-time hub resumed; %d channels subscribed again", len(self._subscribers))
        return connection

    async def _serve(self, connection: Any) -> None:
        """Read and write on ``connection`` until either side fails."""
        reader = asyncio.create_task(self._read(connection), name="herald-realtime-read")
        writer = asyncio.create_task(self._write(connection), name="herald-realtime-write")
        try:
            done, _ = await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        for task in done:
            task.result()  # the failure that ended it
        raise RedisConnectionError("the real-time connection ended")

    async def _read(self, connection: Any) -> None:
        silence = 2 * self.keepalive
        while True:
            response = await connection.read_response(timeout=silence)
            if response is None:
                raise RedisTimeoutError(f"no answer from Redis for {silence:.1f}s")
            if (
                isinstance(response, list)
                and len(response) == 3
                and response[0] == b"message"
                and isinstance(response[2], bytes)
            ):
                channel = response[1].decode("utf-8", "replace")
                self._dispatch(channel, response[2])

    async def _write(self, connection: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            idle = self._last_sent + self.keepalive - loop.time()
            if idle > 0:
                with contextlib.suppress(TimeoutError):  # time for a keep-alive
                    await asyncio.wait_for(self._changed.wait(), idle)
            if self._changed.is_set():
                self._changed.clear()
                await self._sync(connection)
            if loop.time() >= self._last_sent + self.keepalive:
                await self._send(connection, "PING")

    async def _sync(self, connection: Any) -> None:
        """Subscribe the channels that gained subscribers, unsubscribe those that lost
        them: whatever the order of arrivals and departures, Redis ends up with the
        channels that have subscribers now."""
        wanted = set(self._subscribers)
        gone = sorted(self._live - wanted)
        new = sorted(wanted - self._live)
        for i in range(0, len(gone), BATCH):
            await self._send(connection, "UNSUBSCRIBE", *gone[i : i + BATCH])
            self._live.difference_update(gone[i : i + BATCH])
        for i in range(0, len(new), BATCH):
            await self._send(connection, "SUBSCRIBE", *new[i : i + BATCH])
            self._live.update(new[i : i + BATCH])

    async def _send(self, connection: Any, *command: str) -> None:
        if not connection.is_connected:
            raise RedisConnectionError("the real-time connection is closed")
        await connection.send_command(*command, check_health=False)
        self._last_sent = asyncio.get_running_loop().time()
