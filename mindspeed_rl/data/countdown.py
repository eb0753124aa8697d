"""Countdown problems (Mini-R1 / TinyZero): reach a target with + - * / using each number once.

``solve`` enumerates every value an expression over all the given numbers can take (exact
fractions; division by zero skipped) with one expression and its steps per value.
``countdown_problems`` draws numbers, picks the target among the integer values the solver
reached, so every problem has a solution that uses all numbers exactly once (what the
``countdown`` reward asks for), and drops repeats of the same (numbers, target).
"""
from __future__ import annotations

import random
from fractions import Fraction
from functools import lru_cache
from typing import Iterable

Solution = tuple[str, tuple[str, ...]]  # (expression, steps such as "3 + 5 = 8")
_Entry = tuple[str, tuple[str, ...], int]  # + how many intermediate values are negative or fractional


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


@lru_cache(maxsize=65536)
def _values(nums: tuple[int, ...]) -> dict[Fraction, _Entry]:
    """value -> (expression, steps, awkward steps) over the multiset ``nums`` (sorted), every number
    used once. Of the expressions for a value, one with the fewest negative / fractional
    intermediate results is kept (the way a person would write it)."""
    if len(nums) == 1:
        return {Fraction(nums[0]): (str(nums[0]), (), 0)}
    out: dict[Fraction, _Entry] = {}
    n = len(nums)
    seen_splits = set()
    for mask in range(1, (1 << n) - 1):
        left = tuple(nums[i] for i in range(n) if mask >> i & 1)
        right = tuple(nums[i] for i in range(n) if not mask >> i & 1)
        if (left, right) in seen_splits:
            continue
        seen_splits.add((left, right))
        for a, (ea, sa, ua) in _values(left).items():
            for b, (eb, sb, ub) in _values(right).items():
                candidates = [(a + b, "+"), (a - b, "-"), (a * b, "*")]
                if b != 0:
                    candidates.append((a / b, "/"))
                for value, op in candidates:
                    awkward = ua + ub + (value < 0 or value.denominator != 1)
                    if value not in out or awkward < out[value][2]:
                        step = f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(value)}"
                        out[value] = (f"({ea} {op} {eb})", sa + sb + (step,), awkward)
    return out


def solve(numbers: Iterable[int], target: int) -> Solution | None:
    """An expression that uses every number exactly once and equals ``target``, with its steps."""
    found = _values(tuple(sorted(int(x) for x in numbers))).get(Fraction(target))
    if found is None:
        return None
    expr, steps, _ = found
    return (expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr), steps


def countdown_problems(count: int, seed: int, min_numbers: int = 3, max_numbers: int = 4, min_number: int = 1,
                       max_number: int = 99, min_target: int = 1, max_target: int = 100) -> list[dict]:
    """``count`` distinct solvable problems ``{"id", "nums", "target", "solution", "steps"}``."""
    if not 2 <= min_numbers <= max_numbers <= 6:
        raise ValueError(f"need 2 <= min_numbers ({min_numbers}) <= max_numbers ({max_numbers}) <= 6")
    if not 0 <= min_number <= max_number or min_target > max_target:
        raise ValueError(f"empty range: numbers [{min_number}, {max_number}], targets [{min_target}, {max_target}]")
    rng = random.Random(seed)
    seen: set[tuple] = set()
    rows: list[dict] = []
    attempts = 0
    while len(rows) < count:
        attempts += 1
        if attempts > 200 * count + 1000:
            raise ValueError(f"found only {len(rows)} distinct solvable problems of {count} in {attempts} draws; "
                             "widen the number or target range")
        nums = [rng.randint(min_number, max_number) for _ in range(rng.randint(min_numbers, max_numbers))]
        reachable = sorted(int(v) for v in _values(tuple(sorted(nums)))
                           if v.denominator == 1 and min_target <= v <= max_target)
        if not reachable:
            continue
        target = rng.choice(reachable)
        key = (tuple(sorted(nums)), target)
        if key in seen:
            continue
        seen.add(key)
        expr, steps = solve(nums, target)
        rows.append({"id": len(rows), "nums": nums, "target": target, "solution": expr, "steps": list(steps)})
    return rows
