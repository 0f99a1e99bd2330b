"""Streaming the user replica: order, batches, filters on ``_id``, resuming."""

import pytest
from herald_common import replica
from herald_common.db import connect_db, disconnect_db

pytestmark = pytest.mark.integration


@pytest.fixture
def users(make_settings):
    connect_db(make_settings())
    replica.ensure_indexes()
    docs = [
        {"_id": f"u{i:03d}", "revision": 1, "deleted": i % 10 == 9, "name": f"U{i}"}
        for i in range(45)
    ]
    replica._coll().insert_many(list(reversed(docs)))
    yield [d["_id"] for d in docs if not d["deleted"]]
    disconnect_db()


def test_iter_users_streams_live_users_in_id_order(users):
    batches = list(replica.iter_users(batch_size=8))
    assert [len(b) for b in batches] == [8, 8, 8, 8, 8, 1]  # 41 live users
    assert [u["_id"] for b in batches for u in b] == users


def test_iter_users_keeps_an_id_filter_and_resumes_after(users):
    wanted = users[::3]
    got = [u["_id"] for b in replica.iter_users({"_id": {"$in": wanted}}, batch_size=2) for u in b]
    assert got == wanted  # the filter holds on every batch, not only the first
    tail = [u["_id"] for b in replica.iter_users(batch_size=4, after=users[30]) for u in b]
    assert tail == users[31:]
    assert list(replica.iter_users({"name": "nobody"})) == []
