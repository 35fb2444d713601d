"""An environment whose @env.initialize takes seconds (a dataset download, a warm-up)."""

import time

from workbench import Environment, answer

env = Environment("hud-slowstart")


@env.initialize
def warm_up():
    time.sleep(60)


@env.tool()
def ping() -> str:
    """Answer."""
    return "pong"


@env.scenario("ping")
async def ping_scenario(n: int = 0):
    yield "Say pong."
    yield 1.0


@env.policy("quick")
def quick(ctx):
    return answer("pong")
