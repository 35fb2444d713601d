"""A tiny environment for the core tests: a counter, a tool that fails, a slow tool."""

import asyncio

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
