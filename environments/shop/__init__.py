"""A small store: search a catalogue, fill a cart, apply a coupon, check out.

```python
from . import env
task = env.task("checkout", product_name="Gaming Mouse", apply_coupon=True)
```
"""

from __future__ import annotations

import re
from typing import Any

from workbench.environment import Environment

from . import policies
from .catalogue import Category, ProductName, Shop, dollars

env = Environment(
    "shop",
    state=Shop,
    description="A small store: search products, fill a cart, apply coupons, check out.",
)

# -- tools ----------------------------------------------------------------------------------


@env.tool
def search_products(state: Shop, query: str) -> list[dict[str, Any]]:
    """Search the catalogue by product name or category.

    Matches whole words, ignoring case and plurals; the best matches come first.

    Args:
        query: words to look for, e.g. "mouse" or "books".
    """
    return [p.summary() for p in state.search(query)]


@env.tool
def view_product(state: Shop, product_id: str) -> dict[str, Any]:
    """Show one product: name, category, price and how many are in stock.

    Args:
        product_id: the product's id, e.g. "p03".
    """
    return state.product(product_id).summary()


@env.tool
def add_to_cart(state: Shop, product_id: str, quantity: int = 1) -> dict[str, Any]:
    """Put a product in the cart.

    Args:
        product_id: the product's id, e.g. "p03".
        quantity: how many to add.
    """
    product = state.add(product_id, quantity)
    return {"added": product.name, "quantity": quantity, "cart": state.cart_view()}


@env.tool
def remove_from_cart(state: Shop, product_id: str) -> dict[str, Any]:
    """Take a product out of the cart (all of its quantity).

    Args:
        product_id: the product's id, e.g. "p03".
    """
    product = state.remove(product_id)
    return {"removed": product.name, "cart": state.cart_view()}


@env.tool
def list_coupons(state: Shop) -> list[dict[str, Any]]:
    """List the coupon codes the shop accepts and what each one takes off."""
    return [coupon.to_dict() for coupon in state.coupons.values()]


@env.tool
def apply_coupon(state: Shop, code: str) -> dict[str, Any]:
    """Apply a coupon code to the cart (one coupon per order; a new one replaces the old).

    Args:
        code: the coupon code, e.g. "SAVE10".
    """
    coupon = state.apply(code)
    return {"applied": coupon.code, "cart": state.cart_view()}


@env.tool
def view_cart(state: Shop) -> dict[str, Any]:
    """Show the cart: items, coupon, subtotal, discount and total."""
    return state.cart_view()


@env.tool
def checkout(state: Shop) -> dict[str, Any]:
    """Place the order for everything in the cart and empty the cart."""
    order = state.place_order()
    return {
        "order_id": order.id,
        "items": [
            {"id": pid, "name": state.products[pid].name, "quantity": q} for pid, q in order.items
        ],
        "coupon": order.coupon,
        "total": dollars(order.total_cents),
    }


# -- scenarios ------------------------------------------------------------------------------

_OUT_OF_STOCK = re.compile(r"out of stock|sold out|unavailable|not available|not in stock", re.I)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def last_number(text: str | None) -> float | None:
    """The last number in a text ("$1,299.00" -> 1299.0), or None."""
    found = _NUMBER.findall(text or "")
    return float(found[-1].replace(",", "")) if found else None


def _describe(state: Shop, items: list[tuple[str, int]]) -> str:
    return ", ".join(f"{state.products[pid].name} x{q}" for pid, q in items) or "nothing"


def _single_order_of(state: Shop, product_id: str) -> str | None:
    """Why the orders are not exactly one order of one unit of the product (None: they are)."""
    if not state.orders:
        return "no order was placed"
    if len(state.orders) > 1:
        return f"{len(state.orders)} orders were placed, expected one"
    items = state.orders[0].items
    if items != [(product_id, 1)]:
        expected = _describe(state, [(product_id, 1)])
        return f"the order has {_describe(state, items)}, expected {expected}"
    return None


@env.scenario("checkout")
async def checkout_scenario(state: Shop, product_name: ProductName, apply_coupon: bool = False):
    """Buy one unit of a product, with or without a coupon.

    A sold-out product cannot be bought: then the run succeeds when no order is placed and
    the answer says the product is out of stock.

    Args:
        product_name: the product to buy, by its catalogue name.
        apply_coupon: ask for a coupon that applies to the product.
    """
    product = state.by_name(product_name)
    sold_out = product.stock == 0
    prompt = f"Buy the {product_name}"
    if apply_coupon:
        prompt += " and use a coupon that applies to it"
    answer = yield prompt + "."

    if sold_out:  # the right thing is to buy nothing and say why
        if state.orders:
            reason = f"{product_name} is out of stock, but an order was placed"
            yield {"reward": 0.0, "info": {"reason": reason}}
        elif not _OUT_OF_STOCK.search(answer or ""):
            reason = f"{product_name} is out of stock, and the answer did not say so"
            yield {"reward": 0.0, "info": {"reason": reason}}
        else:
            yield {"reward": 1.0, "info": {"reason": "out of stock: reported, nothing bought"}}
        return
    problem = _single_order_of(state, product.id)
    if problem is None:
        used = state.orders[0].coupon
        if apply_coupon and used is None:
            problem = "no coupon was applied"
        elif not apply_coupon and used is not None:
            problem = f"coupon {used} was applied but none was asked for"
    if problem:
        yield {"reward": 0.0, "info": {"reason": problem}}
    else:
        coupon = state.orders[0].coupon
        reason = f"bought {product_name}" + (f" with {coupon}" if coupon else "")
        yield {"reward": 1.0, "info": {"reason": reason, "order": state.orders[0].id}}


@env.scenario("price_check")
async def price_check(state: Shop, product_name: ProductName):
    """Ask for a product's price; the last number in the answer must match it to the cent.

    Args:
        product_name: the product to price, by its catalogue name.
    """
    answer = yield f"What does the {product_name} cost? Answer with the price only."
    price = dollars(state.by_name(product_name).price_cents)
    said = last_number(answer)
    if said is None:
        yield {"reward": 0.0, "info": {"reason": "no number in the answer", "price": price}}
    elif round(said * 100) == round(price * 100):
        yield {"reward": 1.0, "info": {"reason": "correct price", "price": price}}
    else:
        yield {"reward": 0.0, "info": {"reason": f"said {said}, price is {price}", "price": price}}


@env.scenario("cheapest_in")
async def cheapest_in(state: Shop, category: Category):
    """Buy one unit of the cheapest product of a category that is in stock.

    Args:
        category: the product category.
    """
    target = state.cheapest_in_stock(category)
    answer = yield f"Buy the cheapest {category} product that is in stock."
    del answer  # graded on the order alone
    problem = _single_order_of(state, target.id)
    if problem:
        yield {"reward": 0.0, "info": {"reason": problem, "expected": target.name}}
    else:
        yield {"reward": 1.0, "info": {"reason": f"bought {target.name}"}}


# -- scripted policies (`scripted:expert`, `scripted:weak`) ---------------------------------

env.policy("expert")(policies.expert)
env.policy("weak")(policies.weak)
