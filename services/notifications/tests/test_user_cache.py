"""The user cache of competing notifications processes stays coherent: a change one
process applies reaches every process's cache before later requests are decided."""

from __future__ import annotations

from typing import Any

import pytest
from herald_common.db import run_db
from herald_common.replica import get_users
from herald_testing import eventually

pytestmark = pytest.mark.integration


def _cached_revision(app: Any, user_id: str) -> int | None:
    doc = app.state.notifications.users.peek(user_id)
    return None if doc is None else int(doc["revision"])


async def test_an_opt_out_reaches_every_process_and_later_promotions_are_suppressed(
    replicas,
) -> None:
    h = replicas
    caches = [app.state.notifications.users for app in h.apps]
    await eventually(lambda: all(c.enabled for c in caches))
    await h.register("zoe", promotions=True, max_promotions_per_day=None)
    await h.request("before", "zoe", "promotion")
    await h.settled("before")
    # every process has zoe's opted-in revision cached
    for cache in caches:
        await run_db(cache.get_many, ["zoe"])
    assert [_cached_revision(app, "zoe") for app in h.apps] == [1, 1, 1]

    await h.update_preferences("zoe", promotions=False)
    await eventually(lambda: run_db(lambda: get_users(["zoe"])["zoe"]["revision"] == 2), timeout=30)
    # the process that applied it announced it; the others dropped their copy
    await eventually(lambda: all(_cached_revision(app, "zoe") != 1 for app in h.apps))

    keys = [f"after-{i}" for i in range(30)]
    for key in keys:
        await h.request(key, "zoe", "promotion")
    await h.settled(*keys)
    page = await h.inbox("zoe", first=50)
    assert [e["node"]["type"] for e in page["edges"]] == ["promotion"]  # only "before"
    records = await h.deliveries("zoe", first=100)
    assert {r["idempotency_key"] for r in records} == set(keys)
    assert {(r["outcome"], r["reason"]) for r in records} == {("suppressed", "opted_out")}
