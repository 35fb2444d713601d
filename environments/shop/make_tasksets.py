"""Write the shop's shipped tasksets: ``python -m workbench.environments.shop.make_tasksets``."""

from __future__ import annotations

from pathlib import Path

from workbench.environments.shop import env

from workbench.tasks import Taskset

TASKSETS = Path(__file__).parent / "tasksets"


def shop_basics() -> Taskset:
    tasks = [
        env.task("checkout", product_name="Wireless Mouse"),
        env.task("checkout", product_name="Gaming Mouse", apply_coupon=True),
        env.task("checkout", product_name="Python Cookbook", apply_coupon=True),
        env.task("checkout", product_name="Ceramic Coffee Mug", apply_coupon=True),
        env.task("checkout", product_name="Sleeping Bag"),
        env.task("checkout", product_name="Gaming Laptop"),  # sold out: say so, buy nothing
        env.task("price_check", product_name="Noise Cancelling Headphones"),
        env.task("price_check", product_name="Trail Running Shoes"),
        env.task("price_check", product_name="Desk Lamp"),
        env.task("cheapest_in", category="books"),
        env.task("cheapest_in", category="outdoor"),
    ]
    return Taskset("shop-basics", tasks, description="Buying, pricing and coupons in the shop")


def main() -> None:
    for taskset in (shop_basics(),):
        path = taskset.save_jsonl(TASKSETS / f"{taskset.name}.jsonl")
        print(f"wrote {len(taskset)} tasks to {path}")


if __name__ == "__main__":
    main()
