"""A store written the way HUD environments are: state in module globals, no `state=`.

Only the import differs from HUD SDK code (`from hud import Environment`). Tools and the
scenario share the module-global `cart` and `orders`; run concurrently in one process, runs
clear and fill each other's carts.
"""

import asyncio

from workbench import Environment, answer, call

env = Environment("hud-store")

PRICES = {"laptop": 999, "mouse": 25, "keyboard": 70, "monitor": 180}
cart: list[str] = []  # module-global state, as HUD examples keep it
orders: list[dict] = []


@env.tool()
async def add_to_cart(product_name: str) -> str:
    """Put one product in the cart.

    Args:
        product_name: the product to add.
    """
    if product_name not in PRICES:
        return f"no product named {product_name}"
    await asyncio.sleep(0.002)  # a real store would talk to a service here
    cart.append(product_name)
    return f"cart: {cart}"


@env.tool()
async def checkout(coupon: str | None = None) -> str:
    """Pay for what is in the cart.

    Args:
        coupon: a coupon code, if any.
    """
    await asyncio.sleep(0.002)
    orders.append({"items": list(cart), "coupon": coupon})
    cart.clear()
    return "order placed"


def order_confirmed(product_name: str, apply_coupon: bool) -> bool:
    return orders == [{"items": [product_name], "coupon": "SAVE10" if apply_coupon else None}]


@env.scenario("checkout")
async def checkout_flow(product_name: str, apply_coupon: bool = False):
    cart.clear()
    orders.clear()
    yield f"Buy one {product_name}" + (" with the coupon SAVE10" if apply_coupon else "")
    yield 1.0 if order_confirmed(product_name, apply_coupon) else 0.0


@env.policy("expert")
def expert(ctx):
    if ctx.step == 0:
        return call("add_to_cart", product_name=ctx.args["product_name"])
    if ctx.step == 1:
        return call("checkout", coupon="SAVE10" if ctx.args.get("apply_coupon") else None)
    return answer("bought")


@env.policy("weak")
def weak(ctx):  # buys the item twice: never the order asked for
    if ctx.step in (0, 1):
        return call("add_to_cart", product_name=ctx.args["product_name"])
    if ctx.step == 2:
        return call("checkout")
    return answer("bought")
