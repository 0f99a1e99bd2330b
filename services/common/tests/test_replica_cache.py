"""``UserCache`` rules (pure logic, in-memory loaders): what is cached, for how long,
what a change, a raced read and a subscription reset do."""

from __future__ import annotations

from typing import Any

from herald_common.replica_cache import UserCache


class Store:
    """Stands in for the replica: users by id, each with a bucket and a revision."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.point_reads: list[list[str]] = []
        self.bucket_reads: list[int] = []

    def put(self, user_id: str, revision: int, bucket: int = 0, **fields: Any) -> None:
        self.users[user_id] = {"_id": user_id, "revision": revision, "bucket": bucket, **fields}

    def load_users(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        self.point_reads.append(list(ids))
        return {i: dict(self.users[i]) for i in ids if i in self.users}

    def load_bucket(self, bucket: int) -> list[dict[str, Any]]:
        self.bucket_reads.append(bucket)
        return [dict(u) for u in self.users.values() if u["bucket"] == bucket]

    def bucket_of(self, user_id: str) -> int:
        return self.users[user_id]["bucket"] if user_id in self.users else 99


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(store: Store, clock: Clock, **kw: Any) -> UserCache:
    cache = UserCache(
        load_users=store.load_users,
        load_bucket=store.load_bucket,
        bucket_of=store.bucket_of,
        clock=clock,
        **kw,
    )
    cache.subscribed()
    return cache


def test_nothing_is_cached_until_subscribed_and_after_unsubscribed() -> None:
    store, clock = Store(), Clock()
    store.put("a", 1)
    cache = UserCache(load_users=store.load_users, bucket_of=store.bucket_of, clock=clock)
    assert cache.get_many(["a"])["a"]["revision"] == 1
    assert cache.get_many(["a"])["a"]["revision"] == 1
    assert len(store.point_reads) == 2 and len(cache) == 0
    cache.subscribed()
    cache.get_many(["a"])
    cache.get_many(["a"])
    assert len(store.point_reads) == 3 and len(cache) == 1
    cache.unsubscribed()
    assert len(cache) == 0
    cache.get_many(["a"])
    assert len(store.point_reads) == 4 and len(cache) == 0


def test_hits_unknown_users_and_lifetime() -> None:
    store, clock = Store(), Clock()
    store.put("a", 1)
    cache = make(store, clock, seconds=30)
    assert set(cache.get_many(["a", "ghost", "a"])) == {"a"}
    assert store.point_reads == [["a", "ghost"]]
    # both answers are kept, "not in the replica" too
    assert set(cache.get_many(["ghost", "a"])) == {"a"}
    assert len(store.point_reads) == 1 and cache.hits == 2
    clock.now += 31
    cache.get_many(["a"])
    assert store.point_reads[-1] == ["a"]


def test_lru_keeps_at_most_size_entries_and_evicts_the_least_recent() -> None:
    store, clock = Store(), Clock()
    for u in "abc":
        store.put(u, 1)
    cache = make(store, clock, size=2)
    cache.get_many(["a"])
    cache.get_many(["b"])
    cache.get_many(["a"])  # a is now the most recent
    cache.get_many(["c"])  # evicts b
    assert len(cache) == 2
    store.point_reads.clear()
    cache.get_many(["a", "b", "c"])
    assert store.point_reads == [["b"]]


def test_a_change_drops_the_copy_and_an_older_raced_read_is_used_not_kept() -> None:
    store, clock = Store(), Clock()
    store.put("a", 1, promotions=True)
    cache = make(store, clock)
    cache.get_many(["a"])
    # Another process applies revision 2; a read that raced with it still sees 1.
    cache.invalidate("a", 2)
    assert len(cache) == 0
    assert cache.get_many(["a"])["a"]["revision"] == 1  # used for this batch
    assert len(cache) == 0  # but not kept
    store.put("a", 2, promotions=False)
    assert cache.get_many(["a"])["a"]["promotions"] is False
    reads = len(store.point_reads)
    assert cache.get_many(["a"])["a"]["revision"] == 2
    assert len(store.point_reads) == reads  # the new revision is kept


def test_registration_of_an_unknown_user_replaces_the_cached_absence() -> None:
    store, clock = Store(), Clock()
    cache = make(store, clock)
    assert cache.get_many(["new"]) == {}
    cache.invalidate("new", 1)
    assert cache.get_many(["new"]) == {}  # read raced with the insert: absence not kept
    store.put("new", 1)
    assert cache.get_many(["new"])["new"]["revision"] == 1


def test_a_read_that_began_before_a_reset_is_not_kept() -> None:
    store, clock = Store(), Clock()
    store.put("a", 1)
    cache = make(store, clock)

    def load_then_reset(ids: list[str]) -> dict[str, dict[str, Any]]:
        result = store.load_users(ids)
        cache.subscribed()  # the subscription was re-confirmed while this read ran
        return result

    cache._load_users = load_then_reset
    assert cache.get_many(["a"])["a"]["revision"] == 1
    assert len(cache) == 0


def test_many_misses_in_one_bucket_read_the_whole_bucket_once() -> None:
    store, clock = Store(), Clock()
    for i in range(40):
        store.put(f"b3-{i}", 1, bucket=3)
    store.put("b5-0", 1, bucket=5)
    cache = make(store, clock, bucket_misses=16)
    first = [f"b3-{i}" for i in range(20)] + ["b5-0", "nobody"]
    assert set(cache.get_many(first)) == set(first) - {"nobody"}
    assert store.bucket_reads == [3]
    assert store.point_reads == [["b5-0", "nobody"]]
    # the rest of bucket 3 is kept as well: the campaign's next batch reads nothing
    second = [f"b3-{i}" for i in range(20, 40)]
    assert set(cache.get_many(second)) == set(second)
    assert store.bucket_reads == [3] and len(store.point_reads) == 1
    assert cache.bucket_reads == 1


def test_a_bucket_read_respects_revision_floors() -> None:
    store, clock = Store(), Clock()
    for i in range(20):
        store.put(f"u{i}", 1, bucket=1)
    cache = make(store, clock, bucket_misses=4)
    cache.invalidate("u7", 2)  # announced, but the read below still sees revision 1
    cache.get_many([f"u{i}" for i in range(20)])
    assert "u7" not in cache._entries and len(cache) == 19


def test_floors_expire_with_the_lifetime() -> None:
    store, clock = Store(), Clock()
    store.put("a", 1)
    cache = make(store, clock, seconds=30)
    cache.invalidate("a", 5)
    clock.now += 31  # no read can still be in flight from before the change
    cache.get_many(["a"])
    assert len(cache) == 1


def test_concurrent_batches_of_one_bucket_read_it_once() -> None:
    import threading

    store, clock = Store(), Clock()
    for i in range(40):
        store.put(f"u{i}", 1, bucket=2)
    started, release = threading.Event(), threading.Event()

    def slow_bucket(bucket: int) -> list[dict[str, Any]]:
        started.set()
        release.wait(10)  # the second batch arrives while this read runs
        return store.load_bucket(bucket)

    cache = make(store, clock, bucket_misses=8)
    cache._load_bucket = slow_bucket
    results: dict[str, dict[str, dict[str, Any]]] = {}
    first = threading.Thread(
        target=lambda: results.update(a=cache.get_many([f"u{i}" for i in range(20)]))
    )
    first.start()
    assert started.wait(10)
    second = threading.Thread(
        target=lambda: results.update(b=cache.get_many([f"u{i}" for i in range(20, 40)]))
    )
    second.start()
    # release the first read once the second batch waits for it (polls the condition)
    for _ in range(1000):
        if cache.bucket_waits:
            break
        release.wait(0.01)
    assert cache.bucket_waits == 1
    release.set()
    first.join(10)
    second.join(10)
    assert len(results["a"]) == 20 and len(results["b"]) == 20
    assert store.bucket_reads == [2] and store.point_reads == []
