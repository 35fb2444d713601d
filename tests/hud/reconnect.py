"""An environment whose client library reconnects after a fork (``os.register_at_fork``):
each run must get its own connection, made in its own process."""

import os

from workbench import Environment, answer

env = Environment("hud-reconnect")
connection = {"pid": os.getpid()}


def _reconnect() -> None:
    connection["pid"] = os.getpid()


os.register_at_fork(after_in_child=_reconnect)


@env.scenario("ping")
async def ping():
    yield "Say anything."
    yield 1.0 if connection["pid"] == os.getpid() else 0.0


@env.policy("expert")
def expert(ctx):
    return answer("ok")
