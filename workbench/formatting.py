"""Rates and rewards as text, never rounded onto a bound they did not reach.

``f"{0.996:.0%}"`` prints ``100%``: a researcher reads "every run succeeded" where one of 250
failed. Here ``100%`` and ``0%`` (``1.00`` and ``0.00`` for rewards, ``+0%`` for a
difference) mean exactly that, and a value near a bound gets the decimals it needs to stay
off it:

>>> percent(0.996), percent(1.0), percent(0.42), percent(0.0004)
('99.6%', '100%', '42%', '0.04%')
>>> percent(0.004, signed=True), reward(0.996), reward(1.0)
('+0.4%', '0.996', '1.00')
"""

from __future__ import annotations

import math

__all__ = ["percent", "reward", "rate_interval", "reward_interval"]

_MISSING = "–"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fixed(value: float, digits: int, bounds: tuple[float, ...], scale: float, spec: str) -> str:
    """``value`` with ``digits`` decimals, more (up to 4 more) where the rounded text would
    show a bound in ``bounds`` (in the text's units) that the value does not equal."""
    shown = value * scale
    for extra in range(5):
        places = digits + extra
        rounded = round(shown, places)
        if shown in bounds or all(rounded != b for b in bounds):
            break
    return format(value, f"{spec}.{places}{'%' if scale == 100 else 'f'}")


def percent(value: float | None, *, signed: bool = False) -> str:
    """A rate (or, ``signed``, a difference of rates) as a whole percentage, with decimals
    only where rounding would print 0% or 100% (or -100%) for a value that is not."""
    if _missing(value):
        return _MISSING
    return _fixed(float(value) + 0.0, 0, (0.0, 100.0, -100.0), 100, "+" if signed else "")


def reward(value: float | None, digits: int = 2) -> str:
    """A reward in [0, 1] with ``digits`` decimals, more where rounding would print 0 or 1
    for a value that is not."""
    if _missing(value):
        return _MISSING
    return _fixed(float(value), digits, (0.0, 1.0), 1, "")


def rate_interval(rate: float | None, low: float | None, high: float | None) -> str:
    """``42% [30%, 55%]``."""
    return f"{percent(rate)} [{percent(low)}, {percent(high)}]"


def reward_interval(mean: float | None, low: float | None, high: float | None) -> str:
    """``0.42 [0.30, 0.55]``."""
    return f"{reward(mean)} [{reward(low)}, {reward(high)}]"
