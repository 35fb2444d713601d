"""The pycode problems: a function to write, visible examples, hidden tests, and two solutions
(the expert's reference, and a plausible buggy one for the weak policy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Problem:
    function: str
    signature: str
    description: str
    examples: list[tuple[list[Any], Any]]  # (arguments, expected): shown in the prompt
    hidden: list[tuple[list[Any], Any]]  # run only when grading
    reference: str
    buggy: str

    def prompt(self) -> str:
        shown = "\n".join(
            f"    {self.function}({', '.join(map(repr, args))}) == {expected!r}"
            for args, expected in self.examples
        )
        return (
            f"Write a Python function `{self.signature}`: {self.description}\n"
            f"Examples:\n{shown}\n"
            "You may test code with the run_examples and run_python tools. Answer with the "
            "complete function in a ```python block; hidden tests grade it."
        )


PROBLEMS: dict[str, Problem] = {
    p.function: p
    for p in [
        Problem(
            "add_digits",
            "add_digits(n: int) -> int",
            "the sum of the decimal digits of a non-negative integer.",
            [([123], 6), ([0], 0)],
            [([9], 9), ([99], 18), ([1000], 1), ([98765], 35), ([5], 5)],
            "def add_digits(n):\n    return sum(int(c) for c in str(n))\n",
            "def add_digits(n):\n    return n % 9 or (9 if n else 0)\n",
        ),
        Problem(
            "is_palindrome",
            "is_palindrome(s: str) -> bool",
            "whether s reads the same backwards, ignoring case and anything not a letter or digit.",
            [(["racecar"], True), (["abc"], False)],
            [
                (["A man, a plan, a canal: Panama"], True),
                (["Never odd or even"], True),
                (["ab"], False),
                ([""], True),
                (["No lemon, no melon"], True),
            ],
            "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n"
            "    return t == t[::-1]\n",
            "def is_palindrome(s):\n    return s == s[::-1]\n",
        ),
        Problem(
            "fizzbuzz",
            "fizzbuzz(n: int) -> list[str]",
            "the strings for 1..n: 'Fizz' for multiples of 3, 'Buzz' of 5, 'FizzBuzz' of both, "
            "else the number.",
            [([3], ["1", "2", "Fizz"]), ([1], ["1"])],
            [
                ([5], ["1", "2", "Fizz", "4", "Buzz"]),
                ([0], []),
                ([2], ["1", "2"]),
                (
                    [15],
                    [
                        "1",
                        "2",
                        "Fizz",
                        "4",
                        "Buzz",
                        "Fizz",
                        "7",
                        "8",
                        "Fizz",
                        "Buzz",
                        "11",
                        "Fizz",
                        "13",
                        "14",
                        "FizzBuzz",
                    ],
                ),
            ],
            "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n"
            "        s = ('Fizz' if i % 3 == 0 else '') + ('Buzz' if i % 5 == 0 else '')\n"
            "        out.append(s or str(i))\n    return out\n",
            "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n"
            "        if i % 3 == 0:\n            out.append('Fizz')\n"
            "        elif i % 5 == 0:\n            out.append('Buzz')\n"
            "        else:\n            out.append(str(i))\n    return out\n",
        ),
        Problem(
            "second_largest",
            "second_largest(xs: list[int]) -> int | None",
            "the second largest distinct value, or None when there are fewer than two.",
            [([[3, 1, 2]], 2), ([[5]], None)],
            [([[1, 2]], 1), ([[4, 4, 3]], 3), ([[7, 7]], None), ([[-1, -5, -3]], -3), ([[]], None)],
            "def second_largest(xs):\n    values = sorted(set(xs))\n"
            "    return values[-2] if len(values) > 1 else None\n",
            "def second_largest(xs):\n    return sorted(xs)[-2] if len(xs) > 1 else None\n",
        ),
        Problem(
            "count_vowels",
            "count_vowels(s: str) -> int",
            "how many vowels (a, e, i, o, u, either case) s has.",
            [(["hello"], 2), (["xyz"], 0)],
            [(["AEIOU"], 5), (["Programming"], 3), ([""], 0), (["Queue"], 4), (["rhythm"], 0)],
            "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n",
            "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n",
        ),
        Problem(
            "flatten",
            "flatten(xs: list) -> list",
            "the values of an arbitrarily nested list, in order, as one flat list.",
            [([[1, [2, 3]]], [1, 2, 3]), ([[]], [])],
            [
                ([[[1], [2], [3]]], [1, 2, 3]),
                ([[1, [2, [3, [4]]]]], [1, 2, 3, 4]),
                ([[[[]], 5]], [5]),
                ([[1, 2]], [1, 2]),
            ],
            "def flatten(xs):\n    out = []\n    for x in xs:\n"
            "        out.extend(flatten(x) if isinstance(x, list) else [x])\n    return out\n",
            "def flatten(xs):\n    out = []\n    for x in xs:\n"
            "        out.extend(x if isinstance(x, list) else [x])\n    return out\n",
        ),
        Problem(
            "run_length",
            "run_length(s: str) -> str",
            "the run-length encoding of s: each run of a character as the character and its count.",
            [(["aaab"], "a3b1"), ([""], "")],
            [(["abc"], "a1b1c1"), (["zzzz"], "z4"), (["aabbaa"], "a2b2a2"), (["x"], "x1")],
            "def run_length(s):\n    out, i = [], 0\n    while i < len(s):\n        j = i\n"
            "        while j < len(s) and s[j] == s[i]:\n            j += 1\n"
            "        out.append(f'{s[i]}{j - i}')\n        i = j\n    return ''.join(out)\n",
            "def run_length(s):\n    out, count = [], 1\n    for a, b in zip(s, s[1:]):\n"
            "        if a == b:\n            count += 1\n        else:\n"
            "            out.append(f'{a}{count}')\n            count = 1\n    return ''.join(out)\n",
        ),
        Problem(
            "primes_up_to",
            "primes_up_to(n: int) -> list[int]",
            "the prime numbers less than or equal to n, in increasing order.",
            [([10], [2, 3, 5, 7]), ([1], [])],
            [
                ([2], [2]),
                ([13], [2, 3, 5, 7, 11, 13]),
                ([20], [2, 3, 5, 7, 11, 13, 17, 19]),
                ([0], []),
            ],
            "def primes_up_to(n):\n"
            "    return [p for p in range(2, n + 1) if all(p % d for d in range(2, int(p**0.5) + 1))]\n",
            "def primes_up_to(n):\n"
            "    return [p for p in range(2, n) if all(p % d for d in range(2, int(p**0.5) + 1))]\n",
        ),
        Problem(
            "word_count",
            "word_count(text: str) -> dict[str, int]",
            "how often each word occurs, words split on whitespace and compared in lower case.",
            [(["a b a"], {"a": 2, "b": 1}), ([""], {})],
            [
                (["The the THE"], {"the": 3}),
                (["one two"], {"one": 1, "two": 1}),
                (["Go go  stop"], {"go": 2, "stop": 1}),
                (["x"], {"x": 1}),
            ],
            "def word_count(text):\n    counts = {}\n    for w in text.lower().split():\n"
            "        counts[w] = counts.get(w, 0) + 1\n    return counts\n",
            "def word_count(text):\n    counts = {}\n    for w in text.split():\n"
            "        counts[w] = counts.get(w, 0) + 1\n    return counts\n",
        ),
        Problem(
            "binary_search",
            "binary_search(xs: list[int], target: int) -> int",
            "the index of target in the sorted list xs, or -1 when it is not there.",
            [([[1, 3, 5], 3], 1), ([[1, 3, 5], 4], -1)],
            [
                ([[1, 3, 5, 7], 7], 3),
                ([[], 1], -1),
                ([[2], 2], 0),
                ([[1, 2, 3, 4, 5], 1], 0),
                ([[1, 2, 3, 4, 5], 6], -1),
            ],
            "def binary_search(xs, target):\n    lo, hi = 0, len(xs) - 1\n    while lo <= hi:\n"
            "        mid = (lo + hi) // 2\n        if xs[mid] == target:\n            return mid\n"
            "        if xs[mid] < target:\n            lo = mid + 1\n        else:\n"
            "            hi = mid - 1\n    return -1\n",
            "def binary_search(xs, target):\n    lo, hi = 0, len(xs) - 2\n    while lo <= hi:\n"
            "        mid = (lo + hi) // 2\n        if xs[mid] == target:\n            return mid\n"
            "        if xs[mid] < target:\n            lo = mid + 1\n        else:\n"
            "            hi = mid - 1\n    return -1\n",
        ),
    ]
}

ProblemName = Literal[tuple(PROBLEMS)]  # type: ignore[valid-type]
