"""No reward function raises on malformed model output.

A raise inside the scorer pool turns into a logged "reward error" and an error score, so a crash
on a common malformed form (an empty box, say) silently mis-scores a share of every batch. The
empty-marker cases below crashed `acc` in the CPU demo; the seeded mutation sweep looks for the
next such form in every registered reward."""
import random

import pytest

from mindspeed_rl.rewards import available_rewards, get_reward

SEEDS = [
    "<think> 4 plus 3 is 7 </think> <answer> \\boxed{7} </answer>",
    "<think>\nStep 1: add. Step 2: check.\n</think>\n<answer>The answer is \\boxed{12.5}</answer>",
    "The final answer is $\\frac{1}{2}$. #### 18",
    "<think>(25 - 5) * 3 = 60</think> <answer>(25 - 5) * 3</answer>",
]
PIECES = ["\\boxed{", "\\boxed{}", "}", "{", "<think>", "</think>", "<answer>", "</answer>",
          "the answer is", "####", "$", "\\text{", "\\\\", "\\", "=", "7", "-", "(", ")", "\n", ""]
GOLDS = ["7", "12.5", "\\frac{1}{2}", "#### 18", ""]


def _call(name, response, gold):
    extra = {"numbers": [25, 5, 3], "target": 60} if name.startswith("countdown") else {}
    return get_reward(name)(response, gold, extra)


@pytest.mark.parametrize("response", [
    "<think>5+9 is 14</think><answer>\\boxed{}</answer>",
    "<think>88+9 is</think><answer>16\\boxed{}</answer>",
    "<answer></answer>",
    "\\boxed{}",
    "the answer is",
])
def test_empty_answer_markers_score_zero_without_raising(response):
    assert get_reward("acc")(response, "14", {}) == 0.0


def test_seeded_mutations_never_raise():
    rng = random.Random(0)
    names = available_rewards()
    failures = []
    for _ in range(400):
        words = rng.choice(SEEDS).split()
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.4 and words:
                del words[rng.randrange(len(words))]
            elif op < 0.8:
                words.insert(rng.randrange(len(words) + 1), rng.choice(PIECES))
            else:
                words = words[: rng.randrange(len(words) + 1)]
        response = (" " if rng.random() < 0.5 else "").join(words)
        gold = rng.choice(GOLDS)
        for name in names:
            try:
                value = _call(name, response, gold)
            except Exception as exc:  # noqa: BLE001 - the point is to find any raise
                failures.append((name, response, gold, repr(exc)))
                continue
            assert isinstance(value, float), (name, response, value)
    assert not failures, failures[:5]
