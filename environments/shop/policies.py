"""Scripted policies for the shop: ``scripted:expert`` and ``scripted:weak``.

Both read what has happened so far from the conversation (the tool calls made and their
results) and choose the next step, so they pick up where a run is, whatever came before.
The expert solves every task. The weak one behaves like the expert on 40% of its runs
and, on the others, makes one of the mistakes a careless agent makes: it searches for one
word and takes the first hit, forgets the coupon, stops before checking out, or reports a
price it did not read carefully.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from workbench.models.scripted import PolicyContext, answer, call

# -- reading the conversation ---------------------------------------------------------------


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    result: Any  # parsed from JSON when it is JSON
    error: bool


def history(ctx: PolicyContext) -> list[ToolCall]:
    """The tool calls made so far, in order, each with its result (by tool call id)."""
    calls: list[ToolCall] = []
    pending: list[tuple[str | None, ToolCall]] = []  # calls still waiting for their result
    for message in ctx.messages:
        for tool_call in message.get("tool_calls") or []:
            function = tool_call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except json.JSONDecodeError:
                arguments = {}
            made = ToolCall(function.get("name", ""), arguments, None, False)
            calls.append(made)
            pending.append((tool_call.get("id"), made))
        if message.get("role") == "tool":
            index = next(
                (i for i, (id_, _) in enumerate(pending) if id_ == message.get("tool_call_id")),
                0 if pending else None,
            )
            if index is None:
                continue
            _, made = pending.pop(index)
            text = message.get("content") or ""
            try:
                made.result = json.loads(text)
            except json.JSONDecodeError:
                made.result = text
            made.error = text.startswith("Error")
    return calls


def last_ok(calls: list[ToolCall], name: str) -> ToolCall | None:
    for c in reversed(calls):
        if c.name == name and not c.error:
            return c
    return None


def _find(results: Any, name: str) -> dict[str, Any] | None:
    for item in results if isinstance(results, list) else []:
        if isinstance(item, dict) and str(item.get("name", "")).lower() == name.lower():
            return item
    return None


def _money(value: float) -> str:
    return f"${value:,.2f}"


# -- the expert -----------------------------------------------------------------------------


def _best_coupon(coupons: Any, product: dict[str, Any]) -> str | None:
    """The coupon with the largest discount that fits a cart holding just this product."""
    fitting = [
        c
        for c in (coupons if isinstance(coupons, list) else [])
        if c.get("category") in ("all", product["category"])
        and product["price"] >= c.get("min_subtotal", 0)
    ]
    best = max(fitting, key=lambda c: c.get("percent_off", 0), default=None)
    return best["code"] if best else None


def _buy(ctx: PolicyContext, calls: list[ToolCall], product: dict, coupon: bool) -> dict:
    """Next step of buying one unit of a product found in the catalogue."""
    if not last_ok(calls, "add_to_cart"):
        return call("add_to_cart", product_id=product["id"], quantity=1)
    if coupon and not last_ok(calls, "apply_coupon"):
        listed = last_ok(calls, "list_coupons")
        if listed is None:
            return call("list_coupons")
        code = _best_coupon(listed.result, product)
        if code:
            return call("apply_coupon", code=code)
    order = last_ok(calls, "checkout")
    if order is None:
        return call("checkout")
    result = order.result
    return answer(
        f"Done: order {result['order_id']} for the {product['name']}, "
        f"total {_money(result['total'])}."
    )


def _searched(ctx: PolicyContext, calls: list[ToolCall]) -> dict:
    """The product the task names, from a search: the search call to make first, or an
    answer saying it was not found, when either is the next step (``{"role": ...}``)."""
    name = ctx.args["product_name"]
    searched = last_ok(calls, "search_products")
    if searched is None:
        return call("search_products", query=name)
    hit = _find(searched.result, name)
    if hit is None:
        return answer(f"I could not find the {name} in the catalogue.")
    return hit


def _expert_checkout(ctx: PolicyContext, calls: list[ToolCall]) -> dict:
    name = ctx.args["product_name"]
    hit = _searched(ctx, calls)
    if "role" in hit:  # a message: search first, or not found
        return hit
    if hit["stock"] == 0:
        return answer(f"Sorry, the {name} is out of stock, so I did not buy anything.")
    coupon = bool(ctx.args.get("apply_coupon"))
    if coupon and not last_ok(calls, "view_product"):
        return call("view_product", product_id=hit["id"])  # its category decides the coupon
    product = last_ok(calls, "view_product").result if coupon else hit
    return _buy(ctx, calls, product, coupon)


def _expert_price(ctx: PolicyContext, calls: list[ToolCall]) -> dict:
    hit = _searched(ctx, calls)
    return hit if "role" in hit else answer(_money(hit["price"]))


def _expert_cheapest(ctx: PolicyContext, calls: list[ToolCall]) -> dict:
    category = ctx.args["category"]
    searched = last_ok(calls, "search_products")
    if searched is None:
        return call("search_products", query=category)
    in_stock = [
        p
        for p in searched.result
        if isinstance(p, dict) and p.get("category") == category and p.get("stock", 0) > 0
    ]
    if not in_stock:
        return answer(f"No {category} product is in stock.")
    cheapest = min(in_stock, key=lambda p: p["price"])
    return _buy(ctx, calls, cheapest, coupon=False)


_EXPERT = {
    "checkout": _expert_checkout,
    "price_check": _expert_price,
    "cheapest_in": _expert_cheapest,
}


def expert(ctx: PolicyContext) -> dict:
    """Search, read the results carefully, buy exactly what was asked, then answer."""
    return _EXPERT[ctx.task.scenario](ctx, history(ctx))


# -- the weak policy ------------------------------------------------------------------------

# Per scenario, the mistakes a sloppy run may make.
_MISTAKES = {
    "checkout": ("first_hit", "forget_coupon", "no_checkout"),
    "price_check": ("first_hit", "rounded"),
    "cheapest_in": ("first_listed", "ignore_stock"),
}
SLOPPY_RATE = 0.6


def mistake_for(ctx: PolicyContext) -> str | None:
    """The mistake this run makes, or None: fixed per (task, group index), not per step."""
    rng = random.Random(f"{ctx.task.id}-{ctx.group_index}")
    if rng.random() >= SLOPPY_RATE:
        return None
    mistake = rng.choice(_MISTAKES[ctx.task.scenario])
    if mistake == "forget_coupon" and not ctx.args.get("apply_coupon"):
        mistake = "no_checkout"
    return mistake


def _one_word(name: str) -> str:
    return name.split()[0]


def weak(ctx: PolicyContext) -> dict:
    """The expert, except that about half of the runs go wrong in a plausible way."""
    mistake = mistake_for(ctx)
    if mistake is None:
        return expert(ctx)
    calls = history(ctx)
    scenario = ctx.task.scenario

    if scenario == "checkout":
        name = ctx.args["product_name"]
        if mistake == "first_hit":  # searches for one word, takes the first hit
            searched = last_ok(calls, "search_products")
            if searched is None:
                return call("search_products", query=_one_word(name))
            if not searched.result:
                return answer(f"I could not find the {name}.")
            first = searched.result[0]
            added = [c for c in calls if c.name == "add_to_cart"]
            if added and added[-1].error:
                return answer(f"I could not add the {first['name']} to the cart.")
            return _buy(ctx, calls, first, coupon=False)
        if mistake == "forget_coupon":
            searched = last_ok(calls, "search_products")
            if searched is None:
                return call("search_products", query=name)
            hit = _find(searched.result, name)
            if hit is None or hit["stock"] == 0:
                return expert(ctx)
            return _buy(ctx, calls, hit, coupon=False)
        # no_checkout: fills the cart and believes that was the purchase
        if last_ok(calls, "add_to_cart"):
            return answer(f"I added the {name} to your cart.")
        if last_ok(calls, "search_products") is None:
            return call("search_products", query=name)
        hit = _find(last_ok(calls, "search_products").result, name)
        if hit is None or hit["stock"] == 0:
            return answer(f"I put the {name} in your cart.")
        return call("add_to_cart", product_id=hit["id"])

    if scenario == "price_check":
        name = ctx.args["product_name"]
        if mistake == "first_hit":
            searched = last_ok(calls, "search_products")
            if searched is None:
                return call("search_products", query=_one_word(name))
            first = searched.result[0] if searched.result else {"price": 0}
            return answer(_money(first["price"]))
        # rounded: reads the price, then reports it in whole dollars
        searched = last_ok(calls, "search_products")
        if searched is None:
            return call("search_products", query=name)
        hit = _find(searched.result, name) or {"price": 0}
        return answer(f"About ${round(hit['price'])}")

    # cheapest_in
    category = ctx.args["category"]
    searched = last_ok(calls, "search_products")
    if searched is None:
        return call("search_products", query=category)
    listed = [p for p in searched.result if isinstance(p, dict) and p.get("category") == category]
    if mistake == "first_listed":  # the first one in stock, not the cheapest
        pick = next((p for p in listed if p["stock"] > 0), None)
    else:  # ignore_stock: the cheapest, sold out or not
        pick = min(listed, key=lambda p: p["price"], default=None)
    if pick is None:
        return answer(f"No {category} product is available.")
    added = [c for c in calls if c.name == "add_to_cart"]
    if added and added[-1].error:
        return answer(f"The {pick['name']} could not be added, so I stopped.")
    return _buy(ctx, calls, pick, coupon=False)
