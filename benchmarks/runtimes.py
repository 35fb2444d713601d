"""Environment runtimes: time to the first tool result, and runs per second at concurrency 8.

For each runtime (in-process, subprocess, Docker), on the shop's `checkout` task with
`scripted:expert` (three tool calls, four model calls):

- first tool result: from opening the episode (a process or container starts) to the result
  of the first tool call, median of 5 runs one after another;
- runs/s: N runs of the task, 8 in flight, traces stored.

    python benchmarks/runtimes.py [--runs 48]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time


async def first_tool_result(runtime: str) -> float:
    from environments.shop import env
    from workbench.runtimes import open_episode

    episode = open_episode(env.task("checkout", product_name="Wireless Mouse"), runtime)
    started = time.perf_counter()
    try:
        await episode.start()
        await episode.call_tool("search_products", {"query": "Wireless Mouse"})
        return time.perf_counter() - started
    finally:
        await episode.close()


async def runs_per_second(runtime: str, runs: int) -> tuple[float, float]:
    import workbench
    from environments.shop import env

    taskset = workbench.Taskset("bench", [env.task("checkout", product_name="Wireless Mouse")])
    with tempfile.TemporaryDirectory() as home:
        store = workbench.Store(f"sqlite:///{home}/bench.db")
        started = time.perf_counter()
        job = await workbench.evaluate(
            taskset,
            "scripted:expert",
            group_size=runs,
            max_concurrent=8,
            runtime=runtime,
            store=store,
        )
        seconds = time.perf_counter() - started
        reward = float(job.traces_df()["reward"].mean())
        store.engine.dispose()
    return runs / seconds, reward


async def main(runs: int) -> None:
    from workbench.runtimes.docker import engine_problem

    runtimes = ["inprocess", "subprocess"] + ([] if engine_problem() else ["docker"])
    if "docker" in runtimes:
        from environments.shop import env
        from workbench.runtimes.images import ensure_image

        ensure_image(env)  # not timed: built once
    print(f"{platform.machine()} {platform.python_version()}, {runs} runs per runtime")
    print("| runtime | first tool result, median of 5 | runs/s at concurrency 8 | mean reward |")
    print("| --- | --- | --- | --- |")
    for runtime in runtimes:
        firsts = [await first_tool_result(runtime) for _ in range(5)]
        rate, reward = await runs_per_second(runtime, runs)
        print(
            f"| {runtime} | {statistics.median(firsts) * 1000:.0f} ms | {rate:.1f} | {reward:.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=48)
    asyncio.run(main(parser.parse_args().runs))
