import pytest

from mindspeed_rl.rewards import available_rewards, get_reward
from mindspeed_rl.rewards.functions import evaluate_countdown_equation

GOOD = "<think>\nStep 1: add. Step 2: check.\n</think>\n<answer>The answer is \\boxed{12.5}</answer>"


def test_builtins_registered():
    for name in ("acc", "strict_format", "format", "base_acc", "reasoning_steps", "cosine",
                 "repetition", "countdown"):
        assert name in available_rewards()
    with pytest.raises(KeyError, match="unknown reward"):
        get_reward("nope")


def test_acc_answer_tag_without_box():
    acc = get_reward("acc")
    assert acc("<answer>12.5</answer>", "12.5", {}) == 1.0
    assert acc("<answer>12.6</answer>", "12.5", {}) == 0.0
    assert acc("Sol... #### 18", "Janet sells ... #### 18", {}) == 1.0  # GSM8K-style gold
    assert acc("x \\boxed{\\frac12}", "\\frac{1}{2}", {}) == 1.0


def test_format_rewards():
    fmt, strict = get_reward("format"), get_reward("strict_format")
    assert fmt(GOOD) == 1.0 and strict(GOOD) == 1.0
    no_box = "<think>x</think><answer>12.5</answer>"
    assert fmt(no_box) == 1.0 and strict(no_box) == 0.0
    two = "<think>a</think><think>b</think><answer>\\boxed{1}</answer>"
    assert strict(two) == 0.0
    assert fmt("<answer>1</answer><think>x</think>") == 0.0
    assert fmt(GOOD + " trailing") == 0.0


def test_base_acc_is_format_gated():
    base = get_reward("base_acc")
    assert base(GOOD, "12.5", {}) == 1.0
    assert base("\\boxed{12.5}", "12.5", {}) == 0.0


def test_reasoning_steps_cosine_repetition():
    assert get_reward("reasoning_steps")("Step 1: a\nStep 2: b\nStep 3: c") == 1.0
    assert get_reward("reasoning_steps")("Step 1: a") == pytest.approx(1 / 3)
    cos = get_reward("cosine")
    short_right = cos("\\boxed{3}", "3", {"response_length": 0})
    long_right = cos("\\boxed{3}", "3", {"response_length": 1000})
    short_wrong = cos("\\boxed{4}", "3", {"response_length": 0})
    long_wrong = cos("\\boxed{4}", "3", {"response_length": 1000})
    assert short_right == pytest.approx(1.0) and long_right == pytest.approx(0.5)
    assert short_wrong == pytest.approx(-1.0) and long_wrong == pytest.approx(-0.5)
    rep = get_reward("repetition")
    assert rep("a b c d e f g") == 0.0
    assert rep("x y z " * 20) < -0.9


def test_countdown_safe_arithmetic():
    v, used = evaluate_countdown_equation("(6 - 2) * (3 + 3)")
    assert v == 24 and sorted(used) == [2, 3, 3, 6]
    assert evaluate_countdown_equation("__import__('os').system('true')")[0] is None
    assert evaluate_countdown_equation("2**100000")[0] is None
    cd = get_reward("countdown")
    extra = {"target": 24, "numbers": [2, 3, 3, 6]}
    assert cd("<answer>(6-2)*(3+3)</answer>", "", extra) == 1.0
    assert cd("<answer>6*2*2</answer>", "", extra) == 0.1  # numbers not used exactly once
    assert cd("<answer>(6+2)*(3+3)</answer>", "", extra) == 0.1  # misses the target
    assert cd("no answer", '{"target": 24, "numbers": [2, 3, 3, 6]}', {}) == 0.0


def test_mindspeed_rl_verifier_names():
    """MindSpeed-RL's math_verify_reward gates accuracy on think + answer holding a boxed answer; its
    acc_for_dapo is +1 / -1 on the response's tail."""
    from mindspeed_rl.rewards import get_reward

    mv, dapo = get_reward("math_verify_reward"), get_reward("acc_for_dapo")
    good = "<think>2+2 is 4</think> <answer>The answer is \\boxed{4}</answer>"
    assert mv(good, "4") == 1.0 and mv(good, "5") == 0.0
    assert mv("The answer is \\boxed{4}", "4") == 0.0  # right but not in the format
    assert mv("<think>x</think><answer>4</answer>", "4") == 0.0  # no \\boxed{} in the answer
    assert dapo("so \\boxed{4}", "4") == 1.0 and dapo("so \\boxed{5}", "4") == -1.0
    assert dapo("\\boxed{4}" + " filler" * 100, "4") == -1.0  # beyond the last 300 characters
