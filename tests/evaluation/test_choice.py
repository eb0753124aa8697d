"""Multiple-choice letter extraction: what counts as choosing A-D, and the guards."""
import pytest

from mindspeed_rl.evaluation.choice import choice_accuracy, extract_choice

CASES = [
    # \boxed{}
    (r"... so \boxed{C}", "C"),
    (r"\boxed{(B)}", "B"),
    (r"$\boxed{\text{D}}$", "D"),
    (r"\boxed{\textbf{A}}", "A"),
    (r"\boxed{\mathrm{B}}", "B"),
    (r"\boxed{C) 3.2 eV}", "C"),
    (r"\boxed{(A) 42}", "A"),
    (r"\boxed{B. the second one}", "B"),
    (r"\boxed{\text{Option } C}", "C"),
    (r"first \boxed{A} then on reflection \boxed{D}", "D"),
    (r"\fbox{B}", "B"),
    (r"\boxed{ C }", "C"),
    (r"\boxed{C, C}", "C"),
    # <answer>
    ("<think>A looks tempting</think> <answer>B</answer>", "B"),
    ("<answer>(D)</answer>", "D"),
    ("<answer>Option C</answer>", "C"),
    ("<answer>The answer is A</answer>", "A"),
    ("<answer>\n C \n</answer>", "C"),
    (r"<answer>\boxed{B}</answer>", "B"),
    ("<answer>A) 17 m/s</answer>", "A"),
    ("<answer>x</answer> <answer>D</answer>", "D"),
    (r"<think>maybe \boxed{A}</think> <answer>B</answer>", "B"),  # the answer tag is final, not the box in <think>
    (r"<answer>so \boxed{D}, not A</answer>", "D"),
    (r"\boxed{C} <answer>see above</answer>", "C"),
    # phrases
    ("The answer is (C).", "C"),
    ("So the correct answer is B.", "B"),
    ("Answer: D", "D"),
    ("Final answer: **A**", "A"),
    ("the answer is C because the rate doubles", "C"),
    ("I first thought the answer is A. Re-checking, the answer is D.", "D"),
    ("The best option is (B)", "B"),
    ("The correct choice is [C]", "C"),
    ("answer: $C$", "C"),
    # bare
    ("C", "C"),
    ("(B)", "B"),
    ("D.", "D"),
    # a non-choice box falls through to the phrase
    (r"\boxed{42} which is option... the answer is (B)", "B"),
    # --- hard negatives: no answer ---
    (r"\boxed{A, C}", None),
    (r"\boxed{A \text{ and } C}", None),
    (r"\boxed{(A) or (B)}", None),
    ("<answer>A and D</answer>", None),
    ("The answer is A or C.", None),
    ("The answer is (B), (D)", None),
    ("The answer is Carbon.", None),
    (r"\boxed{CO_2}", None),
    (r"\boxed{B12}", None),
    ("<answer>A large value</answer>", None),
    ("the answer is a", None),  # lower-case: the article, not choice A
    ("The answer is not A.", None),
    ("The answer is A bit unclear", None),
    ("Answer: E", None),  # only A-D exist
    (r"\boxed{E}", None),
    ("Apples and Bananas", None),
    ("I don't know.", None),
    ("", None),
    ("A cat", None),
    ("Based on the data, Option B is wrong and option C is odd", None),
    ("<answer></answer>", None),
]


@pytest.mark.parametrize("text,want", CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_extract_choice(text, want):
    assert extract_choice(text) == want


def test_case_count_and_hard_negatives():
    assert len(CASES) >= 40
    assert sum(w is None for _, w in CASES) >= 15


def test_more_letters_when_asked():
    assert extract_choice(r"\boxed{E}", letters="ABCDE") == "E"
    assert extract_choice(r"\boxed{E}") is None


def test_choice_accuracy_reward():
    assert choice_accuracy(r"\boxed{C}", "C") == 1.0
    assert choice_accuracy(r"\boxed{C}", "(C)") == 1.0
    assert choice_accuracy(r"\boxed{B}", "C") == 0.0
    assert choice_accuracy(r"\boxed{A, C}", "C") == 0.0
    with pytest.raises(ValueError, match="not a single letter"):
        choice_accuracy(r"\boxed{C}", "42")


@pytest.mark.parametrize("workers", [0, 1])
def test_judge_scores_choices_through_the_reward_scorer(workers):
    from mindspeed_rl.evaluation.config import CHOICE_REWARD, ScorerConfig
    from mindspeed_rl.evaluation.judging import Judge

    cfg = ScorerConfig(functions=[CHOICE_REWARD], answer_format="choice", num_workers=workers)
    with Judge(cfg) as judge:
        out = judge.judge(["<answer>B</answer>", r"\boxed{A, C}", "The answer is (C).", "no idea"], ["B", "C", "C", "A"])
    assert [j.correct for j in out] == [True, False, True, False]
    assert [j.extracted for j in out] == ["B", None, "C", None]
    assert [j.key for j in out] == ["B", None, "C", None]  # maj@k votes on the letter
