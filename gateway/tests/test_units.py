"""Pure parts: limits, the data loader, error coercion, mapping."""

from __future__ import annotations

import asyncio

import pytest

from herald_gateway import mapping
from herald_gateway.engine import get_engine, parse
from herald_gateway.errors import GraphQLFailure, error_coercer
from herald_gateway.limits import enforce, measure
from herald_gateway.loaders import DataLoader


async def doc(query: str):
    engine = await get_engine()
    document, errors = parse(engine, query)
    assert not errors, errors
    return document


async def test_depth_counts_fragments_and_complexity_multiplies_pages() -> None:
    d = await doc("{ me { ...F } } fragment F on User { preferences { quietHours { start } } }")
    assert measure(d, None, None).depth == 4
    d = await doc("query($n: Int) { notifications(first: $n) { edges { node { id } } } }")
    small, big = measure(d, None, {"n": 2}), measure(d, None, {"n": 50})
    assert big.complexity > small.complexity * 10
    with pytest.raises(GraphQLFailure) as info:
        enforce(d, None, {"n": 100}, max_depth=8, max_complexity=100)
    assert info.value.code == "BAD_USER_INPUT" and "complexity" in info.value.message


async def test_loader_batches_and_deduplicates() -> None:
    batches: list[list[str]] = []

    async def fetch(keys: list[str]) -> dict[str, str]:
        batches.append(keys)
        return {k: k.upper() for k in keys if k != "x"}

    loader: DataLoader[str, str] = DataLoader(fetch)
    values = await asyncio.gather(*(loader.load(k) for k in ["a", "b", "a", "x"]))
    assert values == ["A", "B", "A", None] and batches == [["a", "b", "x"]]
    assert await loader.load("a") == "A" and len(batches) == 1


async def test_error_coercer_hides_internals() -> None:
    class Wrapped(Exception):
        def __init__(self, original: Exception) -> None:
            self.original_error = original

    out = await error_coercer(Wrapped(RuntimeError("db password is hunter2")), {"message": "x"})
    assert out == {
        "message": "internal error; it was logged",
        "extensions": {"code": "UNAVAILABLE"},
    }
    out = await error_coercer(Wrapped(GraphQLFailure("taken", "CONFLICT")), {"message": "x"})
    assert out["extensions"]["code"] == "BAD_USER_INPUT"
    out = await error_coercer(Exception(), {"message": "Field x doesn't exist"})
    assert out["extensions"]["code"] == "BAD_USER_INPUT"


def test_preferences_patch_keeps_explicit_null() -> None:
    assert mapping.preferences_patch({"quietHours": None, "promotions": True}) == {
        "quiet_hours": None,
        "promotions": True,
    }
    note = mapping.notification(
        {"id": "n1", "user_id": "u", "type": "order_update", "content": "x", "sent_at": "t"}
    )
    assert note["type"] == "ORDER_UPDATE" and note["read"] is False and note["readAt"] is None
    assert (note["seen"], note["archived"], note["snoozedUntil"]) == (False, False, None)


def test_digest_preference_maps_both_ways() -> None:
    patch = mapping.preferences_patch(
        {"digest": {"frequency": "DAILY", "at": "08:00", "types": ["PROMOTION"]}}
    )
    assert patch == {"digest": {"frequency": "daily", "at": "08:00", "types": ["promotion"]}}
    # Omitted types keep the service's default; null switches digests off.
    assert mapping.preferences_patch({"digest": {"frequency": "HOURLY"}}) == {
        "digest": {"frequency": "hourly"}
    }
    assert mapping.preferences_patch({"digest": None}) == {"digest": None}
    prefs = mapping.preferences({"digest": {"frequency": "hourly", "types": ["recommendation"]}})
    assert prefs["digest"] == {"frequency": "HOURLY", "at": None, "types": ["RECOMMENDATION"]}
    # A replica or profile from before digests existed reads as off.
    assert mapping.preferences({})["digest"] == {
        "frequency": "OFF",
        "at": None,
        "types": ["PROMOTION", "RECOMMENDATION"],
    }
    change = mapping.inbox_change(
        {"event": "inbox_changed", "kind": "read", "ids": ["n1"], "unread_count": 2,
         "unseen_count": 1}
    )  # fmt: skip
    assert change == {"kind": "READ", "ids": ["n1"], "unreadCount": 2, "unseenCount": 1}
