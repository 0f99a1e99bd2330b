"""Single-document atomicity on the MongoDB-compatible server: concurrent
compare-and-set updates of one document lose nothing (the outbox and the services' revision
checks rely on it)."""

import threading

import pymongo
import pytest

pytestmark = pytest.mark.integration


def test_concurrent_updates_of_one_document_all_land(make_settings) -> None:
    settings = make_settings()
    client: pymongo.MongoClient = pymongo.MongoClient(settings.mongodb_uri, maxPoolSize=20)
    try:
        coll = client[settings.mongodb_db]["docs"]
        coll.insert_one({"_id": "d", "revision": 1})

        def writer(i: int) -> None:
            # A compare-and-set on the revision, retried until it lands.
            while True:
                current = coll.find_one({"_id": "d"})["revision"]
                result = coll.update_one(
                    {"_id": "d", "revision": current},
                    {"$set": {f"f{i}": i}, "$inc": {"revision": 1}},
                )
                if result.modified_count:
                    return

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        doc = coll.find_one({"_id": "d"})
        assert doc["revision"] == 9
        assert all(doc[f"f{i}"] == i for i in range(8))
    finally:
        client.close()
