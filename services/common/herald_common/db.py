"""MongoDB access: one database per service, through mongoengine.

mongoengine (pymongo) is synchronous; async code calls it through
``asyncio.to_thread`` (see :func:`run_db`) so the event loop never blocks on storage.

Storage modules reach their collections through :func:`collection` (a declared
document's collection) or :func:`named` (a collection without a document class), and
write unique records with :func:`insert_new`, :func:`insert_all_new` and
:func:`conditional_upsert` instead of catching duplicate-key errors themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import mongoengine
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from herald_common.settings import HeraldSettings

P = ParamSpec("P")
T = TypeVar("T")
K = TypeVar("K")

# The server's error code for a write that breaks a unique index.
DUPLICATE_KEY = 11000


def connect_db(settings: HeraldSettings, alias: str = "default") -> Database[Any]:
    """Connect mongoengine's ``alias`` to the service's own database and return it."""
    mongoengine.disconnect(alias=alias)
    mongoengine.connect(
        db=settings.mongodb_db,
        host=settings.mongodb_uri,
        alias=alias,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
    )
    return mongoengine.get_db(alias)


def disconnect_db(alias: str = "default") -> None:
    mongoengine.disconnect(alias=alias)


def ping_db(alias: str = "default") -> bool:
    try:
        mongoengine.get_db(alias).command("ping")
    except Exception:  # noqa: BLE001 - readiness reports any failure as "not ready"
        return False
    return True


async def run_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking storage call in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


# Threads for concurrent point lookups (pymongo releases the GIL while it waits).
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="db-lookup")


# Values per ``$in`` query of :func:`find_in` (PostgreSQL takes 65,535 parameters).
IN_CHUNK = 500


def find_in(
    coll: Collection[Any],
    field: str,
    values: Iterable[str],
    *,
    where: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The documents whose top-level ``field`` is one of ``values`` (strings: ids, keys)
    and that match ``where``: one ``{field: {"$in": chunk}}`` query per
    :data:`IN_CHUNK` distinct values, in no particular order.

    The way to read a batch of documents by key. The local MongoDB-compatible server
    answers it from the GIN index mirroring the leading field of an index
    (``dev/ferretdb``, ``$in`` of strings pushed down to PostgreSQL); MongoDB from the
    index itself.
    """
    keys = list(dict.fromkeys(values))
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), IN_CHUNK):
        query = {**(where or {}), field: {"$in": keys[start : start + IN_CHUNK]}}
        found.extend(coll.find(query, projection))
    return found


def delete_in(
    coll: Collection[Any],
    field: str,
    values: Iterable[str],
    *,
    where: Mapping[str, Any] | None = None,
) -> int:
    """Delete the documents whose top-level ``field`` is one of ``values`` and that match
    ``where``, one ``delete_many`` per :data:`IN_CHUNK` values (index-served like
    :func:`find_in`); returns how many went."""
    keys = list(dict.fromkeys(values))
    deleted = 0
    for start in range(0, len(keys), IN_CHUNK):
        query = {**(where or {}), field: {"$in": keys[start : start + IN_CHUNK]}}
        deleted += int(coll.delete_many(query).deleted_count)
    return deleted


def lookup_each(fn: Callable[[K], T], keys: Iterable[K]) -> list[T]:
    """``fn(key)`` for every key, several at a time, results in key order.

    For reads that take one query per key (a sort and limit per key, an update per
    document); a batch of documents by key is :func:`find_in`.
    """
    keys = list(keys)
    if len(keys) <= 1:
        return [fn(k) for k in keys]
    return list(_LOOKUPS.map(fn, keys))


def run_once(name: str, fn: Callable[[], object], alias: str = "default") -> bool:
    """Run the data migration ``fn`` once per database (a marker document remembers it);
    True when it ran now. For start-up steps that would otherwise read a whole
    collection on every start."""
    markers = mongoengine.get_db(alias)["migrations"]
    if markers.find_one({"_id": name}) is not None:
        return False
    fn()
    markers.update_one({"_id": name}, {"$set": {"done": True}}, upsert=True)
    return True


# Statements per write command. FerretDB 1.24 keeps one PostgreSQL connection open per
# statement of an `update` command until the whole command ends, and needs one more
# for each write: a command with more statements than its pool has connections never
# finishes (and blocks every other client). Bulk writes are sent in commands this big.
WRITE_CHUNK = 16


def bulk_write(coll: Any, ops: Sequence[Any], *, ordered: bool = True) -> int:
    """``coll.bulk_write(ops)`` in commands of at most :data:`WRITE_CHUNK` statements;
    returns how many documents were modified. A ``BulkWriteError`` names indexes of
    ``ops``; with ``ordered`` nothing after the failing statement runs."""
    modified = 0
    errors: list[dict[str, Any]] = []
    for start in range(0, len(ops), WRITE_CHUNK):
        try:
            modified += coll.bulk_write(
                list(ops[start : start + WRITE_CHUNK]), ordered=ordered
            ).modified_count
        except BulkWriteError as exc:
            details = dict(exc.details)
            modified += int(details.get("nModified", 0))
            errors += [{**e, "index": e["index"] + start} for e in details.get("writeErrors", [])]
            if ordered:
                break
    if errors:
        raise BulkWriteError({"writeErrors": errors, "nModified": modified})
    return modified


def collection(document: type[mongoengine.Document]) -> Collection[Any]:
    """The pymongo collection behind a declared mongoengine document (for the queries
    and bulk writes mongoengine has no words for)."""
    coll: Collection[Any] = document._get_collection()
    return coll


def named(name: str, alias: str = "default") -> Collection[Any]:
    """The collection ``name`` of the service's database (records without a document
    class: state markers, replicas, counters)."""
    return mongoengine.get_db(alias)[name]


def insert_new(coll: Collection[Any], doc: Mapping[str, Any]) -> bool:
    """Insert ``doc``; False (nothing written) when its unique key exists already."""
    try:
        coll.insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


def insert_all_new(coll: Collection[Any], docs: Iterable[Mapping[str, Any]]) -> int:
    """Insert ``docs`` unordered, skipping those whose unique key exists already (a
    redelivered batch); returns how many were new. Any other write error is raised."""
    docs = list(docs)
    return len(docs) - len(insert_missing(coll, docs))


def insert_missing(coll: Collection[Any], docs: Sequence[Mapping[str, Any]]) -> set[int]:
    """Insert ``docs`` unordered with one command; returns the indexes (in ``docs``) of
    those not inserted because their unique key exists already. Any other write error
    is raised."""
    if not docs:
        return set()
    try:
        coll.insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {int(e["index"]) for e in errors}
    return set()


def conditional_upsert(
    coll: Collection[Any], where: Mapping[str, Any], update: Mapping[str, Any]
) -> bool:
    """``update_one(where, update, upsert=True)`` where ``where`` holds a condition
    besides the ``_id`` (``revision < n``, ``updated_at <= t``): when a document with
    that ``_id`` exists but fails the condition, the upsert's insert collides and
    nothing changes. Returns False then (the stored document is newer)."""
    try:
        coll.update_one(dict(where), dict(update), upsert=True)
    except DuplicateKeyError:
        return False
    return True
