"""Bulk writes and batch lookups on the real MongoDB-compatible server."""

import pytest
from herald_common.db import WRITE_CHUNK, bulk_write, connect_db, disconnect_db, lookup_each
from pymongo import UpdateOne

pytestmark = pytest.mark.integration


@pytest.fixture
def coll(make_settings):
    db = connect_db(make_settings())
    yield db["things"]
    disconnect_db()


def test_a_bulk_write_far_larger_than_a_command_completes(coll):
    # FerretDB holds a PostgreSQL connection per statement of one update command: 600
    # statements in one command would exhaust its pool and never finish.
    n = 40 * WRITE_CHUNK
    coll.insert_many([{"_id": i, "v": 0} for i in range(n)])
    ops = [UpdateOne({"_id": i}, {"$set": {"v": 1}}) for i in range(n)]
    assert bulk_write(coll, ops, ordered=False) == n
    assert coll.count_documents({"v": 1}) == n


def test_lookup_each_keeps_the_order_of_the_keys(coll):
    coll.insert_many([{"_id": i, "v": i * i} for i in range(50)])
    keys = list(range(49, -1, -3))
    assert lookup_each(lambda k: coll.find_one({"_id": k})["v"], keys) == [k * k for k in keys]
