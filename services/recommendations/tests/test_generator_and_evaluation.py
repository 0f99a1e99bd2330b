"""Mock data structure and the offline evaluation (quality, not timing)."""

from collections import Counter

from herald_recommendations.catalog import generate_catalog
from herald_recommendations.evaluation import evaluate
from herald_recommendations.generator import ActivityGenerator, mock_user_id

NOW = 1_750_000_000.0


def test_catalog_is_deterministic_and_big_enough() -> None:
    first = generate_catalog(42, 2000, 24)
    assert first == generate_catalog(42, 2000, 24)
    assert first != generate_catalog(43, 2000, 24)
    assert len(first) == 2000
    assert len({p.category for p in first}) == 24
    assert first[0].id == "p-00001"
    assert all(p.price > 0 and 0 < p.popularity <= 1 for p in first)
    # Zipf skew: the top 10 % of a category carry far more than 10 % of its demand.
    laptops = sorted((p.popularity for p in first if p.category == "Laptops"), reverse=True)
    assert sum(laptops[: len(laptops) // 10]) > 0.3 * sum(laptops)


def test_generated_users_behave_plausibly() -> None:
    catalog = generate_catalog(7, 400, 20)
    generator = ActivityGenerator(catalog, seed=7, users=50, events=5000, now=NOW)
    assert generator.user(3) == generator.user(3)  # any user can be regenerated alone
    category = {p.id: p.category for p in catalog}
    total = 0
    for user_id, items in generator.stream():
        assert user_id.startswith("mock-u-")
        total += len(items)
        assert all(NOW - 61 * 86_400 <= i.at <= NOW for i in items)
        bought = [i.product_id for i in items if i.kind == "purchase"]
        assert len(bought) == len(set(bought))  # never bought twice
        for product in bought:  # a purchase follows views of the same product
            first_buy = min(i.at for i in items if i.product_id == product and i.kind == "purchase")
            assert any(
                i.product_id == product and i.kind == "view" and i.at < first_buy for i in items
            )
        if len(items) > 40:  # category affinity: the favourite category dominates
            top_share = Counter(category[i.product_id] for i in items).most_common(1)[0][1]
            assert top_share / len(items) > 0.3
    assert total == 5000
    assert mock_user_id(1) == "mock-u-00001"


def test_model_beats_the_popularity_baseline_on_seeded_data() -> None:
    catalog = generate_catalog(42, 600, 20)
    generator = ActivityGenerator(catalog, seed=42, users=150, events=15_000, now=NOW)
    report = evaluate(generator.stream, {p.id: p for p in catalog}, NOW, k=10)
    assert report.users_evaluated > 100
    assert report.beats_baseline, report.as_dict()
    assert report.model.coverage > report.baseline.coverage
