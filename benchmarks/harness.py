"""Harness throughput: episodes per second with an instant scripted model, traces persisted.

Two workloads, each in a fresh SQLite store on disk, each repeated and reported as a median:

- single-turn: arithmetic `solve` tasks, the expert answers in one model call (5,000 runs);
- tool-using: shop `checkout` tasks, the expert searches, adds to cart and checks out
  (three tool steps, four model calls) (2,000 runs).

Target (issue 2): at least 1,500 single-turn episodes/s on a 2-core machine. The script
prints whether the target is met; it exits non-zero for a miss only with --check-targets
(speed depends on the machine and its load, so the test suite never asserts it).

    python benchmarks/harness.py [--single 5000] [--tools 2000] [--repeats 3] [--check-targets]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time

TARGET_SINGLE_TURN = 1500.0


def _tasksets(single: int, tools: int):
    from workbench.environments.arithmetic import env as arithmetic
    from workbench.environments.shop import env as shop
    from workbench.environments.shop.catalogue import PRODUCTS

    from workbench import Taskset

    n_single = min(single, 500)
    single_ts = Taskset(
        "bench-single", [arithmetic.task("solve", seed=i, difficulty=1) for i in range(n_single)]
    )
    in_stock = [name for _, name, _, _, stock in PRODUCTS if stock > 0][:10]
    tools_ts = Taskset("bench-tools", [shop.task("checkout", product_name=n) for n in in_stock])
    return (single_ts, single // n_single), (tools_ts, max(1, tools // len(in_stock)))


async def _measure(taskset, group_size: int, max_concurrent: int) -> tuple[float, int, float]:
    import workbench
    from workbench.store import Store

    with tempfile.TemporaryDirectory() as home:
        store = Store(f"sqlite:///{home}/bench.db")
        started = time.perf_counter()
        job = await workbench.evaluate(
            taskset,
            "scripted:expert",
            group_size=group_size,
            max_concurrent=max_concurrent,
            store=store,
        )
        seconds = time.perf_counter() - started
        stored = store.count_traces(job.id)
        mean_reward = float(job.traces_df()["reward"].mean())
        store.engine.dispose()
    assert stored == job.total, f"{stored} traces stored for {job.total} runs"
    return seconds, stored, mean_reward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=5000, help="single-turn runs")
    parser.add_argument("--tools", type=int, default=2000, help="three-step tool-using runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-concurrent", type=int, default=64)
    parser.add_argument(
        "--check-targets", action="store_true", help="exit 1 when a speed target is missed"
    )
    args = parser.parse_args(argv)

    (single_ts, single_group), (tools_ts, tools_group) = _tasksets(args.single, args.tools)
    from _machine import describe  # benchmarks/_machine.py

    print(describe())
    print(f"{'workload':<12} {'runs':>6} {'median s':>9} {'episodes/s':>11} {'runs/s all':>24}")
    results = {}
    for label, taskset, group in (
        ("single-turn", single_ts, single_group),
        ("tool-using", tools_ts, tools_group),
    ):
        rates, runs = [], 0
        for _ in range(args.repeats):
            seconds, runs, reward = asyncio.run(_measure(taskset, group, args.max_concurrent))
            assert reward == 1.0, f"the expert should solve every {label} task (got {reward})"
            rates.append(runs / seconds)
        median = statistics.median(rates)
        results[label] = median
        every = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{label:<12} {runs:>6} {runs / median:>9.2f} {median:>11.0f} {every:>24}")
    ok = results["single-turn"] >= TARGET_SINGLE_TURN
    verdict = "meets" if ok else "MISSES"
    print(f"single-turn target {TARGET_SINGLE_TURN:.0f} episodes/s: {verdict}")
    return 0 if ok or not args.check_targets else 1


if __name__ == "__main__":
    sys.exit(main())
