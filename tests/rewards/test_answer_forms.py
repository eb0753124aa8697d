"""The answer forms of issue 15, labelled (tests/fixtures/rewards/answer_forms.jsonl): every class
scored right, and not one near miss passed."""
from collections import Counter

from mindspeed_rl.rewards import get_reward

from .answer_forms import CLASSES, build, load


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
