"""A scenario that cleans up after its reward (a `finally` block, as HUD scenarios release
what they opened), taking a moment over it."""

import asyncio
import os
from pathlib import Path

from workbench import Environment, answer

env = Environment("hud-tidy")


@env.scenario("tidy")
async def tidy(out: str, n: int = 0):
    try:
        yield "Say anything."
        yield 1.0
    finally:
        await asyncio.sleep(0.3)  # e.g. closing a browser session
        Path(out, f"{n}-{os.getpid()}").write_text("cleaned up")


@env.policy("expert")
def expert(ctx):
    return answer("ok")
