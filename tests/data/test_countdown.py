"""Countdown problems are solvable (checked by the reward's own evaluator and against a
brute force), seeded and distinct; the handler and template give Mini-R1's prompts; the
preprocessor stores the label the countdown reward reads."""
import itertools
import json
import operator
from fractions import Fraction

import pytest

from mindspeed_rl.data import load_template
from mindspeed_rl.data.countdown import _values, countdown_problems, solve
from mindspeed_rl.data.handlers import RowRejected, get_handler
from mindspeed_rl.rewards.functions import countdown_accuracy, countdown_reward, evaluate_countdown_equation

MINI_R1_SYSTEM = ("You are a helpful assistant. You first thinks about the reasoning process in the mind and then "
                  "provides the user with the answer.")
MINI_R1_USER = ("Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
                "operations (+, -, *, /) one or multiple times but each number can only be used once. Show your work "
                "in <think> </think> tags. And return the final equation in <answer> </answer> tags, for example "
                "<answer> (1 + 2) / 3 </answer>. Think step by step inside <think> tags.")


def _brute_force_values(nums):
    """Every value of every expression tree over all of ``nums`` (independent of the solver)."""
    ops = [operator.add, operator.sub, operator.mul, lambda a, b: a / b if b != 0 else None]

    def trees(vals):
        if len(vals) == 1:
            yield vals[0]
            return
        for i in range(1, len(vals)):
            for left in trees(vals[:i]):
                for right in trees(vals[i:]):
                    if left is None or right is None:
                        continue
                    for op in ops:
                        yield op(left, right)

    out = set()
    for perm in itertools.permutations([Fraction(x) for x in nums]):
        out.update(v for v in trees(list(perm)) if v is not None)
    return out


@pytest.mark.parametrize("nums", [(3, 5, 7), (1, 1, 2), (2, 2, 2), (1, 4, 6, 9), (3, 3, 8, 8), (10, 2, 5, 7)])
def test_solver_reaches_exactly_the_brute_force_values(nums):
    assert set(_values(tuple(sorted(nums)))) == _brute_force_values(nums)


def test_solve_gives_a_checked_expression_or_none():
    expr, steps = solve([3, 3, 8, 8], 24)  # the classic: 8 / (3 - 8 / 3)
    value, used = evaluate_countdown_equation(expr)
    assert value == 24 and sorted(used) == [3, 3, 8, 8] and steps
    assert solve([1, 1, 1], 100) is None


def test_generator_is_seeded_distinct_and_solvable():
    rows = countdown_problems(150, seed=5)
    assert rows == countdown_problems(150, seed=5) and rows != countdown_problems(150, seed=6)
    keys = {(tuple(sorted(r["nums"])), r["target"]) for r in rows}
    assert len(keys) == len(rows)
    assert {len(r["nums"]) for r in rows} == {3, 4}
    for r in rows:
        assert all(1 <= x <= 99 for x in r["nums"]) and 1 <= r["target"] <= 100
        value, used = evaluate_countdown_equation(r["solution"])  # the reward's own parser
        assert value == r["target"] and sorted(used) == sorted(r["nums"]), r
        gold = json.dumps({"target": r["target"], "numbers": r["nums"]})
        assert countdown_reward(f"<answer> {r['solution']} </answer>", gold) == 1.0


def test_generator_reports_an_exhausted_space():
    with pytest.raises(ValueError, match="distinct solvable problems"):
        countdown_problems(500, seed=1, min_numbers=3, max_numbers=3, min_number=1, max_number=2)


def test_handler_and_template_give_mini_r1_prompts():
    sample = get_handler("countdown")({"nums": [19, 36, 55, 7], "target": 65})
    text = load_template("qwen_countdown").render(sample.messages)
    assert text == (f"<|im_start|>system\n{MINI_R1_SYSTEM}<|im_end|>\n"
                    f"<|im_start|>user\n{MINI_R1_USER.format(numbers=[19, 36, 55, 7], target=65)}<|im_end|>\n"
                    "<|im_start|>assistant\nLet me solve this step by step.\n<think>")
    assert json.loads(sample.label) == {"target": 65, "numbers": [19, 36, 55, 7]}
    right = " 55 + 36 = 91, 91 - 19 = 72, 72 - 7 = 65 </think>\n<answer> 55 + 36 - 19 - 7 </answer>"
    assert countdown_reward(right, sample.label) == 1.0 and countdown_accuracy(right, sample.label) == 1.0
    wrong = " </think>\n<answer> 55 + 36 - 19 </answer>"  # well formed, misses: format credit only
    assert countdown_reward(wrong, sample.label) == 0.1 and countdown_accuracy(wrong, sample.label) == 0.0


@pytest.mark.parametrize("row, reason", [
    ({"nums": "1 2 3", "target": 6}, "bad_numbers"), ({"nums": [1, 2.5], "target": 6}, "bad_numbers"),
    ({"nums": [1, 2, 3], "target": "six"}, "bad_target"), ({"nums": [1, 2, 3]}, "missing_answer"),
])
def test_handler_rejects_bad_rows(row, reason):
    with pytest.raises(RowRejected) as info:
        get_handler("countdown")(row)
    assert info.value.reason == reason


def test_preprocessed_countdown_rows_keep_the_reward_label(tmp_path):
    from mindspeed_rl.data import PromptDataset
    from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
    from mindspeed_rl.demo.assets import countdown_reference_response, train_tokenizer, write_jsonl

    rows = countdown_problems(24, seed=3, min_numbers=3, max_numbers=3, max_number=9, max_target=30)
    write_jsonl(rows, tmp_path / "cd.jsonl")
    template = load_template("qwen_countdown")
    handler = get_handler("countdown")
    texts = [template.render(handler(r).messages) + countdown_reference_response(r) for r in rows]
    tokenizer = train_tokenizer(texts, tmp_path / "tok", vocab_size=400)
    preprocess(PreprocessConfig(input=str(tmp_path / "cd.jsonl"), handler="countdown",
                                map_keys={"prompt": "nums", "response": "target"}, template="qwen_countdown",
                                tokenizer_name_or_path=str(tmp_path / "tok"), output_prefix=str(tmp_path / "out"),
                                max_prompt_length=400, workers=1, progress=False), log=lambda *a, **k: None)
    ds = PromptDataset(str(tmp_path / "out"))
    assert len(ds) == len(rows)
    by_label = {json.dumps({"target": r["target"], "numbers": r["nums"]}): r for r in rows}
    for item in ds.batch(list(range(len(ds)))):
        r = by_label[item.label]
        assert tokenizer.decode(item.prompt_ids.tolist()) == template.render(handler(r).messages)
        assert countdown_reward(countdown_reference_response(r), item.label) == 1.0
