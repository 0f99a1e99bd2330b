"""Streaming the user replica: every live user once, in batches, by position; id filters;
resuming after a position."""

import pytest
from herald_common import replica
from herald_common.db import connect_db, disconnect_db

pytestmark = pytest.mark.integration


@pytest.fixture
def users(make_settings):
    connect_db(make_settings())
    replica.ensure_indexes()
    docs = [
        {
            "_id": f"u{i:03d}",
            "bucket": replica.bucket_of(f"u{i:03d}"),
            "revision": 1,
            "deleted": i % 10 == 9,
            "name": f"U{i}",
        }
        for i in range(45)
    ]
    replica._coll().insert_many(list(reversed(docs)))
    live = [d for d in docs if not d["deleted"]]
    yield [d["_id"] for d in sorted(live, key=replica.position)]
    disconnect_db()


def test_iter_users_streams_every_live_user_once_in_position_order(users):
    batches = list(replica.iter_users(batch_size=8))
    assert [len(b) for b in batches] == [8, 8, 8, 8, 8, 1]  # 41 live users
    assert [u["_id"] for b in batches for u in b] == users


def test_iter_users_keeps_an_id_filter_and_resumes_after_a_position(users):
    wanted = users[::3]
    got = [u["_id"] for b in replica.iter_users(batch_size=2, user_ids=wanted) for u in b]
    assert got == wanted  # the filter holds on every batch, not only the first
    [after] = [u for b in replica.iter_users(batch_size=100) for u in b if u["_id"] == users[30]]
    tail = [
        u["_id"] for b in replica.iter_users(batch_size=4, after=replica.position(after)) for u in b
    ]
    assert tail == users[31:]
    assert list(replica.iter_users({"name": "nobody"})) == []


def test_documents_of_the_older_layout_get_their_bucket(make_settings):
    connect_db(make_settings())
    try:
        replica._coll().insert_one({"_id": "old", "revision": 1, "deleted": False})
        replica.ensure_indexes()
        assert [u["_id"] for b in replica.iter_users() for u in b] == ["old"]
    finally:
        disconnect_db()
