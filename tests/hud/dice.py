"""A scenario that rolls dice with the random module at module level, as HUD examples do."""

import random

from workbench import Environment, answer

env = Environment("hud-dice")


@env.scenario("roll")
async def roll():
    draw = random.random()
    yield "Say anything."
    yield {"reward": 1.0, "info": {"draw": draw}}


@env.policy("expert")
def expert(ctx):
    return answer("ok")
