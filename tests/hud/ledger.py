"""An environment-level object (made once at import, as HUD environments do) and files
written in the working directory: both are per run only when runs are isolated."""

import asyncio
from pathlib import Path

from workbench import Environment, answer, call

env = Environment("hud-ledger")


class Account:
    def __init__(self):
        self.balance = 0


account = Account()  # one object for the whole environment


@env.tool()
async def deposit(amount: int) -> int:
    """Add money to the account.

    Args:
        amount: how much.
    """
    await asyncio.sleep(0.002)
    account.balance += amount
    return account.balance


@env.tool()
async def write_note(text: str) -> str:
    """Append a line to notes.txt in the working directory.

    Args:
        text: the line.
    """
    await asyncio.sleep(0.002)
    with open("notes.txt", "a") as f:
        f.write(text + "\n")
    return "noted"


@env.scenario("deposit")
async def deposit_exactly(amount: int):
    account.balance = 0
    yield f"Deposit exactly {amount}."
    yield 1.0 if account.balance == amount else 0.0


@env.scenario("note")
async def one_note(text: str):
    Path("notes.txt").unlink(missing_ok=True)
    yield f"Write the note '{text}' once."
    lines = Path("notes.txt").read_text().splitlines() if Path("notes.txt").exists() else []
    yield 1.0 if lines == [text] else 0.0


@env.policy("expert")
def expert(ctx):
    if ctx.step == 0:
        if ctx.task.scenario == "deposit":
            return call("deposit", amount=ctx.args["amount"])
        return call("write_note", text=ctx.args["text"])
    return answer("done")


@env.policy("weak")
def weak(ctx):  # does it twice
    if ctx.step in (0, 1):
        if ctx.task.scenario == "deposit":
            return call("deposit", amount=ctx.args["amount"])
        return call("write_note", text=ctx.args["text"])
    return answer("done")
