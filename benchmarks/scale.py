"""Scale: episodes/s on both backends, latency-bound concurrency, 1M-run leaderboards, memory.

Four measurements, each printed as it finishes (medians where repeated):

1. throughput: single-turn arithmetic runs with the instant `scripted:expert`, traces written
   to a fresh SQLite store, on the asyncio backend and on the Ray backend (a local Ray,
   one actor per CPU);
2. latency: 1,000 runs of a model that takes 200 ms per answer (`scripted:expert?latency=0.2`)
   at max_concurrent 200: the ideal is ceil(1000 / 200) waves x 0.2 s = 1.0 s; target 1.3x;
3. leaderboard: a store holding 1,000,000 runs (4 models x 1,000 tasks x 250), the
   leaderboard of the taskset computed from the database; target under 1 s;
4. memory: the peak resident memory of a process that runs a 100,000-run job, against a
   10,000-run job: runs stream through, so the peak must not grow with the job.

    python benchmarks/scale.py [--runs 5000] [--latency-runs 1000] [--leaderboard-runs 1000000]
                               [--load-runs 100000] [--repeats 3] [--no-ray] [--check-targets]

Speed targets are printed as met or missed; a miss makes the exit code 1 only with
--check-targets (the test suite runs this at small sizes and asserts no speed).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LATENCY = 0.2
LATENCY_CONCURRENCY = 200
TARGET_LATENCY_RATIO = 1.3
TARGET_LEADERBOARD_S = 1.0


def _single_turn(runs: int):
    """A taskset and group size giving exactly ``runs`` single-turn runs."""
    from workbench.environments.arithmetic import env as arithmetic

    from workbench import Taskset

    tasks = math.gcd(runs, 500)
    taskset = Taskset(
        f"scale-{tasks}", [arithmetic.task("solve", seed=i, difficulty=1) for i in range(tasks)]
    )
    return taskset, runs // tasks


async def _timed_job(runs: int, model: str = "scripted:expert", **options) -> float:
    import workbench
    from workbench.store import Store

    taskset, group = _single_turn(runs)
    with tempfile.TemporaryDirectory() as home:
        store = Store(f"sqlite:///{home}/bench.db")
        started = time.perf_counter()
        job = await workbench.evaluate(taskset, model, group_size=group, store=store, **options)
        seconds = time.perf_counter() - started
        stored = store.count_traces(job.id)
        store.engine.dispose()
    assert stored == runs == job.done, f"{stored} traces stored for {runs} runs"
    return seconds


def throughput(runs: int, repeats: int, ray: bool) -> dict[str, float]:
    results = {}
    backends = ["asyncio", "ray"] if ray else ["asyncio"]
    for backend in backends:
        if backend == "ray":  # start Ray and its actors outside the timed runs
            asyncio.run(_timed_job(10, backend="ray", max_concurrent=64))
        times = [
            asyncio.run(_timed_job(runs, backend=backend, max_concurrent=64))
            for _ in range(repeats)
        ]
        results[backend] = runs / statistics.median(times)
        print(
            f"throughput  {backend:<8} {runs:>7} runs  median {statistics.median(times):6.2f} s  "
            f"{results[backend]:8.0f} episodes/s",
            flush=True,
        )
    return results


def latency(runs: int, repeats: int, ray: bool) -> dict[str, float]:
    ideal = math.ceil(runs / LATENCY_CONCURRENCY) * LATENCY
    model = f"scripted:expert?latency={LATENCY}"
    ratios = {}
    for backend in ["asyncio", "ray"] if ray else ["asyncio"]:
        times = [
            asyncio.run(
                _timed_job(runs, model, backend=backend, max_concurrent=LATENCY_CONCURRENCY)
            )
            for _ in range(repeats)
        ]
        ratios[backend] = statistics.median(times) / ideal
        verdict = "meets" if ratios[backend] <= TARGET_LATENCY_RATIO else "MISSES"
        print(
            f"latency     {backend:<8} {runs:>7} runs x {LATENCY * 1000:.0f} ms at "
            f"{LATENCY_CONCURRENCY} in flight: median {statistics.median(times):.2f} s, ideal "
            f"{ideal:.2f} s, {ratios[backend]:.2f}x ({verdict} the {TARGET_LATENCY_RATIO}x target)",
            flush=True,
        )
    return ratios


def fill_store(url: str, runs: int, models: int = 4, tasks: int = 1000) -> None:
    """``runs`` stored runs of one job, written straight to the traces table (fast)."""
    import random

    from workbench.store import Store, traces_table

    store = Store(url)
    rng = random.Random(0)
    now = time.time()
    batch = []
    with store.engine.begin() as conn:
        for i in range(runs):
            reward = float(rng.random() < 0.3 + 0.1 * (i % models))
            stop = "error" if rng.random() < 0.01 else "done"
            batch.append(
                {
                    "id": uuid.uuid4().hex,
                    "job_id": "scale-job",
                    "taskset": "scale",
                    "task": f"task-{(i // models) % tasks}",
                    "model": f"model-{i % models}",
                    "group_index": i // (models * tasks),
                    "reward": 0.0 if stop == "error" else reward,
                    "success": stop == "done" and reward >= 1.0,
                    "stop_reason": stop,
                    "steps": 1,
                    "started_at": now,
                    "ended_at": now,
                    "data": "{}",
                }
            )
            if len(batch) == 50_000:
                conn.execute(traces_table.insert(), batch)
                batch = []
        if batch:
            conn.execute(traces_table.insert(), batch)
    store.engine.dispose()


def leaderboard(runs: int, repeats: int) -> float:
    from workbench.leaderboard import stored_leaderboard
    from workbench.store import Store

    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite:///{home}/big.db"
        started = time.perf_counter()
        fill_store(url, runs)
        filled = time.perf_counter() - started
        store = Store(url)
        times = []
        for _ in range(max(repeats, 5)):
            started = time.perf_counter()
            board = stored_leaderboard(store, taskset="scale")
            times.append(time.perf_counter() - started)
        store.engine.dispose()
    assert int(board["runs"].sum()) == runs
    median = statistics.median(times)
    verdict = "meets" if median < TARGET_LEADERBOARD_S else "MISSES"
    print(
        f"leaderboard {runs:>7} stored runs ({filled:.0f} s to write): median {median:.3f} s "
        f"({verdict} the {TARGET_LEADERBOARD_S:.0f} s target); {len(board)} models, "
        f"pass@1..{len([c for c in board.columns if c.startswith('pass@')])}",
        flush=True,
    )
    return median


_JOB_IN_A_CHILD = """
import asyncio, resource, sys, tempfile, time
sys.path.insert(0, {root!r})
from benchmarks.scale import _single_turn
import workbench
from workbench.store import Store

async def main():
    taskset, group = _single_turn({runs})
    with tempfile.TemporaryDirectory() as home:
        store = Store(f"sqlite:///{{home}}/load.db")
        started = time.perf_counter()
        job = await workbench.evaluate(taskset, "scripted:expert", group_size=group,
                                       max_concurrent=64, store=store)
        seconds = time.perf_counter() - started
        assert store.count_traces(job.id) == {runs}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{{peak:.1f}} {{seconds:.2f}}")

asyncio.run(main())
"""


def peak_memory(runs: int) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of a fresh process that runs a ``runs``-run job."""
    out = subprocess.run(
        [sys.executable, "-c", _JOB_IN_A_CHILD.format(root=str(ROOT), runs=runs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    peak, seconds = out.stdout.split()
    return float(peak), float(seconds)


def memory(runs: int) -> tuple[float, float]:
    small = max(runs // 10, 1000)
    small_peak, small_s = peak_memory(small)
    peak, seconds = peak_memory(runs)
    growth = peak - small_peak
    verdict = "bounded" if growth < 0.1 * small_peak else "GROWS"
    print(
        f"memory      {runs:>7} runs: peak {peak:.0f} MiB in {seconds:.0f} s "
        f"({runs / seconds:.0f} episodes/s); {small} runs: peak {small_peak:.0f} MiB; "
        f"{growth:+.0f} MiB for {runs / small:.0f}x the runs ({verdict})",
        flush=True,
    )
    return peak, small_peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="runs per throughput job")
    parser.add_argument("--latency-runs", type=int, default=1000)
    parser.add_argument("--leaderboard-runs", type=int, default=1_000_000)
    parser.add_argument("--load-runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true", help="the asyncio backend only")
    parser.add_argument(
        "--check-targets", action="store_true", help="exit 1 when a target is missed"
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from _machine import describe  # benchmarks/_machine.py

    print(describe())
    ok = True
    if args.load_runs:
        peak, small_peak = memory(args.load_runs)
        ok &= peak - small_peak < 0.1 * small_peak
    if args.leaderboard_runs:
        ok &= leaderboard(args.leaderboard_runs, args.repeats) < TARGET_LEADERBOARD_S
    if args.latency_runs:
        ratios = latency(args.latency_runs, args.repeats, ray=False)
        ok &= ratios["asyncio"] <= TARGET_LATENCY_RATIO
    if args.runs:
        throughput(args.runs, args.repeats, ray=not args.no_ray)
    if args.latency_runs and not args.no_ray:
        latency(args.latency_runs, args.repeats, ray=True)  # reported; the target is local
    if not args.no_ray:
        from workbench import ray_backend

        ray_backend.shutdown()
    print("all targets met" if ok else "a target was missed")
    return 0 if ok or not args.check_targets else 1


if __name__ == "__main__":
    sys.exit(main())
