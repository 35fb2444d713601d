"""A toy environment a tiny random model wins about half the time (tests/tiny.py)."""

from workbench import Environment

env = Environment("evens", description="Start the answer with an ASCII character.")


@env.scenario("guess")
async def guess(n: int):
    """A coin a random model wins about half the time: the answer's first byte must be ASCII.
    (Measured on tests/tiny.py's model, 720 samples at temperature 1, three tokens: 51%. The
    first byte being even, as this was, won 28%: all 16 runs of a round then lost about one
    time in 200, 0.72 ** 16, and a Loop round had nothing to learn from: failed CI once.)"""
    answer = yield f"Task {n}: say anything."
    text = (answer or "").encode()
    yield 1.0 if text and text[0] < 128 else 0.0
