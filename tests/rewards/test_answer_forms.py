"""Labelled answer forms the scorer once got wrong (tests/fixtures/rewards/answer_forms.jsonl): every class
scored right, and not one near miss passed."""
from collections import Counter

from mindspeed_rl.rewards import get_reward

from tests.rewards.answer_forms import CLASSES, build, load


def test_fixture_is_the_generators_output_and_big_enough():
    rows = load()
    assert rows == build(), "answer_forms.jsonl is stale: run python -m tests.rewards.answer_forms"
    per = Counter((r["class"], r["correct"]) for r in rows)
    for name in CLASSES:
        assert per[(name, True)] + per[(name, False)] >= 50, name
        assert per[(name, False)] >= 20, f"{name}: too few hard negatives"


def test_every_class_scored_right_with_no_false_pass():
    acc = get_reward("acc")
    wrong = [(r["class"], r["how"], r["response"], r["gold"]) for r in load()
             if (acc(r["response"], r["gold"], {}) > 0) != r["correct"]]
    assert wrong == []


def test_math_verify_reading_is_the_last_resort_with_guards():
    import time

    from mindspeed_rl.rewards.equivalence import math_verify_match

    acc = get_reward("acc")
    assert math_verify_match(r"so $x = \frac{1}{2}$, done", "0.5")
    assert not math_verify_match(r"so $x = \frac{1}{2^{98}}$", r"\frac{1}{2^{99}}")  # vetoed false positive
    # a marked plain-number answer is not overruled by an earlier anchor math-verify prefers
    assert acc(r"The final answer is $5$. Wait, that is wrong. Recomputing gives \boxed{7}", "5", {}) == 0.0
    assert acc(r"The final answer is $5$. Wait, that is wrong. Recomputing gives \boxed{7}", "7", {}) == 1.0
    t = time.perf_counter()  # math-verify's regexes are slow on long runs without spaces: only the tail
    assert acc("x" * 100_000 + r" so the answer is \boxed{5}", "5", {}) == 1.0
    assert acc("x" * 100_000 + r" so the answer is \boxed{6}", "5", {}) == 0.0
    assert time.perf_counter() - t < 5.0
