"""The countdown demo's train / held-out split: disjoint, same mix of problem sizes, seeded, and
every problem's reference response earns the real countdown reward."""
import json

from mindspeed_rl.demo.assets import countdown_reference_response
from mindspeed_rl.demo.countdown_data import split_countdown_problems
from mindspeed_rl.rewards.functions import countdown_reward


def _key(r):
    return tuple(sorted(r["nums"])), r["target"]


def test_split_is_disjoint_seeded_and_mixed():
    train, test = split_countdown_problems(300, 60, seed=7)
    assert len(train) == 300 and len(test) == 60
    assert not {_key(r) for r in train} & {_key(r) for r in test}
    assert [r["id"] for r in train + test] == list(range(360))
    again = split_countdown_problems(300, 60, seed=7)
    assert (train, test) == again and split_countdown_problems(300, 60, seed=8)[0] != train
    # the generator exhausts the 2-number problems first; shuffling puts some on both sides
    assert any(len(r["nums"]) == 2 for r in test) and any(len(r["nums"]) == 2 for r in train)
    assert all(1 <= n <= 6 for r in train + test for n in r["nums"]) and all(1 <= r["target"] <= 30 for r in train + test)


def test_reference_responses_are_causal_and_solve():
    train, _ = split_countdown_problems(50, 10, seed=3)
    for r in train:
        gold = json.dumps({"target": r["target"], "numbers": r["nums"]})
        for style in range(3):
            resp = countdown_reference_response(r, style)
            assert countdown_reward(resp, gold) == 1.0
            # steps in solver order: the last step's result is the target
            think = resp.split("</think>")[0]
            assert think.rstrip().endswith(f"= {r['target']}"), resp
