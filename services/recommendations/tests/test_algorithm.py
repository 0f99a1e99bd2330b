"""Pure model functions: co-occurrence, affinity, exclusions, explanations, rules."""

from herald_recommendations.algorithm import (
    CooccurrenceBuilder,
    Interaction,
    Params,
    catalog_model,
    derive_batch_id,
    material_change,
    precision_recall,
    recommend,
    sessionize,
    split_last_purchases,
)
from herald_recommendations.catalog import Product, plural_phrase

NOW = 1_750_000_000.0
DAY = 86_400.0


def _catalog() -> dict[str, Product]:
    products = [
        Product("lap-1", "Acme Ultrabook", "Laptops", 999.0, 1.0),
        Product("lap-2", "Globex Notebook", "Laptops", 799.0, 0.8),
        Product("lap-3", "Initech Workstation", "Laptops", 1499.0, 0.5),
        Product("bag-1", "Acme Sleeve", "Laptop Bags", 40.0, 0.6),
        Product("bag-2", "Stark Backpack", "Laptop Bags", 70.0, 0.3),
        Product("book-1", "A Novel", "Books", 15.0, 0.9),
        Product("book-2", "A Cookbook", "Books", 25.0, 0.7),
        Product("tv-1", "Wayne OLED TV", "Televisions", 1200.0, 0.95),
    ]
    return {p.id: p for p in products}


def _session(user: int, sid: str, at: float, *items: tuple[str, str]) -> list[Interaction]:
    return [Interaction(pid, kind, at + n * 60, sid) for n, (kind, pid) in enumerate(items)]


def _model(catalog: dict[str, Product]):
    builder = CooccurrenceBuilder(sorted(catalog), Params(), NOW)
    # Many shoppers buy the Ultrabook together with the Sleeve.
    for u in range(20):
        builder.add_user(
            _session(
                u,
                f"s{u}",
                NOW - 3 * DAY,
                ("view", "lap-1"),
                ("purchase", "lap-1"),
                ("view", "bag-1"),
                ("add_to_cart", "bag-1"),
                ("purchase", "bag-1"),
            )
        )
    for u in range(20, 30):
        builder.add_user(_session(u, f"s{u}", NOW - DAY, ("view", "book-1"), ("view", "book-2")))
    return builder.build("test@1")


def test_cooccurrence_ranks_the_complement_first() -> None:
    model = _model(_catalog())
    assert model.neighbors["lap-1"][0][0] == "bag-1"
    assert model.neighbors["book-1"][0][0] == "book-2"
    # Purchases weigh more than views: the bought pair is more similar than the viewed pair.
    assert model.neighbors["lap-1"][0][1] > model.neighbors["book-1"][0][1]


def test_never_recommends_what_was_bought_and_explains_co_purchase() -> None:
    catalog = _catalog()
    history = _session(1, "x", NOW - DAY, ("view", "lap-1"), ("purchase", "lap-1"))
    recs = recommend(history, _model(catalog), catalog, NOW, limit=5)
    ids = [r.product_id for r in recs]
    assert "lap-1" not in ids
    assert ids[0] == "bag-1"
    assert recs[0].explanation == "often bought with Acme Ultrabook"
    assert all(r.explanation for r in recs)


def test_category_affinity_explains_recent_views() -> None:
    catalog = _catalog()
    history = _session(
        1,
        "x",
        NOW - 2 * DAY,
        ("view", "lap-1"),
        ("view", "lap-2"),
        ("view", "lap-3"),
        ("purchase", "lap-1"),
    )
    recs = recommend(history, catalog_model(), catalog, NOW, limit=4)
    by_id = {r.product_id: r for r in recs}
    assert "lap-1" not in by_id
    reasons = {r.explanation for r in recs if r.reason == "category"}
    assert "you viewed 3 laptops this week" in reasons


def test_recency_decay_prefers_the_recent_interest() -> None:
    catalog = _catalog()
    old = _session(1, "a", NOW - 60 * DAY, *[("view", "book-1")] * 6)
    new = _session(1, "b", NOW - DAY, ("view", "tv-1"))
    recs = recommend(
        old + new, catalog_model(), catalog, NOW, limit=3, params=Params(half_life_days=3)
    )
    assert recs[0].product_id == "tv-1"


def test_cold_start_gets_popular_items_across_categories() -> None:
    catalog = _catalog()
    recs = recommend([], catalog_model(), catalog, NOW, limit=4)
    assert [r.product_id for r in recs][:2] == ["lap-1", "tv-1"]
    assert all(r.explanation == f"popular in {catalog[r.product_id].category}" for r in recs)
    assert len({catalog[r.product_id].category for r in recs}) >= 3


def test_sessionize_by_id_or_by_pause() -> None:
    items = [
        Interaction("a", "view", 0),
        Interaction("b", "view", 60),
        Interaction("c", "view", 60 * 60 * 2),
        Interaction("d", "view", 10, "s1"),
    ]
    sessions = sessionize(items, gap_minutes=30)
    assert sorted(sorted(i.product_id for i in s) for s in sessions) == [["a", "b"], ["c"], ["d"]]


def test_split_holds_out_the_last_purchasing_session() -> None:
    history = (
        _session(1, "s1", NOW - 10 * DAY, ("view", "lap-1"), ("purchase", "lap-1"))
        + _session(
            1, "s2", NOW - 5 * DAY, ("view", "bag-1"), ("purchase", "bag-1"), ("purchase", "bag-2")
        )
        + _session(1, "s3", NOW - DAY, ("view", "tv-1"))
    )
    train, held_out = split_last_purchases(history, 30)
    assert held_out == {"bag-1", "bag-2"}
    assert {i.product_id for i in train} == {"lap-1"}
    assert precision_recall(["bag-1", "x"], held_out, 2) == (0.5, 0.5)


def test_material_change_rule() -> None:
    assert material_change([], ["a", "b"], 5, 2)  # first time
    assert not material_change(["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "f"], 5, 2)
    assert material_change(["a", "b", "c", "d", "e"], ["a", "b", "c", "x", "y"], 5, 2)
    assert not material_change(["a"], [], 5, 2)


def test_batch_id_is_deterministic_for_the_data() -> None:
    assert derive_batch_id(123.5, "all") == derive_batch_id(123.5, "all")
    assert derive_batch_id(123.5, "all") != derive_batch_id(124.0, "all")
    assert derive_batch_id(None, "changed").startswith("changed-")


def test_plural_phrases() -> None:
    assert plural_phrase("Laptops", 3) == "3 laptops"
    assert plural_phrase("Laptops", 1) == "1 laptop"
    assert plural_phrase("Sports Socks", 2) == "2 pairs of sports socks"
