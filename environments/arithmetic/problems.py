"""Arithmetic problems made from a seed, and a safe evaluator for + - * / and parentheses."""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

MAX_EXPRESSION_LENGTH = 200

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def _evaluate(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value))  # str: 0.1 is one tenth, not the nearest binary float
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ValueError("division by zero")
        return _BINARY[type(node.op)](left, right)
    raise ValueError(
        f"unsupported expression {ast.unparse(node)!r}: use numbers, + - * / and parentheses"
    )


def evaluate(expression: str) -> int | float:
    """The exact value of an arithmetic expression: an int when it is whole, else a float.

    Raises ValueError for anything but numbers, + - * / and parentheses.
    """
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    value = _evaluate(tree)
    return int(value) if value.denominator == 1 else float(value)


@dataclass(frozen=True)
class Problem:
    expression: str  # e.g. "17 + 25"
    answer: int

    @property
    def prompt(self) -> str:
        return f"What is {self.expression}? Answer with just the number."


def _difficulty_0(rng: random.Random) -> str:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        return f"{a} + {b}"
    a, b = max(a, b), min(a, b)
    return f"{a} - {b}"


def _difficulty_1(rng: random.Random) -> str:
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    if rng.random() < 0.5:
        return f"{a} + {b}"
    a, b = max(a, b), min(a, b)  # no negative answers at the easiest level
    return f"{a} - {b}"


def _difficulty_2(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
    return rng.choice([f"{a} * {b} + {c}", f"{a} * {b} - {c}", f"{c} + {a} * {b}"])


def _difficulty_3(rng: random.Random) -> str:
    a, b, c, d = (rng.randint(2, 12) for _ in range(4))
    return rng.choice(
        [
            f"({a} + {b}) * {c} - {d}",
            f"({a} - {b}) * ({c} + {d})",
            f"{a} * ({b} + {c}) - {d}",
            f"({a} + {b} + {c}) * {d}",
        ]
    )


_MAKERS = {0: _difficulty_0, 1: _difficulty_1, 2: _difficulty_2, 3: _difficulty_3}


@lru_cache(maxsize=4096)
def make_problem(seed: int, difficulty: int = 1) -> Problem:
    """The problem for a seed and difficulty: the same pair always gives the same problem.

    0: add or subtract two one-digit numbers; 1: add or subtract two numbers below 100;
    2: two operations on small numbers
    (``a * b + c``); 3: three operations with parentheses.
    """
    if difficulty not in _MAKERS:
        raise ValueError(f"difficulty must be 0, 1, 2 or 3 (got {difficulty})")
    expression = _MAKERS[difficulty](random.Random(seed))
    value = evaluate(expression)
    assert isinstance(value, int)
    return Problem(expression, value)


def left_to_right(expression: str) -> int:
    """The value when the operators are applied in order, ignoring precedence and brackets."""
    tokens = re.findall(r"\d+|[-+*/]", expression)
    value = int(tokens[0])
    for op, number in zip(tokens[1::2], tokens[2::2], strict=True):
        value = int(evaluate(f"{value} {op} {number}"))
    return value


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def last_number(text: str | None) -> float | None:
    """The last number in a text ("= -8." -> -8.0, "1,234" -> 1234.0), or None."""
    found = _NUMBER.findall(text or "")
    return float(found[-1].replace(",", "")) if found else None
