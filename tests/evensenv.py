"""A toy environment a tiny random model wins about half the time (tests/tiny.py)."""

from workbench import Environment

env = Environment("evens", description="Start the answer with an even byte.")


@env.scenario("guess")
async def guess(n: int):
    """A coin a random model wins half the time: the answer's first byte must be even."""
    answer = yield f"Task {n}: say anything."
    text = (answer or "").encode()
    yield 1.0 if text and text[0] % 2 == 0 else 0.0
