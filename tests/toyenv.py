"""A tiny environment for the core tests: a counter, a tool that fails, a slow tool."""

import asyncio
import os
from pathlib import Path

from workbench import Environment, PolicyContext, answer, call


class Counter:
    def __init__(self):
        self.value = 0


env = Environment("toy", state=Counter)


@env.tool
def increment(state: Counter, by: int = 1) -> int:
    """Add to the counter.

    Args:
        by: how much to add.
    """
    state.value += by
    return state.value


@env.tool
def explode(state: Counter) -> str:
    """A tool that always raises."""
    raise RuntimeError("the tool broke")


@env.tool
async def wait(seconds: float) -> str:
    """Sleep, then say so.

    Args:
        seconds: how long to sleep.
    """
    await asyncio.sleep(seconds)
    return "waited"


@env.scenario("count")
async def count(state: Counter, target: int, note: str = ""):
    """Count up to a target.

    Args:
        target: the value to reach.
        note: free text.
    """
    answer_text = yield f"Increment the counter to {target}, then say 'done'."
    solved = state.value == target and "done" in (answer_text or "")
    yield {"reward": 1.0 if solved else 0.0, "info": {"value": state.value}}


@env.scenario("bad-reward")
async def bad_reward(state: Counter):
    yield "anything"
    yield 7


@env.policy("expert")
def expert(ctx: PolicyContext) -> dict:
    if ctx.step < ctx.args.get("target", 0):
        return call("increment")
    return answer("done")


@env.policy("slow")
def slow(ctx: PolicyContext) -> dict:
    """Waits 50 ms per run, then solves it: for jobs that must take a while."""
    if ctx.step == 0:
        return call("wait", seconds=0.05)
    if ctx.step <= ctx.args["target"]:
        return call("increment")
    return answer("done")


@env.policy("clumsy")
def clumsy(ctx: PolicyContext) -> dict:
    """Calls a missing tool, sends broken JSON, trips the failing tool, then solves it."""
    if ctx.step == 0:
        return call("no_such_tool")
    if ctx.step == 1:
        msg = call("increment")
        msg["tool_calls"][0]["function"]["arguments"] = "{not json"
        return msg
    if ctx.step == 2:
        return call("explode")
    if ctx.step - 3 < ctx.args["target"]:
        return call("increment")
    return answer("done")


@env.policy("looper")
def looper(ctx: PolicyContext) -> dict:
    return call("increment", by=0)


@env.policy("crasher")
def crasher(ctx: PolicyContext) -> dict:
    raise ConnectionError("model went away")


def _die_in_ray_worker(marker: Path | None) -> None:
    """Kill this process, as a crash or the OOM killer would, if it is a Ray actor's worker."""
    import ray

    if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        raise RuntimeError("this policy kills its process: run it on the ray backend only")
    if marker is None or not marker.exists():
        if marker is not None:
            marker.touch()
        os._exit(1)


@env.policy("dies-once")
def dies_once(ctx: PolicyContext) -> dict:
    """Kills its Ray worker the first time it plays a run, then solves it on the retry."""
    if ctx.step == 0:
        home = Path(os.environ["WORKBENCH_HOME"])
        _die_in_ray_worker(home / f"died-{ctx.task.slug}-{ctx.group_index}")
    return expert(ctx)


@env.policy("dies-always")
def dies_always(ctx: PolicyContext) -> dict:
    """Kills its Ray worker every time it plays a run."""
    _die_in_ray_worker(None)
    return expert(ctx)
