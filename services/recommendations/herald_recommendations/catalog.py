"""The mock product catalog: generated, deterministic for a seed.

Products are ``p-00001`` … ``p-<n>``, spread over up to 40 categories. Within a category
popularity follows a Zipf law (a few best sellers, a long tail); ``popularity`` is the
product's share of all demand, scaled so the catalog's best seller has 1.0. Every
product has a *complement* in a related category (a laptop → a laptop bag) that the
activity generator buys together with it now and then, which is what "often bought
with" recommendations learn from.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

CATALOG_VERSION = 1
ZIPF_EXPONENT = 1.1


@dataclass(frozen=True)
class CategorySpec:
    """A category: display name (plural), singular noun, typical price, its complement."""

    name: str
    singular: str
    base_price: float
    complement: str
    nouns: tuple[str, ...]


# Each category's complement is another category in this list.
CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "Laptops", "laptop", 1100, "Laptop Bags", ("Ultrabook", "Notebook", "Workstation")
    ),
    CategorySpec(
        "Laptop Bags", "laptop bag", 60, "Laptops", ("Sleeve", "Backpack", "Messenger Bag")
    ),
    CategorySpec(
        "Smartphones", "smartphone", 700, "Phone Cases", ("Phone", "Smartphone", "Phablet")
    ),
    CategorySpec("Phone Cases", "phone case", 25, "Smartphones", ("Case", "Bumper", "Folio")),
    CategorySpec(
        "Headphones", "headphone", 150, "Smartphones", ("Headphones", "Earbuds", "Headset")
    ),
    CategorySpec(
        "Cameras", "camera", 800, "Memory Cards", ("Mirrorless Camera", "DSLR", "Action Cam")
    ),
    CategorySpec(
        "Memory Cards", "memory card", 30, "Cameras", ("SD Card", "microSD Card", "CFexpress Card")
    ),
    CategorySpec("Televisions", "television", 900, "Soundbars", ("OLED TV", "LED TV", "QLED TV")),
    CategorySpec(
        "Soundbars", "soundbar", 300, "Televisions", ("Soundbar", "Sound Base", "Speaker Bar")
    ),
    CategorySpec(
        "Running Shoes", "running shoe", 120, "Sports Socks", ("Runner", "Trail Shoe", "Racer")
    ),
    CategorySpec(
        "Sports Socks",
        "pair of sports socks",
        12,
        "Running Shoes",
        ("Crew Socks", "Ankle Socks", "Compression Socks"),
    ),
    CategorySpec(
        "Coffee Machines",
        "coffee machine",
        350,
        "Coffee Beans",
        ("Espresso Machine", "Drip Brewer", "Bean-to-Cup"),
    ),
    CategorySpec(
        "Coffee Beans",
        "bag of coffee beans",
        15,
        "Coffee Machines",
        ("Espresso Roast", "Single Origin", "House Blend"),
    ),
    CategorySpec("Books", "book", 20, "Reading Lamps", ("Novel", "Cookbook", "Biography")),
    CategorySpec(
        "Reading Lamps", "reading lamp", 45, "Books", ("Desk Lamp", "Clip Light", "Floor Lamp")
    ),
    CategorySpec(
        "Video Games",
        "video game",
        60,
        "Game Controllers",
        ("Adventure", "Racing Game", "Puzzle Game"),
    ),
    CategorySpec(
        "Game Controllers",
        "game controller",
        65,
        "Video Games",
        ("Controller", "Gamepad", "Arcade Stick"),
    ),
    CategorySpec(
        "Yoga Mats", "yoga mat", 40, "Water Bottles", ("Yoga Mat", "Travel Mat", "Cork Mat")
    ),
    CategorySpec("Water Bottles", "water bottle", 25, "Yoga Mats", ("Bottle", "Flask", "Tumbler")),
    CategorySpec(
        "Cookware", "cookware item", 90, "Kitchen Knives", ("Frying Pan", "Dutch Oven", "Saucepan")
    ),
    CategorySpec(
        "Kitchen Knives", "kitchen knife", 70, "Cookware", ("Chef Knife", "Santoku", "Paring Knife")
    ),
    CategorySpec(
        "Tents", "tent", 250, "Sleeping Bags", ("Dome Tent", "Tunnel Tent", "Ultralight Tent")
    ),
    CategorySpec("Sleeping Bags", "sleeping bag", 120, "Tents", ("Mummy Bag", "Down Bag", "Quilt")),
    CategorySpec(
        "Watches", "watch", 300, "Watch Straps", ("Smartwatch", "Chronograph", "Field Watch")
    ),
    CategorySpec(
        "Watch Straps",
        "watch strap",
        35,
        "Watches",
        ("Leather Strap", "Steel Bracelet", "Nylon Strap"),
    ),
    CategorySpec(
        "Board Games", "board game", 45, "Puzzles", ("Strategy Game", "Party Game", "Card Game")
    ),
    CategorySpec("Puzzles", "puzzle", 25, "Board Games", ("Jigsaw", "3D Puzzle", "Brain Teaser")),
    CategorySpec(
        "Monitors", "monitor", 350, "Keyboards", ("4K Monitor", "Gaming Monitor", "Ultrawide")
    ),
    CategorySpec(
        "Keyboards",
        "keyboard",
        110,
        "Monitors",
        ("Mechanical Keyboard", "Wireless Keyboard", "Compact Keyboard"),
    ),
    CategorySpec(
        "Backpacks", "backpack", 90, "Water Bottles", ("Daypack", "Hiking Pack", "Commuter Pack")
    ),
)
MAX_CATEGORIES = len(CATEGORIES)

_BRANDS = (
    "Acme",
    "Northwind",
    "Contoso",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Vandelay",
    "Hooli",
    "Pied",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Aperture",
)
_ADJECTIVES = ("Pro", "Air", "Max", "Lite", "Plus", "Ultra", "Mini", "One", "X", "Neo", "Prime")


@dataclass(frozen=True)
class Product:
    """One catalog item."""

    id: str
    name: str
    category: str
    price: float
    popularity: float
    complement_id: str | None = None


def product_id(index: int) -> str:
    """Catalog ids: ``p-00001`` … (zero-padded to five digits, wider past 99,999)."""
    return f"p-{index:05d}"


def category_specs(n_categories: int) -> list[CategorySpec]:
    """The first ``n`` categories; complements outside the selection fall back to self."""
    if not 1 <= n_categories <= MAX_CATEGORIES:
        raise ValueError(f"categories: must be between 1 and {MAX_CATEGORIES}")
    return list(CATEGORIES[:n_categories])


def singular_of(category: str) -> str:
    """Singular noun of a category name ("Laptops" → "laptop")."""
    for spec in CATEGORIES:
        if spec.name == category:
            return spec.singular
    return f"item in {category}"


def plural_phrase(category: str, count: int) -> str:
    """ "3 laptops", "1 laptop", "2 pairs of sports socks"."""
    singular = singular_of(category)
    if count == 1:
        return f"1 {singular}"
    if singular.startswith("item in "):
        return f"{count} items in {category}"
    if " of " in singular:  # "pair of socks" → "pairs of socks"
        head, tail = singular.split(" of ", 1)
        return f"{count} {head}s of {tail}"
    plural = singular if singular.endswith("s") else f"{singular}s"
    return f"{count} {plural}"


def zipf_weights(n: int, exponent: float = ZIPF_EXPONENT) -> list[float]:
    """Unnormalised Zipf weights for ranks 1..n."""
    return [1.0 / (rank**exponent) for rank in range(1, n + 1)]


def generate_catalog(seed: int, n_products: int, n_categories: int) -> list[Product]:
    """The catalog for ``seed``: same arguments, same products (ids, names, prices...)."""
    if n_products < n_categories:
        raise ValueError("products: need at least one product per category")
    specs = category_specs(n_categories)
    rng = random.Random(f"catalog:{seed}")
    # Categories differ in demand too (electronics sell more than socks...).
    cat_demand = [rng.uniform(0.4, 1.6) for _ in specs]
    # Deal products to categories round-robin, then shuffle ids so that neighbouring
    # ids do not share a category.
    members: list[list[int]] = [[] for _ in specs]
    order = list(range(n_products))
    rng.shuffle(order)
    for position, index in enumerate(order):
        members[position % len(specs)].append(index)
    raw: dict[int, tuple[str, str, float, float]] = {}
    total = sum(cat_demand)
    for c, spec in enumerate(specs):
        weights = zipf_weights(len(members[c]))
        wsum = sum(weights)
        for rank, index in enumerate(members[c]):
            brand = _BRANDS[rng.randrange(len(_BRANDS))]
            noun = spec.nouns[rng.randrange(len(spec.nouns))]
            adjective = _ADJECTIVES[rng.randrange(len(_ADJECTIVES))]
            name = f"{brand} {noun} {adjective} {100 + index % 900}"
            price = round(max(1.0, spec.base_price * rng.lognormvariate(0.0, 0.35)), 2)
            share = cat_demand[c] / total * weights[rank] / wsum
            raw[index] = (name, spec.name, price, share)
    top = max(share for *_, share in raw.values())
    by_category: dict[str, list[int]] = {spec.name: members[c] for c, spec in enumerate(specs)}
    products: list[Product] = []
    for index in range(n_products):
        name, category, price, share = raw[index]
        spec = next(s for s in specs if s.name == category)
        complement_cat = spec.complement if spec.complement in by_category else category
        # The complement is a popular item of the complement category, chosen
        # deterministically per product (a third of the category's head).
        pool = by_category[complement_cat]
        pick = _stable_int(f"{seed}:{index}") % max(1, min(len(pool), 1 + len(pool) // 3))
        complement = pool[pick]
        products.append(
            Product(
                id=product_id(index + 1),
                name=name,
                category=category,
                price=price,
                popularity=round(share / top, 6),
                complement_id=product_id(complement + 1) if complement != index else None,
            )
        )
    return products


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def catalog_key(seed: int, n_products: int, n_categories: int) -> str:
    """Identifies a generated catalog (stored with it, so a different one is replaced)."""
    return f"v{CATALOG_VERSION}:seed={seed}:products={n_products}:categories={n_categories}"
