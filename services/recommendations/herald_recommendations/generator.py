"""Mock activity: plausible shoppers, generated user by user (bounded memory).

Structure of the data, deterministic for a seed:

* users ``mock-u-00001`` … (:func:`mock_user_id`); each has 1-3 favourite categories
  and an activity level (log-normal), and the ``--events`` total is shared out by it;
* activity comes in sessions spread over the last 60 days; 85 % of sessions are in a
  favourite category; products are picked by their Zipf popularity within a category;
* a browsing session views a few products (some twice); about a third of the sessions
  are buying sessions: the shopper views the target (often one considered in an
  earlier session) two to four times, adds it to the cart (90 %) and buys it, and 40 %
  of the time also buys the product's complement ("often bought with");
* a product is never bought twice by the same user.

Each user's stream comes from its own random generator seeded by ``(seed, user)``, so
any user can be regenerated alone and the stream can be produced in chunks.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from herald_recommendations.algorithm import Interaction
from herald_recommendations.catalog import Product

WINDOW_DAYS = 60
FAVOURITE_SHARE = 0.85
BUYING_SESSION_SHARE = 0.33
CART_BEFORE_PURCHASE = 0.9
COMPLEMENT_SHARE = 0.4
CONSIDERED_TARGET_SHARE = 0.4


def mock_user_id(number: int) -> str:
    """Mock users are ``mock-u-00001``, ``mock-u-00002``… (1-based, five digits or more)."""
    return f"mock-u-{number:05d}"


@dataclass
class _Category:
    name: str
    products: list[str]
    cumulative: list[float]

    def pick(self, rng: random.Random) -> str:
        x = rng.random() * self.cumulative[-1]
        return self.products[min(bisect.bisect_left(self.cumulative, x), len(self.products) - 1)]


class ActivityGenerator:
    """Generates each mock user's interactions for a catalog and a seed."""

    def __init__(
        self,
        catalog: Sequence[Product],
        *,
        seed: int,
        users: int,
        events: int,
        now: float,
        window_days: float = WINDOW_DAYS,
    ) -> None:
        if users < 1:
            raise ValueError("users: must be at least 1")
        if events < users:
            raise ValueError("events: need at least one event per user")
        self.seed = seed
        self.users = users
        self.events = events
        self.now = now
        self.window = window_days * 86_400.0
        self.complement = {p.id: p.complement_id for p in catalog}
        grouped: dict[str, list[Product]] = {}
        for product in catalog:
            grouped.setdefault(product.category, []).append(product)
        self.categories: list[_Category] = []
        for name in sorted(grouped):
            items = sorted(grouped[name], key=lambda p: (-p.popularity, p.id))
            self.categories.append(
                _Category(
                    name,
                    [p.id for p in items],
                    list(accumulate(max(p.popularity, 1e-9) for p in items)),
                )
            )
        demand = [c.cumulative[-1] for c in self.categories]
        self._category_cumulative = list(accumulate(demand))
        # Share the event total out by activity level: a few heavy users, many light ones.
        rng = np.random.default_rng(seed)
        levels = rng.lognormal(0.0, 0.8, size=users)
        extra = rng.multinomial(events - users, levels / levels.sum())
        self.counts = (extra + 1).astype(np.int64)

    def _random_category(self, rng: random.Random) -> _Category:
        x = rng.random() * self._category_cumulative[-1]
        i = bisect.bisect_left(self._category_cumulative, x)
        return self.categories[min(i, len(self.categories) - 1)]

    def user(self, number: int) -> list[Interaction]:
        """The interactions of user ``number`` (1-based), in time order."""
        rng = random.Random(f"{self.seed}:{number}")
        budget = int(self.counts[number - 1])
        favourites: list[_Category] = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            category = self._random_category(rng)
            if category not in favourites:
                favourites.append(category)
        fav_weights = [0.6, 0.3, 0.1][: len(favourites)]
        purchased: set[str] = set()
        considered: list[str] = []
        sessions: list[list[tuple[str, str]]] = []
        used = 0
        while used < budget:
            if rng.random() < FAVOURITE_SHARE:
                category = rng.choices(favourites, weights=fav_weights)[0]
            else:
                category = self._random_category(rng)
            session: list[tuple[str, str]] = []
            for _ in range(rng.randint(1, 4)):
                product = category.pick(rng)
                session.append(("view", product))
                if rng.random() < 0.25:
                    session.append(("view", product))  # came back to it
                if product not in purchased and rng.random() < 0.3:
                    considered.append(product)
            if rng.random() < BUYING_SESSION_SHARE:
                target = None
                if considered and rng.random() < CONSIDERED_TARGET_SHARE:
                    target = considered.pop(rng.randrange(len(considered)))
                for _ in range(5):
                    if target is not None and target not in purchased:
                        break
                    target = category.pick(rng)
                if target is not None and target not in purchased:
                    session.extend(("view", target) for _ in range(rng.randint(2, 4)))
                    if rng.random() < CART_BEFORE_PURCHASE:
                        session.append(("add_to_cart", target))
                    session.append(("purchase", target))
                    purchased.add(target)
                    complement = self.complement.get(target)
                    if (
                        complement
                        and complement not in purchased
                        and rng.random() < COMPLEMENT_SHARE
                    ):
                        session += [
                            ("view", complement),
                            ("add_to_cart", complement),
                            ("purchase", complement),
                        ]
                        purchased.add(complement)
            session = session[: budget - used]
            used += len(session)
            sessions.append(session)
        # Sessions spread over the window, events inside a session seconds to minutes apart.
        starts = sorted(self.now - rng.random() * self.window for _ in sessions)
        result: list[Interaction] = []
        for s_index, (start, session) in enumerate(zip(starts, sessions, strict=True)):
            at = start
            sid = f"s-{self.seed}-{number}-{s_index}"
            for kind, product in session:
                result.append(Interaction(product, kind, min(at, self.now), sid))
                at += rng.uniform(15, 240)
        return result

    def stream(self, start: int = 1) -> Iterator[tuple[str, list[Interaction]]]:
        """``(user id, interactions)`` for every user from ``start`` on."""
        for number in range(start, self.users + 1):
            yield mock_user_id(number), self.user(number)
