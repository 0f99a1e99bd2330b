"""The shared lease on the real server: one holder at a time, renewal, expiry, release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from herald_common.db import connect_db, disconnect_db, named
from herald_common.leases import Lease

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def coll(make_settings):
    connect_db(make_settings())
    yield named("leased")
    disconnect_db()


def test_one_holder_until_the_lease_runs_out(coll) -> None:
    first = Lease("worker-1", timedelta(seconds=30))
    second = Lease("worker-2", timedelta(seconds=30))
    coll.insert_one({"_id": "run-1", "status": "running", **first.held(T0)})

    assert not second.take(coll, "run-1", T0 + timedelta(seconds=5))
    assert first.take(coll, "run-1", T0 + timedelta(seconds=20))  # renewal
    assert not second.take(coll, "run-1", T0 + timedelta(seconds=45))  # renewed until 50 s
    # worker-1 died: once its lease runs out, worker-2 takes over.
    assert second.take(coll, "run-1", T0 + timedelta(seconds=50))
    doc = coll.find_one({"_id": "run-1"})
    assert doc["lease_owner"] == "worker-2"
    assert doc["lease_until"].replace(tzinfo=UTC) == T0 + timedelta(seconds=80)
    assert not first.take(coll, "run-1", T0 + timedelta(seconds=51))


def test_released_and_conditional(coll) -> None:
    lease = Lease("worker-1", timedelta(seconds=30))
    coll.insert_one({"_id": "run-2", "status": "running", **lease.held(T0)})
    coll.update_one({"_id": "run-2"}, {"$set": {"status": "done", **Lease.released()}})

    other = Lease("worker-2", timedelta(seconds=30))
    assert not other.take(coll, "run-2", T0, where={"status": "running"})
    assert other.take(coll, "run-2", T0, where={"status": "done"})
    assert not other.take(coll, "missing", T0)
