"""The shop's data and its per-run state: products, coupons, a cart and the orders placed.

Money is kept in integer cents and shown to the model as dollars with two decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# id, name, category, price in cents, stock (a few are sold out)
PRODUCTS: tuple[tuple[str, str, str, int, int], ...] = (
    ("p01", "Ultrabook Laptop", "electronics", 99900, 4),
    ("p02", "Gaming Laptop", "electronics", 129900, 0),
    ("p03", "Wireless Mouse", "electronics", 2499, 30),
    ("p04", "Gaming Mouse", "electronics", 4999, 12),
    ("p05", "Noise Cancelling Headphones", "electronics", 19900, 7),
    ("p06", "USB-C Charger", "electronics", 1950, 0),
    ("p07", "Ceramic Coffee Mug", "home", 1200, 40),
    ("p08", "Travel Coffee Mug", "home", 1875, 0),
    ("p09", "Desk Lamp", "home", 3490, 9),
    ("p10", "Cotton Bath Towel", "home", 1525, 25),
    ("p11", "French Press Coffee Maker", "home", 2999, 6),
    ("p12", "Python Cookbook", "books", 4250, 8),
    ("p13", "Learning Python", "books", 5400, 3),
    ("p14", "Mountain Trail Guide", "books", 1199, 0),
    ("p15", "Science Fiction Anthology", "books", 1640, 11),
    ("p16", "Camping Tent", "outdoor", 14900, 5),
    ("p17", "Sleeping Bag", "outdoor", 7995, 10),
    ("p18", "Hiking Backpack", "outdoor", 8900, 0),
    ("p19", "Trail Running Shoes", "outdoor", 11900, 6),
    ("p20", "Water Bottle", "outdoor", 999, 50),
)

# The names and categories scenarios accept: a typo is caught when the task is made.
ProductName = Literal[
    "Ultrabook Laptop",
    "Gaming Laptop",
    "Wireless Mouse",
    "Gaming Mouse",
    "Noise Cancelling Headphones",
    "USB-C Charger",
    "Ceramic Coffee Mug",
    "Travel Coffee Mug",
    "Desk Lamp",
    "Cotton Bath Towel",
    "French Press Coffee Maker",
    "Python Cookbook",
    "Learning Python",
    "Mountain Trail Guide",
    "Science Fiction Anthology",
    "Camping Tent",
    "Sleeping Bag",
    "Hiking Backpack",
    "Trail Running Shoes",
    "Water Bottle",
]
Category = Literal["electronics", "home", "books", "outdoor"]


@dataclass(frozen=True)
class Coupon:
    """A percentage off the eligible items (one category, or all), above a minimum subtotal."""

    code: str
    percent_off: int
    category: str | None = None  # None: every product
    min_subtotal_cents: int = 0

    @property
    def description(self) -> str:
        scope = f"{self.category} products" if self.category else "everything"
        text = f"{self.percent_off}% off {scope}"
        if self.min_subtotal_cents:
            text += f" on orders of {dollars(self.min_subtotal_cents):.2f} dollars or more"
        return text

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "description": self.description,
            "percent_off": self.percent_off,
            "category": self.category or "all",
            "min_subtotal": dollars(self.min_subtotal_cents),
        }


COUPONS: tuple[Coupon, ...] = (
    Coupon("SAVE10", 10),
    Coupon("TECH20", 20, category="electronics"),
    Coupon("BOOKS15", 15, category="books"),
    Coupon("BIG25", 25, min_subtotal_cents=50000),
)


def dollars(cents: int) -> float:
    return round(cents / 100, 2)


def _stem(word: str) -> str:
    """Lower-case and drop a plural 's', so "books" finds "book" and "mugs" finds "mug"."""
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower())}


@dataclass
class Product:
    id: str
    name: str
    category: str
    price_cents: int
    stock: int

    def summary(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "price": dollars(self.price_cents),
            "stock": self.stock,
        }


@dataclass
class Order:
    id: str
    items: list[tuple[str, int]]  # (product id, quantity)
    coupon: str | None
    subtotal_cents: int
    discount_cents: int

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents - self.discount_cents


@dataclass
class Shop:
    """One run's shop: its own copy of the catalogue and stock, an empty cart, no orders."""

    products: dict[str, Product] = field(
        default_factory=lambda: {p[0]: Product(*p) for p in PRODUCTS}
    )
    coupons: dict[str, Coupon] = field(default_factory=lambda: {c.code: c for c in COUPONS})
    cart: dict[str, int] = field(default_factory=dict)  # product id -> quantity
    coupon: str | None = None
    orders: list[Order] = field(default_factory=list)

    # -- looking things up ------------------------------------------------------------------

    def product(self, product_id: str) -> Product:
        found = self.products.get(product_id.strip().lower())
        if found is None:
            raise ValueError(
                f"unknown product id '{product_id}': use an id like 'p03' from search_products"
            )
        return found

    def by_name(self, name: str) -> Product:
        for product in self.products.values():
            if product.name.lower() == name.lower():
                return product
        raise KeyError(name)

    def search(self, query: str) -> list[Product]:
        """Products sharing a word with the query, best match first, then catalogue order."""
        wanted = words(query)
        scored = []
        for product in self.products.values():
            score = len(wanted & (words(product.name) | words(product.category)))
            if score:
                scored.append((-score, product.id, product))
        return [p for _, _, p in sorted(scored, key=lambda s: s[:2])]

    # -- cart ---------------------------------------------------------------------------------

    def add(self, product_id: str, quantity: int) -> Product:
        product = self.product(product_id)
        if quantity < 1:
            raise ValueError(f"quantity must be at least 1 (got {quantity})")
        in_cart = self.cart.get(product.id, 0)
        if product.stock == 0:
            raise ValueError(f"'{product.name}' ({product.id}) is out of stock")
        if in_cart + quantity > product.stock:
            raise ValueError(
                f"only {product.stock} of '{product.name}' in stock ({in_cart} already in the cart)"
            )
        self.cart[product.id] = in_cart + quantity
        return product

    def remove(self, product_id: str) -> Product:
        product = self.product(product_id)
        if product.id not in self.cart:
            raise ValueError(f"'{product.name}' ({product.id}) is not in the cart")
        del self.cart[product.id]
        if self.coupon and self.coupon_problem(self.coupons[self.coupon]):
            self.coupon = None  # it no longer fits what is left
        return product

    def subtotal_cents(self) -> int:
        return sum(self.products[pid].price_cents * q for pid, q in self.cart.items())

    def coupon_problem(self, coupon: Coupon) -> str | None:
        """Why the coupon does not fit the cart, or None when it does."""
        if not self.cart:
            return "the cart is empty"
        if coupon.category and not any(
            self.products[pid].category == coupon.category for pid in self.cart
        ):
            return f"it only applies to {coupon.category} products and the cart has none"
        if self.subtotal_cents() < coupon.min_subtotal_cents:
            return (
                f"it needs a subtotal of at least {dollars(coupon.min_subtotal_cents):.2f} "
                f"(the cart's is {dollars(self.subtotal_cents()):.2f})"
            )
        return None

    def discount_cents(self) -> int:
        if self.coupon is None:
            return 0
        coupon = self.coupons[self.coupon]
        eligible = sum(
            self.products[pid].price_cents * q
            for pid, q in self.cart.items()
            if coupon.category in (None, self.products[pid].category)
        )
        return round(eligible * coupon.percent_off / 100)

    def apply(self, code: str) -> Coupon:
        coupon = self.coupons.get(code.strip().upper())
        if coupon is None:
            raise ValueError(f"unknown coupon '{code}': see list_coupons")
        problem = self.coupon_problem(coupon)
        if problem:
            raise ValueError(f"coupon {coupon.code} does not apply: {problem}")
        self.coupon = coupon.code
        return coupon

    def cart_view(self) -> dict:
        items = [
            {
                "id": pid,
                "name": self.products[pid].name,
                "quantity": q,
                "unit_price": dollars(self.products[pid].price_cents),
                "line_total": dollars(self.products[pid].price_cents * q),
            }
            for pid, q in self.cart.items()
        ]
        subtotal, discount = self.subtotal_cents(), self.discount_cents()
        return {
            "items": items,
            "coupon": self.coupon,
            "subtotal": dollars(subtotal),
            "discount": dollars(discount),
            "total": dollars(subtotal - discount),
        }

    # -- orders -------------------------------------------------------------------------------

    def place_order(self) -> Order:
        if not self.cart:
            raise ValueError("the cart is empty: add a product with add_to_cart first")
        order = Order(
            id=f"o{1001 + len(self.orders)}",
            items=list(self.cart.items()),
            coupon=self.coupon,
            subtotal_cents=self.subtotal_cents(),
            discount_cents=self.discount_cents(),
        )
        for pid, quantity in self.cart.items():
            self.products[pid].stock -= quantity
        self.orders.append(order)
        self.cart.clear()
        self.coupon = None
        return order

    def cheapest_in_stock(self, category: str) -> Product | None:
        candidates = [p for p in self.products.values() if p.category == category and p.stock]
        return min(candidates, key=lambda p: (p.price_cents, p.id), default=None)
