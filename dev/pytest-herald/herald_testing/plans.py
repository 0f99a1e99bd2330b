"""Proof that queries are served by indexes: record what code sends, read the plans.

:class:`QueryRecorder` captures every read and write command that pymongo sends while
it is active (it is a pymongo command listener, so it sees mongoengine too), and
:func:`unindexed` explains each captured filter against the real server and returns
those whose plan reads a collection sequentially.

How the plan is read:

* FerretDB on PostgreSQL returns PostgreSQL's plan in ``queryPlanner.Plan``: a
  ``Seq Scan`` node on the collection's table means no index served the filter.
* MongoDB returns ``queryPlanner.winningPlan``: a ``COLLSCAN`` stage means the same.

Writes (``update``, ``delete``, ``findAndModify``) are checked through their filter: the
server finds the documents to change exactly as a ``find`` with that filter would.

Use it on collections big enough that a planner would never prefer a scan of a small
table (a few thousand documents, statistics refreshed with :func:`refresh_statistics`).
A collection that stays small by design (a state document per kind, a marker) is read
whole by PostgreSQL whatever its indexes, as one page costs less than an index: a
sequential scan there is accepted when the collection holds at most
:data:`SMALL_COLLECTION` documents and the filter is what FerretDB serves from an index
(a top-level equality on ``_id`` or on the leading field of one of its indexes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring
from pymongo.database import Database

READS = {"find", "count", "aggregate", "distinct"}
WRITES = {"update", "delete", "findAndModify", "findandmodify"}


@dataclass(frozen=True)
class Query:
    """One filter the code sent: command, collection, filter, and sort when there was one."""

    command: str
    collection: str
    filter: dict[str, Any]
    sort: dict[str, Any] | None = None

    def describe(self) -> str:
        sort = f" sort {self.sort}" if self.sort else ""
        return f"{self.command} {self.collection} {self.filter}{sort}"


def _queries(name: str, cmd: dict[str, Any]) -> Iterator[Query]:
    coll = cmd.get(name)
    if not isinstance(coll, str):
        return
    if name == "find":
        yield Query("find", coll, dict(cmd.get("filter") or {}), cmd.get("sort"))
    elif name == "count":
        yield Query("count", coll, dict(cmd.get("query") or {}))
    elif name == "distinct":
        yield Query("distinct", coll, dict(cmd.get("query") or {}))
    elif name == "aggregate":
        stages = cmd.get("pipeline") or []
        match = stages[0].get("$match") if stages and "$match" in stages[0] else {}
        yield Query("aggregate", coll, dict(match))
    elif name == "update":
        for u in cmd.get("updates") or []:
            yield Query("update", coll, dict(u.get("q") or {}))
    elif name == "delete":
        for d in cmd.get("deletes") or []:
            yield Query("delete", coll, dict(d.get("q") or {}))
    elif name.lower() == "findandmodify":
        yield Query("findAndModify", coll, dict(cmd.get("query") or {}), cmd.get("sort"))


class QueryRecorder(monitoring.CommandListener):
    """Records the filters of commands sent to one database while recording is on.

    Register it once per process (pymongo applies listeners registered before a client
    is created); ``with recorder.recording(): ...`` collects what the block sends.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.queries: list[Query] = []
        self._on = False
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self._on or event.database_name != self.database:
            return
        if event.command_name not in READS | WRITES:
            return
        with self._lock:
            self.queries.extend(_queries(event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Outcomes do not matter: a filter is recorded when it is sent."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Outcomes do not matter: a filter is recorded when it is sent."""

    def recording(self) -> _Recording:
        return _Recording(self)

    def distinct_queries(self) -> list[Query]:
        """Each recorded query shape once (same command, collection, keys, operators)."""
        seen: dict[str, Query] = {}
        for q in self.queries:
            seen.setdefault(shape(q), q)
        return list(seen.values())


@dataclass
class _Recording:
    recorder: QueryRecorder
    start: int = field(default=0)

    def __enter__(self) -> QueryRecorder:
        self.start = len(self.recorder.queries)
        self.recorder._on = True
        return self.recorder

    def __exit__(self, *exc: object) -> None:
        self.recorder._on = False


def shape(q: Query) -> str:
    """The filter's structure without values: what decides the plan."""

    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in sorted(v.items())}
        if isinstance(v, list):
            return [strip(x) for x in v[:1]]
        return type(v).__name__

    return f"{q.command} {q.collection} {strip(q.filter)} {sorted((q.sort or {}).items())}"


def refresh_statistics(db: Database[Any]) -> None:
    """Let the server's planner see the current data (FerretDB: ANALYZE every table)."""
    db.command("dbStats")


def explain(db: Database[Any], q: Query) -> dict[str, Any]:
    """The server's plan for the documents ``q`` reads (as a ``find`` for writes)."""
    cmd: dict[str, Any] = {"find": q.collection, "filter": q.filter}
    if q.sort:
        cmd["sort"] = q.sort
    return dict(db.command("explain", cmd, verbosity="queryPlanner"))


def sequential_scans(plan: dict[str, Any]) -> list[str]:
    """Relations or stages that a plan reads in full."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan":
                found.append(str(node.get("Relation Name")))
            if node.get("stage") == "COLLSCAN":
                found.append("COLLSCAN")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(plan.get("queryPlanner", plan))
    return found


# At most this many documents: a collection small by design (see the module docstring).
SMALL_COLLECTION = 100


def _is_equality(value: Any) -> bool:
    # A scalar (null matches missing fields too: FerretDB does not push it down).
    if isinstance(value, dict) and set(value) == {"$eq"}:
        value = value["$eq"]
    return value is not None and not isinstance(value, dict | list)


def indexed_equality(db: Database[Any], q: Query) -> bool:
    """Whether ``q``'s filter has a top-level equality on ``_id`` or on the leading field
    of one of the collection's indexes: what FerretDB pushes down and PostgreSQL can
    answer from an index."""
    leading = {"_id"} | {
        next(iter(ix["key"])) for ix in db[q.collection].list_indexes() if ix.get("key")
    }
    return any(
        not key.startswith("$") and "." not in key and key in leading and _is_equality(value)
        for key, value in q.filter.items()
    )


def _small(db: Database[Any], collection: str) -> bool:
    return int(db.command("count", collection)["n"]) <= SMALL_COLLECTION


def unindexed(db: Database[Any], queries: list[Query]) -> list[str]:
    """Descriptions of the queries whose plan scans a collection sequentially (a
    collection small by design is accepted when the filter is an indexed equality)."""
    bad = []
    for q in queries:
        scans = sequential_scans(explain(db, q))
        if scans and indexed_equality(db, q) and _small(db, q.collection):
            continue  # PostgreSQL reads a one-page table whole rather than via an index
        if scans:
            bad.append(f"{q.describe()}: sequential scan of {', '.join(scans)}")
    return bad


_RECORDERS: dict[str, QueryRecorder] = {}


def recorder_for(database: str) -> QueryRecorder:
    """The process-wide recorder of ``database`` (registered with pymongo on first use:
    create it before the clients whose commands it should see)."""
    if database not in _RECORDERS:
        rec = QueryRecorder(database)
        monitoring.register(rec)
        _RECORDERS[database] = rec
    return _RECORDERS[database]
