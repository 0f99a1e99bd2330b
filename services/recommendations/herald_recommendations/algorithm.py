"""The recommendation model: pure functions over interactions, no I/O.

Three signals are blended (weights in :class:`Params`):

* **item-item co-occurrence** — items that appear together in a session (and items the
  same user bought) are similar. Each item in a basket counts with the weight of the
  strongest thing the user did with it (purchase 5 > add_to_cart 3 > view 1); a pair
  counts with the smaller of its two weights; similarity is the pair weight divided by
  ``sqrt(occ_i * occ_j) + shrink`` (cosine with a shrinkage against rare pairs). Every
  item keeps its ``k`` nearest neighbours.
* **category affinity** with exponential recency decay: each interaction adds
  ``weight * 0.5 ** (age / half_life)`` to its category; the user's top categories
  propose their most popular items.
* **own interest**: items the user viewed or carted recently and has not bought.

Popularity (decayed, weighted interaction counts, or the catalog prior before any data)
is a small fourth term and the whole answer for a cold-start user. Already purchased
items are never recommended. Every recommendation names the signal that contributed
most to it as a human-readable explanation.

Long module: the whole scoring model (signals, blending, explanations, the material
change rule) is pure and tested as one unit; splitting it would scatter one formula.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from herald_recommendations.catalog import Product, plural_phrase

ALGORITHM_VERSION = "cooc-affinity-1"
KIND_WEIGHTS: dict[str, float] = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
DAY = 86_400.0
WEEK = 7 * DAY


@dataclass(frozen=True, slots=True)
class Interaction:
    """One activity of a user, as the model sees it (``at`` = epoch seconds)."""

    product_id: str
    kind: str
    at: float
    session_id: str | None = None


class Params(BaseModel):
    """Tunable knobs of the model, declared once: the service settings inherit them (so
    ``HERALD_RECOMMENDATIONS_HALF_LIFE_DAYS`` and the rest set them) and are passed as
    the model's parameters."""

    half_life_days: float = Field(default=7.0, gt=0)
    popularity_half_life_days: float = Field(default=14.0, gt=0)
    session_gap_minutes: float = Field(default=30.0, gt=0)
    neighbors_per_item: int = Field(default=40, ge=1, le=500)
    shrink: float = Field(default=2.0, ge=0)
    max_basket: int = Field(default=40, ge=2)
    user_purchase_pair_factor: float = Field(default=0.5, ge=0)
    weight_cooccurrence: float = Field(default=0.3, ge=0)
    weight_category: float = Field(default=0.4, ge=0)
    weight_interest: float = Field(default=0.25, ge=0)
    weight_popularity: float = Field(default=0.05, ge=0)
    anchors: int = Field(default=30, ge=1)
    top_categories: int = Field(default=3, ge=1)
    category_candidates: int = Field(default=60, ge=1)


@dataclass(frozen=True)
class Recommendation:
    """One recommended product with its blended score and why."""

    product_id: str
    score: float
    explanation: str
    reason: str  # cooccurrence | category | interest | popularity


@dataclass
class Model:
    """What a batch run learns from everyone's activity."""

    version: str
    neighbors: Mapping[str, Sequence[tuple[str, float]]]
    popularity: Mapping[str, float]  # 0..1, best seller = 1
    _by_category: dict[str, list[str]] | None = field(default=None, repr=False)
    _global: list[str] | None = field(default=None, repr=False)

    def ranked(self, catalog: Mapping[str, Product]) -> tuple[list[str], dict[str, list[str]]]:
        """Products by popularity: globally and per category (computed once)."""
        if self._global is None or self._by_category is None:
            pop = self.popularity
            known = [pid for pid in catalog if pid in pop or catalog[pid].popularity > 0]
            known.sort(key=lambda p: (-self.pop_of(p, catalog), p))
            by_cat: dict[str, list[str]] = defaultdict(list)
            for pid in known:
                by_cat[catalog[pid].category].append(pid)
            self._global, self._by_category = known, dict(by_cat)
        return self._global, self._by_category

    def pop_of(self, product_id: str, catalog: Mapping[str, Product]) -> float:
        if self.popularity:
            return self.popularity.get(product_id, 0.0)
        product = catalog.get(product_id)
        return product.popularity if product else 0.0


def catalog_model(version: str = f"{ALGORITHM_VERSION}@catalog") -> Model:
    """The model before any batch ran: no neighbours, catalog popularity prior."""
    return Model(version=version, neighbors={}, popularity={})


def decay(age_seconds: float, half_life_days: float) -> float:
    """Exponential recency weight: 1 now, 0.5 after one half-life (future counts as now)."""
    return 0.5 ** (max(0.0, age_seconds) / (half_life_days * DAY))


def sessionize(interactions: Sequence[Interaction], gap_minutes: float) -> list[list[Interaction]]:
    """Split a user's interactions into sessions: by ``session_id`` when present, else
    by a pause longer than ``gap_minutes``."""
    ordered = sorted(interactions, key=lambda i: i.at)
    sessions: list[list[Interaction]] = []
    by_id: dict[str, list[Interaction]] = {}
    last_at: float | None = None
    current: list[Interaction] | None = None
    for item in ordered:
        if item.session_id:
            bucket = by_id.get(item.session_id)
            if bucket is None:
                bucket = by_id[item.session_id] = []
                sessions.append(bucket)
            bucket.append(item)
            continue
        if current is None or last_at is None or item.at - last_at > gap_minutes * 60:
            current = []
            sessions.append(current)
        current.append(item)
        last_at = item.at
    return sessions


def basket(session: Iterable[Interaction]) -> dict[str, float]:
    """Items of a session with the weight of the strongest kind seen for each."""
    weights: dict[str, float] = {}
    for item in session:
        w = KIND_WEIGHTS.get(item.kind, 0.0)
        if w > weights.get(item.product_id, 0.0):
            weights[item.product_id] = w
    return weights


class CooccurrenceBuilder:
    """Accumulates co-occurrence and popularity user by user, in bounded memory.

    Pair weights are buffered as ``(i * n + j, w)`` and folded into a sorted array of
    distinct pairs whenever the buffer is full, so memory follows the number of distinct
    pairs, not the number of events.
    """

    def __init__(
        self, product_ids: Sequence[str], params: Params, now: float, flush_every: int = 2_000_000
    ) -> None:
        self.ids = list(product_ids)
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.n = len(self.ids)
        self.params = params
        self.now = now
        self.flush_every = flush_every
        self.occurrence = np.zeros(self.n, dtype=np.float64)
        self.popularity = np.zeros(self.n, dtype=np.float64)
        self._keys = np.zeros(0, dtype=np.int64)
        self._vals = np.zeros(0, dtype=np.float64)
        self._buf_keys: list[np.ndarray] = []
        self._buf_vals: list[np.ndarray] = []
        self._buffered = 0
        self.users = 0
        self.interactions = 0

    def add_user(self, interactions: Sequence[Interaction]) -> None:
        """Add one user's interactions (any order)."""
        p = self.params
        self.users += 1
        self.interactions += len(interactions)
        purchases: dict[str, float] = {}
        for item in interactions:
            idx = self.index.get(item.product_id)
            if idx is None:
                continue
            w = KIND_WEIGHTS.get(item.kind, 0.0)
            self.popularity[idx] += w * decay(self.now - item.at, p.popularity_half_life_days)
            if item.kind == "purchase":
                purchases[item.product_id] = KIND_WEIGHTS["purchase"] * p.user_purchase_pair_factor
        for session in sessionize(interactions, p.session_gap_minutes):
            self._add_basket(basket(session))
        if len(purchases) > 1:
            self._add_basket(purchases, count_occurrence=False)

    def _add_basket(self, weights: Mapping[str, float], count_occurrence: bool = True) -> None:
        items = [(self.index[pid], w) for pid, w in weights.items() if pid in self.index]
        if not items:
            return
        if len(items) > self.params.max_basket:
            items.sort(key=lambda t: -t[1])
            items = items[: self.params.max_basket]
        items.sort()
        idx = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
        w = np.fromiter((v for _, v in items), dtype=np.float64, count=len(items))
        if count_occurrence:
            self.occurrence[idx] += w
        if len(items) < 2:
            return
        a, b = np.triu_indices(len(items), 1)
        self._buf_keys.append(idx[a] * self.n + idx[b])
        self._buf_vals.append(np.minimum(w[a], w[b]))
        self._buffered += len(a)
        if self._buffered >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        if not self._buf_keys:
            return
        keys = np.concatenate([self._keys, *self._buf_keys])
        vals = np.concatenate([self._vals, *self._buf_vals])
        self._buf_keys, self._buf_vals, self._buffered = [], [], 0
        self._keys, inverse = np.unique(keys, return_inverse=True)
        self._vals = np.bincount(inverse, weights=vals, minlength=len(self._keys)).astype(
            np.float64
        )

    @property
    def distinct_pairs(self) -> int:
        self._flush()
        return len(self._keys)

    def build(self, version: str) -> Model:
        """The model: top-k neighbours per item and normalised popularity."""
        self._flush()
        k = self.params.neighbors_per_item
        neighbors: dict[str, list[tuple[str, float]]] = {}
        if len(self._keys):
            a = self._keys // self.n
            b = self._keys % self.n
            rows = np.concatenate([a, b])
            cols = np.concatenate([b, a])
            counts = np.concatenate([self._vals, self._vals])
            denom = np.sqrt(self.occurrence[rows] * self.occurrence[cols]) + self.params.shrink
            sims = counts / denom
            order = np.lexsort((-sims, rows))
            rows, cols, sims = rows[order], cols[order], sims[order]
            starts = np.searchsorted(rows, rows, side="left")
            keep = (np.arange(len(rows)) - starts) < k
            rows, cols, sims = rows[keep], cols[keep], sims[keep]
            bounds = np.flatnonzero(np.diff(rows)) + 1
            for r_chunk, c_chunk, s_chunk in zip(
                np.split(rows, bounds),
                np.split(cols, bounds),
                np.split(sims, bounds),
                strict=True,
            ):
                neighbors[self.ids[int(r_chunk[0])]] = [
                    (self.ids[int(c)], round(float(s), 6))
                    for c, s in zip(c_chunk, s_chunk, strict=True)
                ]
        top = float(self.popularity.max()) if self.n else 0.0
        popularity = (
            {self.ids[i]: round(float(v) / top, 6) for i, v in enumerate(self.popularity) if v > 0}
            if top > 0
            else {}
        )
        return Model(version=version, neighbors=neighbors, popularity=popularity)


def _normalise(scores: Mapping[str, float]) -> dict[str, float]:
    top = max(scores.values(), default=0.0)
    if top <= 0:
        return {}
    return {k: v / top for k, v in scores.items()}


def recommend(
    interactions: Sequence[Interaction],
    model: Model,
    catalog: Mapping[str, Product],
    now: float,
    limit: int = 10,
    params: Params | None = None,
) -> list[Recommendation]:
    """Top ``limit`` products for a user with these interactions, best first."""
    p = params or Params()
    global_rank, by_category = model.ranked(catalog)
    purchased = {i.product_id for i in interactions if i.kind == "purchase"}
    interest: dict[str, float] = defaultdict(float)
    affinity: dict[str, float] = defaultdict(float)
    views = Counter[str]()
    carted: set[str] = set()
    week_views: dict[str, set[str]] = defaultdict(set)
    for item in interactions:
        product = catalog.get(item.product_id)
        if product is None:
            continue
        w = KIND_WEIGHTS.get(item.kind, 0.0) * decay(now - item.at, p.half_life_days)
        interest[item.product_id] += w
        affinity[product.category] += w
        if item.kind == "view":
            views[item.product_id] += 1
            if now - item.at <= WEEK:
                week_views[product.category].add(item.product_id)
        elif item.kind == "add_to_cart":
            carted.add(item.product_id)

    if not interest:
        return _popular(catalog, model, global_rank, purchased, limit)

    # Co-occurrence with the user's strongest items (bought ones included: they are
    # the best anchors for "often bought with").
    cooc: dict[str, float] = defaultdict(float)
    anchor_of: dict[str, tuple[str, float]] = {}
    anchors = sorted(interest.items(), key=lambda kv: (-kv[1], kv[0]))[: p.anchors]
    for anchor, strength in anchors:
        for other, sim in model.neighbors.get(anchor, ()):
            contribution = strength * sim
            cooc[other] += contribution
            if contribution > anchor_of.get(other, ("", 0.0))[1]:
                anchor_of[other] = (anchor, contribution)

    total_aff = sum(affinity.values())
    category_scores: dict[str, float] = {}
    category_of: dict[str, str] = {}
    for category, aff in sorted(affinity.items(), key=lambda kv: (-kv[1], kv[0]))[
        : p.top_categories
    ]:
        ranked = by_category.get(category, [])[: p.category_candidates]
        if not ranked:
            continue
        head = model.pop_of(ranked[0], catalog) or 1.0
        for pid in ranked:
            score = (aff / total_aff) * model.pop_of(pid, catalog) / head
            if score > category_scores.get(pid, 0.0):
                category_scores[pid] = score
                category_of[pid] = category

    own = {pid: v for pid, v in interest.items() if pid not in purchased}
    popular = {pid: model.pop_of(pid, catalog) for pid in global_rank[:100]}

    components = {
        "cooccurrence": (p.weight_cooccurrence, _normalise(cooc)),
        "category": (p.weight_category, _normalise(category_scores)),
        "interest": (p.weight_interest, _normalise(own)),
        "popularity": (p.weight_popularity, _normalise(popular)),
    }
    candidates = set().union(*(scores for _, scores in components.values())) - purchased
    scored: list[tuple[float, str, str]] = []
    for pid in candidates:
        if pid not in catalog:
            continue
        total = 0.0
        best_reason, best_part = "popularity", 0.0
        for reason, (weight, scores) in components.items():
            part = weight * scores.get(pid, 0.0)
            total += part
            if part > best_part:
                best_reason, best_part = reason, part
        scored.append((total, pid, best_reason))
    scored.sort(key=lambda t: (-t[0], t[1]))
    result: list[Recommendation] = []
    for total, pid, reason in scored[:limit]:
        product = catalog[pid]
        if reason == "cooccurrence":
            anchor = anchor_of[pid][0]
            name = catalog[anchor].name
            if anchor in purchased or anchor in carted:
                text = f"often bought with {name}"
            else:
                text = f"shoppers who viewed {name} also viewed this"
        elif reason == "category":
            category = category_of[pid]
            recent = len(week_views.get(category, ()))
            text = (
                f"you viewed {plural_phrase(category, recent)} this week"
                if recent
                else f"because you like {category.lower()}"
            )
        elif reason == "interest":
            if pid in carted:
                text = f"you added {product.name} to your cart"
            elif views[pid] > 1:
                text = f"you viewed {product.name} {views[pid]} times"
            else:
                text = f"you viewed {product.name}"
        else:
            text = f"popular in {product.category}"
        result.append(Recommendation(pid, round(total, 6), text, reason))
    if len(result) < limit:
        seen = {r.product_id for r in result} | purchased
        result.extend(_popular(catalog, model, global_rank, seen, limit - len(result)))
    return result


def _popular(
    catalog: Mapping[str, Product],
    model: Model,
    global_rank: Sequence[str],
    exclude: set[str],
    limit: int,
    per_category: int = 2,
) -> list[Recommendation]:
    """Popularity fallback, at most ``per_category`` per category for variety."""
    result: list[Recommendation] = []
    used = Counter[str]()
    for strict in (True, False):
        for pid in global_rank:
            if len(result) >= limit:
                return result
            if pid in exclude or any(r.product_id == pid for r in result):
                continue
            category = catalog[pid].category
            if strict and used[category] >= per_category:
                continue
            used[category] += 1
            score = round(model.pop_of(pid, catalog) * 0.5, 6)
            result.append(Recommendation(pid, score, f"popular in {category}", "popularity"))
    return result


def popularity_baseline(
    model: Model, catalog: Mapping[str, Product], purchased: set[str], limit: int
) -> list[str]:
    """The baseline the model is measured against: most popular items not yet bought."""
    global_rank, _ = model.ranked(catalog)
    return [pid for pid in global_rank if pid not in purchased][:limit]


# --- evaluation helpers ---------------------------------------------------------------


def split_last_purchases(
    interactions: Sequence[Interaction], gap_minutes: float
) -> tuple[list[Interaction], set[str]]:
    """Hold out the purchases of the user's last purchasing session.

    Returns the interactions strictly before that session (the training part) and the
    held-out product ids; ``([], set())`` when the user never bought anything.
    """
    sessions = sessionize(interactions, gap_minutes)
    for position in range(len(sessions) - 1, -1, -1):
        bought = {i.product_id for i in sessions[position] if i.kind == "purchase"}
        if bought:
            start = min(i.at for i in sessions[position])
            train = [i for s in sessions[:position] for i in s if i.at < start]
            return train, bought
    return [], set()


def precision_recall(recommended: Sequence[str], relevant: set[str], k: int) -> tuple[float, float]:
    """precision@k and recall@k of one ranked list."""
    if not relevant:
        return 0.0, 0.0
    hits = len(set(recommended[:k]) & relevant)
    return hits / k, hits / len(relevant)


# --- notification rules -----------------------------------------------------------------


def material_change(
    previous: Sequence[str], current: Sequence[str], top_n: int, min_new: int
) -> bool:
    """True when at least ``min_new`` of the current top ``top_n`` were not in the
    previously notified top ``top_n`` (a first recommendation always counts)."""
    now_top = list(current)[:top_n]
    if not now_top:
        return False
    before = set(list(previous)[:top_n])
    if not before:
        return True
    new = sum(1 for pid in now_top if pid not in before)
    return new >= min(min_new, len(now_top))


def derive_batch_id(watermark: float | None, mode: str) -> str:
    """A batch id that is the same for every run over the same data: re-running a batch
    therefore reuses its notification idempotency keys."""
    mark = "empty" if watermark is None else f"{watermark:.6f}"
    digest = hashlib.sha256(f"{mode}:{mark}".encode()).hexdigest()[:12]
    return f"{mode}-{digest}"


def top_ids(recommendations: Iterable[Recommendation], n: int) -> list[str]:
    return [r.product_id for r in list(recommendations)[:n]]
