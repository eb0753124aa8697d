from mindspeed_rl.rewards import ExtractionConfig, extract_answer
from mindspeed_rl.rewards.extraction import last_boxed


def test_last_boxed_brace_matching():
    assert last_boxed(r"a \boxed{1} then \boxed{\frac{1}{2}} end") == r"\frac{1}{2}"
    assert last_boxed(r"\fbox{x^{2}}") == "x^{2}"
    assert last_boxed(r"\boxed 5 done") == "5"
    assert last_boxed(r"\boxed{unclosed") is None


def test_sources_in_priority_order():
    assert extract_answer("<think>x</think><answer>12.5</answer>") .answer == "12.5"
    assert extract_answer("<answer>so \\boxed{7} ok</answer>").answer == "7"
    assert extract_answer("work... The final answer is $\\frac{3}{4}$. Done").answer == "\\frac{3}{4}"
    assert extract_answer("blah\nAnswer: 42\n").answer == "42"
    assert extract_answer("She makes 9 * 2 = 18 dollars.\n#### 18").answer == "18"
    assert extract_answer("12.5").source == "bare"
    assert extract_answer("so we get 3 apples and then 5 pears total").answer == "5"


def test_fallback_is_configurable_and_stop_words_cut():
    text = "we get 3 apples and then 5 pears in all, counting both kinds"
    assert extract_answer(text, ExtractionConfig(fallback="none")).answer is None
    assert extract_answer(text, ExtractionConfig(fallback="number")).answer == "5"
    cut = ExtractionConfig(stop_words=("<|im_end|>",))
    assert extract_answer("\\boxed{1}<|im_end|>\\boxed{2}", cut).answer == "1"


def test_huge_response_is_linear_time():
    import time

    text = "a" * 200_000 + "\\boxed{" + "{" * 5000
    t = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - t < 2.0
