"""Check which MongoDB features Herald relies on work on the server at HERALD_MONGODB_URI.

The same checks run as pytest tests (``tests/test_ferretdb_compat.py``, the known gaps
of dev/README.md as strict xfails). Run against the local server started by
``dev/infra.sh up`` (FerretDB unless mongod is installed)::

    python dev/ferretdb/compat_check.py [--uri mongodb://127.0.0.1:27017] [--ttl-wait 75]

Needs pymongo (mongoengine optional). Every check runs even if others fail; the output is
one line per check (ok / FAIL / note) and the script exits 1 if any check failed. It works
in a throw-away database that it drops at the end. ``--ttl-wait`` waits that many seconds
to see whether a TTL index really deletes expired documents (MongoDB's TTL monitor runs
every 60 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

RESULTS: list[tuple[str, str, str]] = []


class Note(Exception):
    """Not a failure, but worth reporting (e.g. accepted but without effect)."""


def check(name: str) -> Callable[[Callable[[Database[Any]], str | None]], Callable[..., None]]:
    def wrap(fn: Callable[[Database[Any]], str | None]) -> Callable[..., None]:
        def run(db: Database[Any]) -> None:
            try:
                detail = fn(db) or ""
                RESULTS.append(("ok", name, detail))
            except Note as exc:
                RESULTS.append(("note", name, str(exc)))
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if os.environ.get("COMPAT_TRACEBACK"):
                    traceback.print_exc()
                RESULTS.append(("FAIL", name, msg))

        run.__name__ = fn.__name__
        run.check_name = name  # type: ignore[attr-defined]
        CHECKS.append(run)
        return run

    return wrap


CHECKS: list[Callable[[Database[Any]], None]] = []


def one(c: Collection[Any], *args: Any, **kwargs: Any) -> Any:
    """find_one that must find a document."""
    doc = c.find_one(*args, **kwargs)
    assert doc is not None, f"no document for {args}"
    return doc


def fresh(db: Database[Any], name: str) -> Collection[Any]:
    db.drop_collection(name)
    return db[name]


@check("insert_one / find_one / update_one $set,$inc,$unset")
def basic_crud(db: Database[Any]) -> None:
    c = fresh(db, "crud")
    oid = c.insert_one({"a": 1, "b": "x", "n": 1}).inserted_id
    r = c.update_one({"_id": oid}, {"$set": {"b": "y"}, "$inc": {"n": 2}, "$unset": {"a": ""}})
    assert r.matched_count == 1 and r.modified_count == 1, r.raw_result
    doc = one(c, {"_id": oid})
    assert doc == {"_id": oid, "b": "y", "n": 3}, doc


@check("$push / $push $each / $addToSet $each / $pop")
def push(db: Database[Any]) -> None:
    c = fresh(db, "push")
    c.insert_one({"_id": 1, "items": []})
    c.update_one({"_id": 1}, {"$push": {"items": {"id": "a", "n": 1}}})
    c.update_one(
        {"_id": 1}, {"$push": {"items": {"$each": [{"id": "b", "n": 2}, {"id": "c", "n": 3}]}}}
    )
    c.update_one({"_id": 1}, {"$addToSet": {"tags": {"$each": ["x", "y", "x"]}}})
    c.update_one({"_id": 1}, {"$pop": {"items": 1}})
    doc = one(c, {"_id": 1})
    assert [i["id"] for i in doc["items"]] == ["a", "b"], doc
    assert doc["tags"] == ["x", "y"], doc


def _push_modifier(db: Database[Any], modifier: dict[str, Any], expected: list[int]) -> None:
    c = fresh(db, "pushmod")
    c.insert_one({"_id": 1, "log": [3, 1, 2]})
    c.update_one({"_id": 1}, {"$push": {"log": {"$each": [0], **modifier}}})
    got = one(c, {"_id": 1})["log"]
    if got != expected:
        raise AssertionError(f"silently ignored: got {got}, expected {expected}")


@check("$push modifier $slice (keep the last N)")
def push_slice(db: Database[Any]) -> None:
    _push_modifier(db, {"$slice": -2}, [2, 0])


@check("$push modifier $position")
def push_position(db: Database[Any]) -> None:
    _push_modifier(db, {"$position": 0}, [0, 3, 1, 2])


@check("$push modifier $sort")
def push_sort(db: Database[Any]) -> None:
    _push_modifier(db, {"$sort": 1}, [0, 1, 2, 3])


@check("nested paths: $inc stats.sent / $push a.b")
def nested_paths(db: Database[Any]) -> None:
    c = fresh(db, "nested")
    c.insert_one({"_id": 1})
    c.update_one({"_id": 1}, {"$inc": {"stats.sent": 1}, "$push": {"a.b": 1}})
    assert one(c, {"_id": 1}) == {"_id": 1, "stats": {"sent": 1}, "a": {"b": [1]}}


@check("$pull by sub-document field ({items: {id: ...}})")
def pull_subdoc(db: Database[Any]) -> None:
    c = fresh(db, "pull")
    c.insert_one(
        {"_id": 1, "items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3}]}
    )
    r = c.update_one({"_id": 1}, {"$pull": {"items": {"id": "b"}}})
    items = [i["id"] for i in one(c, {"_id": 1})["items"]]
    if r.modified_count != 1 or items != ["a", "c"]:
        raise AssertionError(f"silently no-op: nModified={r.modified_count}, items={items}")


@check("$pull of a whole sub-document (exact match)")
def pull_exact(db: Database[Any]) -> None:
    c = fresh(db, "pullx")
    c.insert_one({"_id": 1, "items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}]})
    c.update_one({"_id": 1}, {"$pull": {"items": {"id": "b", "n": 2}}})
    assert [i["id"] for i in one(c, {"_id": 1})["items"]] == ["a"]


@check("$pull with a condition ({items: {n: {$gte: 2}}})")
def pull_condition(db: Database[Any]) -> None:
    c = fresh(db, "pull2")
    c.insert_one(
        {"_id": 1, "items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3}]}
    )
    c.update_one({"_id": 1}, {"$pull": {"items": {"n": {"$gte": 2}}}})
    items = [i["id"] for i in one(c, {"_id": 1})["items"]]
    if items != ["a"]:
        raise AssertionError(f"silently no-op: items={items}")


@check("$pull scalar value / $pullAll")
def pull_scalar(db: Database[Any]) -> None:
    c = fresh(db, "pull3")
    c.insert_one({"_id": 1, "tags": ["x", "y", "z", "y"]})
    c.update_one({"_id": 1}, {"$pull": {"tags": "y"}})
    c.update_one({"_id": 1}, {"$pullAll": {"tags": ["z"]}})
    assert one(c, {"_id": 1})["tags"] == ["x"]


@check("query $size")
def size(db: Database[Any]) -> None:
    c = fresh(db, "size")
    c.insert_many([{"a": []}, {"a": [1]}, {"a": [1, 2]}, {"a": [3, 4]}])
    assert c.count_documents({"a": {"$size": 2}}) == 2
    assert c.count_documents({"a": {"$size": 0}}) == 1


def _qdocs(db: Database[Any]) -> Collection[Any]:
    c = fresh(db, "q")
    c.insert_many(
        [
            {"_id": 1, "items": [{"id": "a", "read": False}], "tags": ["x"], "name": "alpha"},
            {
                "_id": 2,
                "items": [{"id": "b", "read": True}],
                "tags": ["y", "z"],
                "name": "beta",
                "x": None,
            },
        ]
    )
    return c


def _ids(c: Collection[Any], q: dict[str, Any]) -> list[Any]:
    return sorted(d["_id"] for d in c.find(q))


@check(
    "queries: dotted path into array / $in / $nin / $ne / $or / $all / $exists / $regex(i) / $type / $not"
)
def queries(db: Database[Any]) -> None:
    c = _qdocs(db)
    assert _ids(c, {"items.id": "b"}) == [2]
    assert _ids(c, {"items.read": False}) == [1]
    assert _ids(c, {"_id": {"$in": [1, 3]}}) == [1]
    assert _ids(c, {"tags": {"$nin": ["y"]}}) == [1]
    assert _ids(c, {"_id": {"$ne": 1}}) == [2]
    assert _ids(c, {"$or": [{"_id": 1}, {"tags": "z"}]}) == [1, 2]
    assert _ids(c, {"tags": {"$all": ["y", "z"]}}) == [2]
    assert _ids(c, {"x": {"$exists": True}}) == [2]
    assert _ids(c, {"name": {"$regex": "^AL", "$options": "i"}}) == [1]
    assert _ids(c, {"tags": {"$type": "array"}}) == [1, 2]
    assert _ids(c, {"tags": {"$not": {"$size": 2}}}) == [1]
    assert _ids(c, {"tags": {"$elemMatch": {"$eq": "x"}}}) == [1]


@check("query $in of strings and ObjectIDs: exact answers (arrays, mixed types, empty)")
def in_strings(db: Database[Any]) -> None:
    c = fresh(db, "in")
    oid = ObjectId()
    c.create_index([("k", ASCENDING)])
    c.insert_many(
        [
            {"_id": "a", "k": "x"},
            {"_id": "b", "k": ["y", "x"]},
            {"_id": "c", "k": 7},
            {"_id": "d", "k": oid},
            {"_id": "e"},
            {"_id": "f", "k": "X"},
        ]
    )
    assert _ids(c, {"_id": {"$in": ["a", "c", "zz"]}}) == ["a", "c"]
    assert _ids(c, {"k": {"$in": ["x"]}}) == ["a", "b"]
    assert _ids(c, {"k": {"$in": ["y", oid]}}) == ["b", "d"]
    assert _ids(c, {"k": {"$in": ["x", 7]}}) == ["a", "b", "c"]
    assert _ids(c, {"k": {"$in": []}}) == []
    assert _ids(c, {"k": {"$in": ["x"]}, "_id": {"$in": ["b", "f"]}}) == ["b"]


@check("query $elemMatch on sub-document fields")
def elem_match(db: Database[Any]) -> None:
    c = _qdocs(db)
    one = _ids(c, {"items": {"$elemMatch": {"id": "a"}}})
    if one != [1]:
        raise AssertionError(
            f"silently wrong: {{$elemMatch: {{id: 'a'}}}} matched {one}, expected [1]"
        )
    assert _ids(c, {"items": {"$elemMatch": {"id": "a", "read": False}}}) == [1]


@check("query by whole sub-document inside an array")
def subdoc_equality(db: Database[Any]) -> None:
    c = _qdocs(db)
    got = _ids(c, {"items": {"id": "a", "read": False}})
    if got != [1]:
        raise AssertionError(f"silently wrong: matched {got}, expected [1]")


@check("projection: include/exclude, dotted path")
def projection(db: Database[Any]) -> None:
    c = _qdocs(db)
    assert one(c, {"_id": 1}, {"items.id": 1}) == {"_id": 1, "items": [{"id": "a"}]}
    assert "tags" not in one(c, {"_id": 1}, {"tags": 0})
    assert one(c, {"_id": 1}, {"_id": 0, "name": 1}) == {"name": "alpha"}


@check("projection operators $slice / $elemMatch")
def projection_ops(db: Database[Any]) -> None:
    c = _qdocs(db)
    assert one(c, {"_id": 2}, {"tags": {"$slice": 1}})["tags"] == ["y"]
    assert one(c, {"_id": 2}, {"items": {"$elemMatch": {"id": "b"}}})["items"][0]["id"] == "b"


@check("positional update items.$.field")
def positional(db: Database[Any]) -> None:
    c = fresh(db, "pos")
    c.insert_one({"_id": 1, "items": [{"id": "a", "read": False}, {"id": "b", "read": False}]})
    c.update_one({"_id": 1, "items.id": "b"}, {"$set": {"items.$.read": True}})
    assert [i["read"] for i in one(c, {"_id": 1})["items"]] == [False, True]


@check("arrayFilters items.$[i].field")
def array_filters(db: Database[Any]) -> None:
    c = fresh(db, "af")
    c.insert_one({"_id": 1, "items": [{"id": "a", "read": False}, {"id": "b", "read": False}]})
    c.update_one({"_id": 1}, {"$set": {"items.$[i].read": True}}, array_filters=[{"i.id": "a"}])
    assert [i["read"] for i in one(c, {"_id": 1})["items"]] == [True, False]


@check("unique index + DuplicateKeyError (code 11000)")
def unique_index(db: Database[Any]) -> str:
    c = fresh(db, "uniq")
    name = c.create_index([("email", ASCENDING)], unique=True)
    c.insert_one({"email": "a@x"})
    try:
        c.insert_one({"email": "a@x"})
    except DuplicateKeyError as exc:
        assert exc.code == 11000, exc.code
    else:
        raise AssertionError("duplicate insert accepted")
    try:
        c.update_one({"email": "b@x"}, {"$set": {"email": "a@x"}}, upsert=True)
    except DuplicateKeyError:
        pass
    else:
        raise AssertionError("duplicate upsert accepted")
    info = c.index_information()[name]
    assert info.get("unique") is True, info
    return f"index {name}"


@check("unique compound index")
def unique_compound(db: Database[Any]) -> None:
    c = fresh(db, "uniq2")
    c.create_index([("user", ASCENDING), ("key", ASCENDING)], unique=True)
    c.insert_many([{"user": 1, "key": "a"}, {"user": 2, "key": "a"}])
    try:
        c.insert_one({"user": 1, "key": "a"})
    except DuplicateKeyError:
        return
    raise AssertionError("duplicate accepted")


@check("unique index on existing duplicates is refused")
def unique_on_dupes(db: Database[Any]) -> None:
    c = fresh(db, "uniq3")
    c.insert_many([{"k": 1}, {"k": 1}])
    try:
        c.create_index("k", unique=True)
    except OperationFailure:
        return
    raise AssertionError("unique index created over duplicates")


@check("unique index on a nested field (a.b)")
def unique_nested(db: Database[Any]) -> None:
    c = fresh(db, "uniqn")
    c.create_index("a.b", unique=True)
    c.insert_one({"a": {"b": 1}})
    try:
        c.insert_one({"a": {"b": 1}})
    except DuplicateKeyError:
        return
    raise AssertionError("duplicate accepted")


@check("unique index on an array field (per element, multikey)")
def unique_multikey(db: Database[Any]) -> None:
    c = fresh(db, "uniqm")
    c.create_index("tags", unique=True)
    c.insert_one({"tags": ["x", "y"]})
    try:
        c.insert_one({"tags": ["y"]})
    except DuplicateKeyError:
        return
    raise AssertionError(
        "silently accepted: uniqueness is checked on the whole array, not per element"
    )


@check("partial unique index (partialFilterExpression)")
def partial_index(db: Database[Any]) -> None:
    c = fresh(db, "partial")
    c.create_index("k", unique=True, partialFilterExpression={"active": True})
    c.insert_many([{"k": 1, "active": False}, {"k": 1, "active": False}, {"k": 1, "active": True}])
    try:
        c.insert_one({"k": 1, "active": True})
    except DuplicateKeyError:
        return
    raise Note("index created, but uniqueness is not enforced for the partial filter")


@check("sparse unique index")
def sparse_index(db: Database[Any]) -> None:
    c = fresh(db, "sparse")
    c.create_index("k", unique=True, sparse=True)
    c.insert_many([{"a": 1}, {"a": 2}, {"k": 1}])
    try:
        c.insert_one({"k": 1})
    except DuplicateKeyError:
        return
    raise AssertionError("duplicate accepted")


@check("insert_many(ordered=False) with duplicate keys")
def insert_many_unordered(db: Database[Any]) -> str:
    c = fresh(db, "im")
    c.create_index("k", unique=True)
    c.insert_one({"k": 2})
    try:
        c.insert_many([{"k": 1}, {"k": 2}, {"k": 3}, {"k": 3}, {"k": 4}], ordered=False)
    except BulkWriteError as exc:
        d = exc.details
        codes = sorted(e["code"] for e in d["writeErrors"])
        idx = sorted(e["index"] for e in d["writeErrors"])
        assert codes == [11000, 11000], d
        assert idx == [1, 3], d
        assert d["nInserted"] == 3, d
    else:
        raise AssertionError("no BulkWriteError")
    assert sorted(x["k"] for x in c.find()) == [1, 2, 3, 4]
    return "writeErrors at indexes 1,3; nInserted=3; the rest inserted"


@check("insert_many(ordered=True) stops at the first duplicate")
def insert_many_ordered(db: Database[Any]) -> None:
    c = fresh(db, "im2")
    c.create_index("k", unique=True)
    try:
        c.insert_many([{"k": 1}, {"k": 1}, {"k": 2}])
    except BulkWriteError as exc:
        assert exc.details["nInserted"] == 1, exc.details
    else:
        raise AssertionError("no BulkWriteError")
    assert sorted(x["k"] for x in c.find()) == [1]


@check("bulk_write(ordered=False) mixed ops with a duplicate")
def bulk_write_mixed(db: Database[Any]) -> str:
    c = fresh(db, "bw")
    c.create_index("k", unique=True)
    c.insert_one({"k": 1, "n": 0})
    ops: list[Any] = [
        InsertOne({"k": 1}),
        UpdateOne({"k": 1}, {"$inc": {"n": 1}}),
        UpdateOne({"k": 5}, {"$set": {"n": 5}}, upsert=True),
        InsertOne({"k": 6}),
    ]
    try:
        c.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        d = exc.details
        assert [e["index"] for e in d["writeErrors"]] == [0], d
        assert d["writeErrors"][0]["code"] == 11000, d
        assert d["nInserted"] == 1 and d["nModified"] == 1 and d["nUpserted"] == 1, d
    else:
        raise AssertionError("no BulkWriteError")
    assert one(c, {"k": 1})["n"] == 1
    assert c.count_documents({}) == 3
    return "nInserted=1 nModified=1 nUpserted=1, one 11000 error"


@check("count_documents / estimated_document_count / distinct")
def counting(db: Database[Any]) -> None:
    c = fresh(db, "cnt")
    c.insert_many([{"u": i % 3, "read": i % 2 == 0} for i in range(30)])
    assert c.count_documents({}) == 30
    assert c.count_documents({"u": 1, "read": False}) == 5
    assert c.count_documents({"u": 1}, limit=3) == 3
    assert c.estimated_document_count() == 30
    assert sorted(c.distinct("u")) == [0, 1, 2]


@check("sort + limit on an indexed compound key")
def sort_limit(db: Database[Any]) -> str:
    c = fresh(db, "sl")
    c.create_index([("user", ASCENDING), ("created", DESCENDING)])
    base = dt.datetime(2024, 1, 1)
    c.insert_many(
        [
            {"user": u, "created": base + dt.timedelta(minutes=i), "i": i}
            for u in ("a", "b")
            for i in range(50)
        ]
    )
    docs = list(c.find({"user": "a"}).sort([("created", DESCENDING)]).limit(5))
    assert [d["i"] for d in docs] == [49, 48, 47, 46, 45], [d["i"] for d in docs]
    page2 = list(
        c.find({"user": "a"}).sort([("created", DESCENDING), ("_id", ASCENDING)]).skip(5).limit(5)
    )
    assert [d["i"] for d in page2] == [44, 43, 42, 41, 40]
    before = base + dt.timedelta(minutes=10)
    older = list(
        c.find({"user": "b", "created": {"$lt": before}}).sort("created", DESCENDING).limit(3)
    )
    assert [d["i"] for d in older] == [9, 8, 7]
    plan = c.find({"user": "a"}).sort([("created", DESCENDING)]).limit(5).explain()
    pushdown = {k: v for k, v in plan.items() if k.endswith("Pushdown")}
    return f"explain: {pushdown}" if pushdown else ""


@check("find_one_and_update(upsert=True, return_document=AFTER)")
def fau_upsert(db: Database[Any]) -> None:
    c = fresh(db, "fau")
    doc = c.find_one_and_update(
        {"key": "k1"},
        {"$inc": {"n": 1}, "$setOnInsert": {"created": "now"}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc and doc["n"] == 1 and doc["created"] == "now" and doc["key"] == "k1", doc
    doc = c.find_one_and_update(
        {"key": "k1"},
        {"$inc": {"n": 1}, "$setOnInsert": {"created": "later"}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc and doc["n"] == 2 and doc["created"] == "now", doc
    before = c.find_one_and_update({"key": "k1"}, {"$set": {"n": 10}})
    assert before and before["n"] == 2, before


@check("find_one_and_update with sort (claim the oldest due job)")
def fau_claim(db: Database[Any]) -> None:
    c = fresh(db, "claim")
    c.create_index([("status", ASCENDING), ("due", ASCENDING)])
    c.insert_many([{"status": "pending", "due": d} for d in (5, 1, 3)])
    got = [
        c.find_one_and_update(
            {"status": "pending", "due": {"$lte": 4}},
            {"$set": {"status": "claimed"}},
            sort=[("due", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        for _ in range(3)
    ]
    assert [g["due"] if g else None for g in got] == [1, 3, None], got


@check("find_one_and_delete / replace_one upsert / delete_many")
def misc_writes(db: Database[Any]) -> None:
    c = fresh(db, "mw")
    c.insert_many([{"k": i} for i in range(5)])
    deleted = c.find_one_and_delete({"k": 2})
    assert deleted and deleted["k"] == 2, deleted
    r = c.replace_one({"k": 9}, {"k": 9, "v": 1}, upsert=True)
    assert r.upserted_id is not None
    assert c.delete_many({"k": {"$lt": 2}}).deleted_count == 2
    assert c.count_documents({}) == 3


@check("update operators $min/$max/$mul/$rename/$currentDate")
def more_ops(db: Database[Any]) -> None:
    c = fresh(db, "ops")
    c.insert_one({"_id": 1, "lo": 5, "hi": 5, "m": 2, "old": 1})
    c.update_one(
        {"_id": 1},
        {
            "$min": {"lo": 3},
            "$max": {"hi": 7},
            "$mul": {"m": 3},
            "$rename": {"old": "new"},
            "$currentDate": {"ts": True},
        },
    )
    d = one(c, {"_id": 1})
    assert (d["lo"], d["hi"], d["m"], d["new"]) == (3, 7, 6, 1) and "old" not in d, d
    assert isinstance(d["ts"], dt.datetime), d


@check("update_many")
def update_many(db: Database[Any]) -> None:
    c = fresh(db, "um")
    c.insert_many([{"u": 1, "read": False} for _ in range(4)])
    r = c.update_many({"u": 1, "read": False}, {"$set": {"read": True}})
    assert r.modified_count == 4, r.raw_result


def _aggdocs(db: Database[Any]) -> Collection[Any]:
    c = fresh(db, "agg")
    c.insert_many([{"u": i % 3, "tags": ["a", "b"][: i % 3], "v": i} for i in range(12)])
    return c


@check("aggregate $match/$group($sum)/$sort/$limit/$project/$unwind/$count/$skip/$addFields")
def aggregate(db: Database[Any]) -> None:
    c = _aggdocs(db)
    res = list(
        c.aggregate(
            [
                {"$match": {"v": {"$gte": 0}}},
                {"$group": {"_id": "$u", "total": {"$sum": "$v"}}},
                {"$sort": {"total": -1}},
                {"$skip": 0},
                {"$limit": 2},
                {"$addFields": {"k": "x"}},
                {"$project": {"total": 1, "k": 1}},
            ]
        )
    )
    assert [(r["_id"], r["total"], r["k"]) for r in res] == [(2, 26, "x"), (1, 22, "x")], res
    counts = list(c.aggregate([{"$group": {"_id": "$u", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]))
    assert [r["n"] for r in counts] == [4, 4, 4], counts
    unwound = list(
        c.aggregate([{"$unwind": "$tags"}, {"$group": {"_id": "$tags", "n": {"$count": {}}}}])
    )
    assert sorted((r["_id"], r["n"]) for r in unwound) == [("a", 8), ("b", 4)], unwound
    assert list(c.aggregate([{"$match": {"u": 0}}, {"$count": "n"}])) == [{"n": 4}]


@check("aggregate $project/$addFields with a field path ({c: '$v'})")
def project_field_path(db: Database[Any]) -> None:
    c = _aggdocs(db)
    got = [d["c"] for d in c.aggregate([{"$match": {"v": 1}}, {"$addFields": {"c": "$v"}}])]
    got += [d["c"] for d in c.aggregate([{"$match": {"v": 1}}, {"$project": {"c": "$v"}}])]
    if got != [1, 1]:
        raise AssertionError(f"silently wrong: got {got!r}, expected [1, 1]")


@check("aggregate expression operators ($add, $literal, $cond)")
def expression_operators(db: Database[Any]) -> None:
    c = _aggdocs(db)
    res = list(
        c.aggregate(
            [
                {"$match": {"v": 1}},
                {
                    "$project": {
                        "a": {"$add": ["$v", 1]},
                        "l": {"$literal": 1},
                        "c": {"$cond": [True, 1, 0]},
                    }
                },
            ]
        )
    )
    assert [(r["a"], r["l"], r["c"]) for r in res] == [(2, 1, 1)], res


@check("aggregate $group with two accumulators ({$sum: 1} and {$sum: '$v'})")
def group_two_accumulators(db: Database[Any]) -> None:
    c = _aggdocs(db)
    res = list(
        c.aggregate(
            [
                {"$group": {"_id": "$u", "n": {"$sum": 1}, "t": {"$sum": "$v"}}},
                {"$sort": {"_id": 1}},
            ]
        )
    )
    got = [(r["n"], r["t"]) for r in res]
    if got != [(4, 18), (4, 22), (4, 26)]:
        raise AssertionError(
            f"silently wrong: (n, t) per group = {got}, expected [(4, 18), (4, 22), (4, 26)]"
        )


@check("aggregate $group accumulators $avg/$min/$max/$first/$last/$push/$addToSet")
def group_accumulators(db: Database[Any]) -> str:
    c = _aggdocs(db)
    missing = []
    for acc in ("$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet"):
        try:
            list(c.aggregate([{"$group": {"_id": "$u", "x": {acc: "$v"}}}]))
        except OperationFailure:
            missing.append(acc)
    if missing:
        raise AssertionError("not implemented: " + " ".join(missing))
    return ""


@check("aggregate $lookup")
def lookup(db: Database[Any]) -> None:
    a, b = fresh(db, "la"), fresh(db, "lb")
    a.insert_one({"_id": 1})
    b.insert_many([{"a": 1}, {"a": 1}])
    res = list(
        a.aggregate(
            [{"$lookup": {"from": "lb", "localField": "_id", "foreignField": "a", "as": "bs"}}]
        )
    )
    assert len(res[0]["bs"]) == 2, res


@check("aggregate $facet")
def facet(db: Database[Any]) -> None:
    c = fresh(db, "fc")
    c.insert_many([{"v": i} for i in range(5)])
    res = list(
        c.aggregate(
            [{"$facet": {"n": [{"$count": "n"}], "top": [{"$sort": {"v": -1}}, {"$limit": 1}]}}]
        )
    )
    assert res[0]["n"] == [{"n": 5}], res


@check("cursor getMore over 1000 documents")
def cursor_batches(db: Database[Any]) -> None:
    c = fresh(db, "many")
    c.insert_many([{"i": i} for i in range(1000)])
    assert sum(1 for _ in c.find({}, batch_size=100)) == 1000


@check("datetime / ObjectId / binary / None round-trip")
def types(db: Database[Any]) -> None:
    from bson import Binary, ObjectId

    c = fresh(db, "types")
    now = dt.datetime(2024, 5, 6, 7, 8, 9, 123000)
    ref = ObjectId()
    c.insert_one({"_id": 1, "t": now, "ref": ref, "b": Binary(b"\x00\x01"), "z": None})
    d = one(c, {"_id": 1})
    assert d == {"_id": 1, "t": now, "ref": ref, "b": b"\x00\x01", "z": None}, d
    assert c.count_documents({"t": {"$gte": now}}) == 1


@check("Decimal128 values")
def decimal128(db: Database[Any]) -> None:
    from bson import Decimal128

    c = fresh(db, "dec")
    c.insert_one({"_id": 1, "d": Decimal128("1.10")})
    assert one(c, {"_id": 1})["d"] == Decimal128("1.10")


@check("TTL index creation (expireAfterSeconds)")
def ttl_create(db: Database[Any]) -> str:
    c = fresh(db, "ttl")
    name = c.create_index("expireAt", expireAfterSeconds=0)
    info = c.index_information()[name]
    c.insert_one(
        {
            "_id": "old",
            "expireAt": dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1),
        }
    )
    c.insert_one(
        {
            "_id": "new",
            "expireAt": dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1),
        }
    )
    return f"accepted; index info: {dict(info)}"


@check("transactions (start_session + with_transaction)")
def transactions(db: Database[Any]) -> None:
    c = fresh(db, "tx")
    c.insert_one({"_id": 0})
    with db.client.start_session() as s:
        s.with_transaction(lambda sess: c.insert_one({"_id": 1}, session=sess))
    assert c.count_documents({}) == 2


@check("change streams (watch)")
def change_streams(db: Database[Any]) -> None:
    c = fresh(db, "cs")
    with c.watch(max_await_time_ms=100) as stream:
        c.insert_one({"x": 1})
        assert stream.try_next() is not None


@check("capped collection")
def capped(db: Database[Any]) -> None:
    db.drop_collection("capped")
    c = db.create_collection("capped", capped=True, size=4096, max=3)
    c.insert_many([{"i": i} for i in range(5)])
    n = c.count_documents({})
    if n != 3:
        raise Note(f"created, but holds {n} documents (max=3): cleanup is not immediate")


@check("text index + $text search")
def text_search(db: Database[Any]) -> None:
    c = fresh(db, "text")
    c.create_index([("body", "text")])
    c.insert_many([{"body": "your order shipped"}, {"body": "new message"}])
    assert [d["body"] for d in c.find({"$text": {"$search": "order"}})] == ["your order shipped"]


@check("collation (case-insensitive find)")
def collation(db: Database[Any]) -> None:
    c = fresh(db, "coll")
    c.insert_many([{"n": "Alice"}, {"n": "alice"}])
    assert c.count_documents({"n": "alice"}, collation={"locale": "en", "strength": 2}) == 2


@check("$expr query")
def expr(db: Database[Any]) -> None:
    c = fresh(db, "expr")
    c.insert_many([{"a": 1, "b": 2}, {"a": 3, "b": 2}])
    assert [d["a"] for d in c.find({"$expr": {"$gt": ["$a", "$b"]}})] == [3]


@check("update with an aggregation pipeline")
def pipeline_update(db: Database[Any]) -> None:
    c = fresh(db, "pu")
    c.insert_one({"_id": 1, "a": 1})
    c.update_one({"_id": 1}, [{"$set": {"b": {"$add": ["$a", 1]}}}])
    assert one(c, {"_id": 1})["b"] == 2


def _threads(n: int, target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@check("concurrent $inc on one document (8 threads x 50) loses no update")
def concurrent_inc(db: Database[Any]) -> None:
    c = fresh(db, "cinc")
    c.insert_one({"_id": 1, "n": 0})

    def work() -> None:
        for _ in range(50):
            c.update_one({"_id": 1}, {"$inc": {"n": 1}})

    _threads(8, work)
    n = one(c, {"_id": 1})["n"]
    if n != 400:
        raise AssertionError(f"lost updates: n={n}, expected 400")


@check("concurrent find_one_and_update claims each job once (8 workers, 100 jobs)")
def concurrent_claims(db: Database[Any]) -> None:
    c = fresh(db, "cclaim")
    c.insert_many([{"status": "pending", "due": i} for i in range(100)])
    claimed: list[Any] = []
    lock = threading.Lock()

    def work() -> None:
        while (
            doc := c.find_one_and_update(
                {"status": "pending"}, {"$set": {"status": "claimed"}}, sort=[("due", ASCENDING)]
            )
        ) is not None:
            with lock:
                claimed.append(doc["_id"])

    _threads(8, work)
    if len(claimed) != 100 or len(set(claimed)) != 100:
        raise AssertionError(
            f"{len(claimed)} claims for {len(set(claimed))} distinct jobs (expected 100/100)"
        )


@check("concurrent upserts of one key ($inc, unique index, 16 threads)")
def concurrent_upserts(db: Database[Any]) -> str:
    c = fresh(db, "cups")
    c.create_index("key", unique=True)
    errors: list[str] = []

    def work() -> None:
        try:
            c.update_one({"key": "k"}, {"$inc": {"n": 1}}, upsert=True)
        except DuplicateKeyError:
            errors.append("dup")

    _threads(16, work)
    n = one(c, {"key": "k"})["n"]
    if n + len(errors) != 16 or c.count_documents({}) != 1:
        raise AssertionError(
            f"n={n} with {len(errors)} DuplicateKeyErrors (expected them to add up to 16)"
        )
    return f"{len(errors)} DuplicateKeyErrors (MongoDB may raise these too)" if errors else ""


@check("speed: filtered scan (count_documents over 2000 documents)")
def scan_speed(db: Database[Any]) -> str:
    c = fresh(db, "speed")
    c.create_index([("user", ASCENDING), ("created", DESCENDING)])
    c.insert_many([{"user": f"u{i % 100}", "created": i, "body": "x" * 200} for i in range(2000)])
    t0 = time.perf_counter()
    for i in range(10):
        assert c.count_documents({"user": f"u{i}"}) == 20
    per_query = (time.perf_counter() - t0) / 10
    t0 = time.perf_counter()
    for i in range(10):
        c.update_one({"user": "u1", "created": 1 + 100 * i}, {"$set": {"seen": True}})
    per_update = (time.perf_counter() - t0) / 10
    some_id = one(c, {}, {"_id": 1})["_id"]
    t0 = time.perf_counter()
    for _ in range(10):
        one(c, {"_id": some_id})
    per_id = (time.perf_counter() - t0) / 10
    return f"{per_query * 1000:.0f} ms per filtered query, {per_update * 1000:.0f} ms per update by field, {per_id * 1000:.1f} ms per _id lookup"


@check("mongoengine Document save / unique / query / atomic update")
def mongoengine_check(db: Database[Any]) -> str:
    try:
        import mongoengine as me
    except ImportError as exc:
        raise Note("mongoengine not installed; skipped") from exc

    alias = f"compat-{uuid.uuid4().hex[:6]}"
    me.connect(db=db.name, host=CONFIG["uri"], alias=alias)

    class Item(me.EmbeddedDocument):
        id = me.StringField()
        read = me.BooleanField(default=False)

    class Inbox(me.Document):
        user = me.StringField(required=True, unique=True)
        items = me.EmbeddedDocumentListField(Item)
        created = me.DateTimeField(default=dt.datetime.utcnow)
        meta = {"db_alias": alias, "collection": "me_inbox", "indexes": [("user", "-created")]}

    Inbox.drop_collection()
    Inbox(user="u1", items=[Item(id="a")]).save()
    try:
        Inbox(user="u1").save()
    except me.NotUniqueError:
        pass
    else:
        raise AssertionError("duplicate user saved")
    Inbox.objects(user="u1").update_one(push__items=Item(id="b"))
    got = Inbox.objects.get(user="u1")
    assert [i.id for i in got.items] == ["a", "b"], got.items
    assert Inbox.objects(items__size=2).count() == 1
    assert Inbox.objects(items__id="b").count() == 1
    Inbox.objects(user="u1").update_one(pull__items__id="a")  # = {$pull: {items: {id: "a"}}}
    items = [i.id for i in Inbox.objects.get(user="u1").items]
    me.disconnect(alias)
    if items != ["b"]:
        raise Note(
            f"basics work; pull__items__id is a silent no-op like $pull by field (items={items})"
        )
    return "ensure_indexes, NotUniqueError, push, __size, items__id, pull__items__id"


CONFIG: dict[str, Any] = {}


def ttl_wait(db: Database[Any], seconds: float) -> None:
    name = f"TTL index actually deletes expired documents (waited up to {seconds:.0f}s)"
    c = db["ttl"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if c.find_one({"_id": "old"}) is None:
            assert c.find_one({"_id": "new"}) is not None
            RESULTS.append(("ok", name, ""))
            return
        time.sleep(2)
    RESULTS.append(
        ("note", name, "expired document still there: TTL index accepted but not enforced")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--uri", default=os.environ.get("HERALD_MONGODB_URI", "mongodb://127.0.0.1:27017")
    )
    parser.add_argument(
        "--ttl-wait", type=float, default=0, help="seconds to wait for TTL deletion"
    )
    args = parser.parse_args()
    CONFIG["uri"] = args.uri

    client: pymongo.MongoClient[Any] = pymongo.MongoClient(args.uri, serverSelectionTimeoutMS=5000)
    hello = client.admin.command("hello")
    build = client.admin.command("buildInfo")
    print(
        f"server: {args.uri} version={build.get('version')} ferretdb={'ferretdbVersion' in build}"
    )
    print(f"maxWireVersion={hello.get('maxWireVersion')} setName={hello.get('setName')}")
    db = client[f"compat_{uuid.uuid4().hex[:8]}"]
    try:
        for fn in CHECKS:
            fn(db)
        if args.ttl_wait > 0 and any(
            n.startswith("TTL index creation") and s == "ok" for s, n, _ in RESULTS
        ):
            ttl_wait(db, args.ttl_wait)
    finally:
        client.drop_database(db.name)
        client.close()

    width = max(len(n) for _, n, _ in RESULTS)
    for status, name, detail in RESULTS:
        print(f"{status:4}  {name:<{width}}  {detail}".rstrip())
    failed = sum(1 for s, _, _ in RESULTS if s == "FAIL")
    notes = sum(1 for s, _, _ in RESULTS if s == "note")
    print(f"checks: {len(RESULTS) - failed - notes} ok, {notes} notes, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
