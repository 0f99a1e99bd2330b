"""Offline evaluation: hold out each user's last purchases, compare with popularity.

Two streaming passes over the users (memory stays bounded by one user plus the model):

1. build the model from every user's *training* part (everything before their last
   purchasing session);
2. for each user with held-out purchases, recommend ``k`` items from the training part
   and compare with the held-out products; the baseline recommends the ``k`` most
   popular items the user has not bought.

Reported: precision@k, recall@k (averaged over evaluated users) and catalog coverage
(distinct recommended products / catalog size) for the model and the baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

from herald_recommendations.algorithm import (
    ALGORITHM_VERSION,
    CooccurrenceBuilder,
    Interaction,
    Params,
    popularity_baseline,
    precision_recall,
    recommend,
    split_last_purchases,
)
from herald_recommendations.catalog import Product

UserStream = Iterable[tuple[str, list[Interaction]]]


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    coverage: float


@dataclass(frozen=True)
class EvaluationReport:
    k: int
    users_evaluated: int
    model: Scores
    baseline: Scores

    @property
    def beats_baseline(self) -> bool:
        return (
            self.model.precision > self.baseline.precision
            and self.model.recall > self.baseline.recall
        )

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "beats_baseline": self.beats_baseline}


def evaluate(
    stream: Callable[[], UserStream],
    catalog: Mapping[str, Product],
    now: float,
    *,
    k: int = 10,
    params: Params | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvaluationReport:
    """Evaluate on the users ``stream()`` yields (called twice: one pass per phase)."""
    p = params or Params()
    builder = CooccurrenceBuilder(sorted(catalog), p, now)
    for _, interactions in stream():
        train, _ = split_last_purchases(interactions, p.session_gap_minutes)
        builder.add_user(train)
        if progress:
            progress(1)
    model = builder.build(f"{ALGORITHM_VERSION}@evaluation")

    users = 0
    sums = {"model": [0.0, 0.0], "baseline": [0.0, 0.0]}
    covered: dict[str, set[str]] = {"model": set(), "baseline": set()}
    for _, interactions in stream():
        train, held_out = split_last_purchases(interactions, p.session_gap_minutes)
        if progress:
            progress(1)
        held_out &= set(catalog)
        if not held_out or not train:
            continue
        users += 1
        purchased = {i.product_id for i in train if i.kind == "purchase"}
        ranked = {
            "model": [r.product_id for r in recommend(train, model, catalog, now, k, p)],
            "baseline": popularity_baseline(model, catalog, purchased, k),
        }
        for name, items in ranked.items():
            precision, recall = precision_recall(items, held_out, k)
            sums[name][0] += precision
            sums[name][1] += recall
            covered[name].update(items)

    def scores(name: str) -> Scores:
        n = max(users, 1)
        return Scores(
            precision=round(sums[name][0] / n, 4),
            recall=round(sums[name][1] / n, 4),
            coverage=round(len(covered[name]) / max(len(catalog), 1), 4),
        )

    return EvaluationReport(
        k=k, users_evaluated=users, model=scores("model"), baseline=scores("baseline")
    )
