"""The gateway's product cache (pure logic: the fetch is a stand-in)."""

from __future__ import annotations

from typing import Any

from herald_gateway.catalog import ProductCatalog


class Catalog:
    """A recommendations service's products endpoint: records each call's ids."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.calls: list[list[str]] = []

    async def __call__(self, ids: list[str], call: Any) -> list[dict[str, Any]]:
        self.calls.append(list(ids))
        return [{"id": i, "name": f"Product {i}"} for i in ids if i in self.known]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_known_products_are_asked_once_until_they_expire():
    service, clock = Catalog({"p1", "p2"}), Clock()
    catalog = ProductCatalog(service, ttl_seconds=300, size=100, clock=clock)
    assert set(await catalog.get(["p1", "p2", "p1"], None)) == {"p1", "p2"}  # type: ignore[arg-type]
    assert (await catalog.get(["p2", "p1"], None))["p1"]["name"] == "Product p1"  # type: ignore[arg-type]
    assert service.calls == [["p1", "p2"]]
    clock.now += 301
    await catalog.get(["p1"], None)  # type: ignore[arg-type]
    assert service.calls[-1] == ["p1"]


async def test_unknown_products_are_asked_again():
    service = Catalog({"p1"})
    catalog = ProductCatalog(service, ttl_seconds=300, size=100, clock=Clock())
    assert await catalog.get(["nope"], None) == {}  # type: ignore[arg-type]
    service.known.add("nope")  # added to the catalog meanwhile
    assert set(await catalog.get(["nope", "p1"], None)) == {"nope", "p1"}  # type: ignore[arg-type]
    assert service.calls == [["nope"], ["nope", "p1"]]


async def test_big_lookups_go_in_chunks_and_the_least_recently_used_go_first():
    ids = [f"p{n}" for n in range(250)]
    service = Catalog(set(ids))
    catalog = ProductCatalog(service, ttl_seconds=300, size=200, clock=Clock())
    assert len(await catalog.get(ids, None)) == 250  # type: ignore[arg-type]
    assert [len(c) for c in service.calls] == [100, 100, 50]
    assert len(catalog) == 200  # the first 50 made room
    service.calls.clear()
    await catalog.get(["p0", "p249"], None)  # type: ignore[arg-type]
    assert service.calls == [["p0"]]


async def test_a_zero_time_to_live_asks_every_time():
    service = Catalog({"p1"})
    catalog = ProductCatalog(service, ttl_seconds=0, size=100, clock=Clock())
    await catalog.get(["p1"], None)  # type: ignore[arg-type]
    await catalog.get(["p1"], None)  # type: ignore[arg-type]
    assert len(service.calls) == 2 and len(catalog) == 0
