"""The countdown probe's skill counters: an answer uses the given numbers exactly once each, and
worked steps count as right only when every one of them is."""
from tools.demo.countdown_probe import answer_skill


def test_answer_skill_counts_numbers_and_steps():
    good = " 3 * 6 = 18, 18 - 5 = 13 </think>\n<answer> (3 * 6) - 5 </answer>"
    assert answer_skill(good, [3, 6, 5]) == (True, True)
    assert answer_skill(good, [3, 6, 4]) == (False, True)  # a miscopied number
    assert answer_skill(good, [3, 6, 5, 1]) == (False, True)  # a number left out
    wrong_step = " 3 * 6 = 18, 18 - 5 = 12 </think>\n<answer> (3 * 6) - 5 </answer>"
    assert answer_skill(wrong_step, [3, 6, 5]) == (True, False)
    assert answer_skill(" 6 / 3 = 2 </think>\n<answer> 6 / 3 </answer>", [6, 3]) == (True, True)
    assert answer_skill(" 6 / 0 = 2 </think>\n<answer> 6 </answer>", [6]) == (True, False)
    assert answer_skill("no steps <answer> 1 + </answer>", [1]) == (False, False)
    # steps after </think> are not the worked steps
    assert answer_skill(" </think> 2 + 2 = 4 <answer> 2 + 2 </answer>", [2, 2]) == (True, False)
