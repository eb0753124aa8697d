"""The countdown demo's problems: one seeded draw, shuffled, split into train and held-out test.

The generator fills the pool of small problems (2 numbers) first and runs out of them early, so a
split by draw order would give a test set of mostly harder problems; shuffling before the split
gives both sides the same mix, and the generator's deduplication keeps them disjoint.
"""
from __future__ import annotations

import random

from mindspeed_rl.data.countdown import countdown_problems


def split_countdown_problems(train: int, test: int, seed: int, min_numbers: int = 2, max_numbers: int = 3,
                             max_number: int = 6, max_target: int = 30) -> tuple[list[dict], list[dict]]:
    """``train`` and ``test`` distinct solvable problems (numbers in 1..max_number, targets in 1..max_target)."""
    rows = countdown_problems(train + test, seed, min_numbers=min_numbers, max_numbers=max_numbers, min_number=1,
                              max_number=max_number, min_target=1, max_target=max_target)
    random.Random(seed).shuffle(rows)
    for i, row in enumerate(rows):
        row["id"] = i
    return rows[:train], rows[train:]
