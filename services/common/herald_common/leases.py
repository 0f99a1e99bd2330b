"""Leases: a time-limited claim of one worker on one document.

RabbitMQ delivers at least once and a service may run several replicas, so two workers
can start the same long piece of work (a campaign run). Correctness never rests on a
lease (unique keys and idempotent writes do); a lease keeps the second worker from doing
the same work at the same time. The holder renews it while it works and releases it
when done; a worker that died stops renewing and its lease runs out, so another takes
over and nothing is left unfinished.

A lease lives in two fields of the leased document, ``lease_owner`` and ``lease_until``.
Taking it is one atomic conditional update on the document's ``_id`` (index-served).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.collection import Collection


@dataclass(frozen=True)
class Lease:
    """The lease ``owner`` holds for ``duration`` after each take or renewal."""

    owner: str
    duration: timedelta

    def held(self, now: datetime) -> dict[str, Any]:
        """The fields of a document leased to :attr:`owner` from ``now`` (for an insert
        or a ``$set`` that renews the lease along with other changes)."""
        return {"lease_owner": self.owner, "lease_until": now + self.duration}

    @staticmethod
    def released() -> dict[str, Any]:
        """The fields of a document nobody holds (``$set`` them when the work is done)."""
        return {"lease_owner": None, "lease_until": None}

    def take(
        self,
        coll: Collection[Any],
        key: Any,
        now: datetime,
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        """Take (or renew) the lease on document ``key`` if it is free, expired or
        already ours, and the document matches ``where``; False when another worker
        holds a live lease (or the document does not match)."""
        free = {
            "$or": [
                {"lease_owner": None},
                {"lease_owner": self.owner},
                {"lease_until": None},
                {"lease_until": {"$lte": now}},
            ]
        }
        result = coll.update_one({"_id": key, **(where or {}), **free}, {"$set": self.held(now)})
        return result.matched_count == 1
