"""A process-local cache of the user replica, coherent across processes.

A notification batch needs the replicated user of every request. Reading them one by
one costs a point lookup each (the local server answers ~1,300 a second); the cache
keeps recently used users for :data:`UserCache.seconds` (an LRU of ``size`` entries),
and when a batch misses many users of one replica bucket (a campaign sends in bucket
order) it reads that whole bucket with one indexed query and keeps it.

Coherence across the processes that share a replica database:

* the process that applies a ``user.*`` event drops its copy and announces
  ``{"user_id", "revision"}`` on the database's Redis channel
  (:func:`channel_for`, ``herald:replica:<db>``) — :meth:`CacheListener.applied`;
* every process listens (:class:`CacheListener`), drops its copy and raises the user's
  *revision floor*: a read that raced with the change and returns an older revision is
  used for that batch but never cached;
* until the listener's subscription is confirmed nothing is cached, and the cache
  empties each time the subscription is (re)confirmed, because announcements sent
  while it was not subscribed are lost (pub/sub keeps nothing). Reads that started
  before a reset are not cached either (an epoch counter).

The lifetime is the backstop for an announcement lost after the write (the applying
process crashing in between, Redis down): a stale copy lives at most ``seconds``.

Thread safety: batches read through the cache in worker threads (``run_db``) while the
listener updates it on the event loop; one lock guards the maps, never held while
reading storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from herald_common import replica
from herald_common.db import lookup_each
from herald_common.lru import MISSING, ExpiringLRU

log = logging.getLogger(__name__)

Loader = Callable[[list[str]], dict[str, dict[str, Any]]]
BucketLoader = Callable[[int], list[dict[str, Any]]]


def channel_for(db_name: str) -> str:
    """The Redis channel announcing changes of the replica in database ``db_name``."""
    return f"herald:replica:{db_name}"


def _load_users(user_ids: list[str]) -> dict[str, dict[str, Any]]:
    return replica.get_users(user_ids, include_deleted=True)


class UserCache:
    """LRU of replicated users (tombstones and unknown users included) with a lifetime.

    :meth:`get_many` answers like ``replica.get_users(ids, include_deleted=True)``.
    Returned documents are shared with the cache: callers must not change them.
    """

    def __init__(
        self,
        *,
        seconds: float = 30.0,
        size: int = 50_000,
        bucket_misses: int = 16,
        load_users: Loader = _load_users,
        load_bucket: BucketLoader = replica.get_bucket,
        bucket_of: Callable[[str], int] = replica.bucket_of,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.bucket_misses = bucket_misses
        self._load_users = load_users
        self._load_bucket = load_bucket
        self._bucket_of = bucket_of
        self._clock = clock
        self._lock = threading.Lock()
        # user id -> document, or None for "not in the replica"
        self._entries: ExpiringLRU[str, dict[str, Any] | None] = ExpiringLRU(size, clock)
        # user id -> the lowest revision that may be cached (while a read from before
        # the change may still be in flight)
        self._floors: ExpiringLRU[str, int] = ExpiringLRU(size, clock)
        self._enabled = False
        self._epoch = 0
        self._loading: dict[int, threading.Event] = {}  # buckets being read now
        self.hits = 0
        self.misses = 0
        self.bucket_reads = 0
        self.bucket_waits = 0

    # --- coherence ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """True while changes are known to reach this process (listener subscribed)."""
        return self._enabled

    def subscribed(self) -> None:
        """The listener's subscription is (re)confirmed: start afresh and cache again."""
        with self._lock:
            self._entries.clear()
            self._epoch += 1
            self._enabled = True

    def unsubscribed(self) -> None:
        """Changes may be missed from now on: drop everything and cache nothing."""
        with self._lock:
            self._entries.clear()
            self._epoch += 1
            self._enabled = False

    def invalidate(self, user_id: str, revision: int) -> None:
        """``user_id`` changed to ``revision``: drop the copy, never cache an older one."""
        now = self._clock()
        with self._lock:
            self._entries.pop(user_id)
            floor = self._floors.get(user_id, now)
            # A floor must outlive any read that could still return the old revision.
            kept = revision if floor is MISSING else max(floor, revision)
            self._floors.put(user_id, kept, now + self.seconds)

    # --- reads -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, user_id: str) -> dict[str, Any] | None:
        """The cached copy of ``user_id``, if one is (for tests and diagnostics)."""
        with self._lock:
            doc = self._entries.peek(user_id)
        return None if doc is MISSING else doc

    def get_many(self, user_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Users by id, tombstones included, unknown ids absent; reads storage only for
        what is not cached (whole buckets where a bucket misses many)."""
        ids = list(dict.fromkeys(user_ids))
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        now = self._clock()
        with self._lock:
            epoch, enabled = self._epoch, self._enabled
            for user_id in ids:
                doc = self._entries.get(user_id, now)
                if doc is MISSING:
                    missing.append(user_id)
                elif doc is not None:
                    found[user_id] = doc
            self.hits += len(ids) - len(missing)
            self.misses += len(missing)
        if not missing:
            return found
        loaded: dict[str, dict[str, Any]] = {}
        singles: list[str] = []
        by_bucket: dict[int, list[str]] = {}
        for user_id in missing:
            by_bucket.setdefault(self._bucket_of(user_id), []).append(user_id)
        whole = [
            b for b, members in by_bucket.items() if enabled and len(members) >= self.bucket_misses
        ]
        for bucket, members in by_bucket.items():
            if bucket not in whole:
                singles += members
        # One read per bucket at a time: a concurrent batch of the same bucket (a
        # campaign's next batch) waits for it and takes its users from the cache.
        with self._lock:
            waiting = {b: self._loading[b] for b in whole if b in self._loading}
            self.bucket_waits += len(waiting)
            reading = [b for b in whole if b not in waiting]
            for bucket in reading:
                self._loading[bucket] = threading.Event()
        try:
            for docs in lookup_each(self._load_bucket, reading):
                self.bucket_reads += 1
                loaded.update((doc["_id"], doc) for doc in docs)
            bucket_ids = [u for b in reading for u in by_bucket[b]]
            self._store(epoch, loaded, bucket_ids)
        finally:
            with self._lock:
                for bucket in reading:
                    self._loading.pop(bucket).set()
        now = self._clock()
        for bucket, done in waiting.items():
            done.wait(timeout=max(self.seconds, 1.0))
            with self._lock:
                for user_id in by_bucket[bucket]:
                    doc = self._entries.get(user_id, now)
                    if doc is MISSING:
                        singles.append(user_id)  # not kept (raced with a change): read it
                    elif doc is not None:
                        loaded[user_id] = doc
        fetched: list[str] = []
        if singles:
            loaded.update(self._load_users(singles))
            fetched = singles
        found.update((user_id, loaded[user_id]) for user_id in missing if user_id in loaded)
        if enabled and fetched:
            self._store(epoch, {u: loaded[u] for u in fetched if u in loaded}, fetched)
        return found

    def _store(self, epoch: int, loaded: dict[str, dict[str, Any]], fetched: list[str]) -> None:
        expires = self._clock() + self.seconds
        with self._lock:
            if epoch != self._epoch or not self._enabled:
                return  # reset since the read began: what was read may be stale
            now = self._clock()
            values: list[tuple[str, dict[str, Any] | None]] = list(loaded.items())
            values += [(user_id, None) for user_id in fetched if user_id not in loaded]
            for user_id, doc in values:
                floor = self._floors.get(user_id, now)
                if floor is not MISSING and (int(doc.get("revision", 0)) if doc else 0) < floor:
                    continue  # read raced with a change: used once, not kept
                self._entries.put(user_id, doc, expires)


class CacheListener:
    """Keeps a :class:`UserCache` coherent: follows the replica's Redis channel and
    announces the changes this process applies.

    ``redis_url`` gets a connection of its own that blocks on the subscription without
    a read timeout (an idle listener costs nothing) and does not reconnect behind the
    listener's back: a lost connection disables the cache until it is subscribed again.
    """

    def __init__(self, cache: UserCache, redis_url: str, db_name: str) -> None:
        self.cache = cache
        self.channel = channel_for(db_name)
        self._redis: Any = aioredis.from_url(
            redis_url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=None,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=f"replica-cache:{db_name}",
        )
        self._task: asyncio.Task[None] | None = None
        self.confirmations = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"replica-cache {self.channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the cancellation just asked for
                await self._task
            self._task = None
        self.cache.unsubscribed()
        await self._redis.aclose()

    async def applied(self, user_id: str, revision: int) -> None:
        """This process applied a change of ``user_id``: drop it here and tell the
        others. A failed announcement is logged; the others' copies then expire."""
        self.cache.invalidate(user_id, revision)
        try:
            await self._redis.publish(
                self.channel, json.dumps({"user_id": user_id, "revision": revision})
            )
        except Exception:
            log.warning("could not announce a replica change", exc_info=True)

    def _on_message(self, data: str) -> None:
        try:
            change = json.loads(data)
            self.cache.invalidate(str(change["user_id"]), int(change["revision"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed replica announcement: %.200s", data)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self.cache.subscribed()
                        self.confirmations += 1
                        delay = 0.1
                    elif message["type"] == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "replica cache listener lost Redis; cache off until back", exc_info=True
                )
            finally:
                self.cache.unsubscribed()
                try:
                    await pubsub.aclose()
                except Exception:
                    log.debug("closing the lost subscription failed", exc_info=True)
            # Back off while Redis is away; one wait per failed attempt, not a poll.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
