"""Local inference throughput: generated tokens/s for local:smollm2-135m on this machine.

The same prompts are sent one request at a time, then from 8 and from 16 concurrent
clients (each sends its next prompt when its last answer arrives), all at temperature 0
through the engine's continuous batcher. Target (issue 3): at 16 concurrent requests, at
least 4x the sequential throughput.

    python benchmarks/local_inference.py [--prompts 32] [--max-tokens 64] [--check-targets]

The speedup target is printed as met or missed; only --check-targets turns a miss into exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time

TARGET_SPEEDUP = 4.0


def prompts(n: int) -> list[list[dict[str, str]]]:
    subjects = [
        "the sea",
        "a robot",
        "autumn",
        "a library",
        "coffee",
        "mountains",
        "a city",
        "rain",
    ]
    out = []
    for i in range(n):
        if i % 2:
            text = f"What is {i + 7} + {3 * i + 2}? Answer with just the number."
        else:
            text = f"Write two sentences about {subjects[(i // 2) % len(subjects)]}."
        out.append([{"role": "user", "content": text}])
    return out


async def run(model, batch: list, concurrency: int, max_tokens: int) -> tuple[float, int, list]:
    from workbench.models import RunInfo, Sampling

    sampling = Sampling(temperature=0, max_tokens=max_tokens)
    pending = list(enumerate(batch))
    results: dict[int, object] = {}

    async def client() -> None:
        while pending:
            i, messages = pending.pop(0)
            results[i] = await model.complete(messages, [], sampling, RunInfo())

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    completions = [results[i] for i in range(len(batch))]
    tokens = sum(c.usage["completion_tokens"] for c in completions)
    return seconds, tokens, [c.message.get("content") for c in completions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--levels", default="1,8,16", help="concurrency levels; 1 first")
    parser.add_argument(
        "--check-targets", action="store_true", help="exit 1 when the target is missed"
    )
    args = parser.parse_args(argv)

    from workbench.models import get_model

    model = get_model("local:smollm2-135m")
    started = time.perf_counter()
    engine = model.engine
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, device {engine.device}, "
        f"Python {sys.version.split()[0]}; model loaded in {time.perf_counter() - started:.1f}s"
    )
    batch = prompts(args.prompts)
    asyncio.run(run(model, batch[:2], 1, 8))  # warm up
    print(
        f"{'concurrent':>10} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'speedup':>8} "
        f"{'same answers':>13}"
    )
    base_rate, base_answers, speedups = None, None, {}
    for level in [int(x) for x in args.levels.split(",")]:
        seconds, tokens, answers = asyncio.run(run(model, batch, level, args.max_tokens))
        rate = tokens / seconds
        base_rate = base_rate or rate
        base_answers = base_answers or answers
        same = sum(a == b for a, b in zip(answers, base_answers, strict=True))
        speedups[level] = rate / base_rate
        print(
            f"{level:>10} {tokens:>7} {seconds:>8.1f} {rate:>9.1f} {rate / base_rate:>7.1f}x "
            f"{same:>6}/{len(batch)}"
        )
    top = max(speedups)
    ok = speedups[top] >= TARGET_SPEEDUP
    print(
        f"speedup at {top} concurrent: {speedups[top]:.1f}x; target {TARGET_SPEEDUP:.0f}x: "
        f"{'meets' if ok else 'MISSES'}"
    )
    return 0 if ok or not args.check_targets else 1


if __name__ == "__main__":
    sys.exit(main())
