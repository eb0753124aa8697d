"""Evaluation metrics against closed-form answers on constructed outcomes."""
import itertools
import math

import pytest

from mindspeed_rl.evaluation import (MISSING_GROUP, ProblemResult, available_group_fields, avg_at_k, breakdown,
                                     default_ks, maj_at_k, majority_vote, mean_pass_at_k, pass_at_1, pass_at_k,
                                     summarize)


def enumerate_pass_at_k(n, c, k):
    """Fraction of the k-subsets of n samples (c correct) that contain a correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_equals_subset_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(enumerate_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_closed_form_and_edges():
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - math.comb(7, 4) / math.comb(10, 4))
    assert pass_at_k(16, 0, 8) == 0.0  # c = 0
    assert pass_at_k(16, 16, 8) == 1.0  # c = n
    assert pass_at_k(16, 1, 16) == 1.0 and pass_at_k(16, 0, 16) == 0.0  # k = n
    assert pass_at_k(16, 5, 1) == pytest.approx(5 / 16)  # k = 1 is the mean accuracy
    assert pass_at_k(10, 8, 3) == 1.0  # n - c < k: every subset has a correct sample
    # large n stays exact: 1 - C(197,100)/C(200,100) = 1 - (100*99*98)/(200*199*198)
    assert pass_at_k(200, 3, 100) == pytest.approx(1 - (100 * 99 * 98) / (200 * 199 * 198), rel=1e-14)
    assert pass_at_k(1024, 1, 512) == pytest.approx(0.5, rel=1e-14)


@pytest.mark.parametrize("args,match", [((4, 2, 5), "1 <= k <= n"), ((4, 5, 1), "0 <= c <= n"),
                                        ((4, 1, 0), "1 <= k <= n"), ((0, 0, 1), "n >= 1")])
def test_pass_at_k_rejects_impossible_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        pass_at_k(*args)


def test_means_over_problems():
    outcomes = [[True, False, False, False], [True, True, False, False, True, True], [False, False, False]]
    assert pass_at_1(outcomes) == pytest.approx((1 / 4 + 4 / 6 + 0) / 3)
    want = (pass_at_k(4, 1, 2) + pass_at_k(6, 4, 2) + 0.0) / 3
    assert mean_pass_at_k(outcomes, 2) == pytest.approx(want)
    assert want == pytest.approx((1 - math.comb(3, 2) / math.comb(4, 2) + 1 - math.comb(2, 2) / math.comb(6, 2)) / 3)
    with pytest.raises(ValueError, match="problem 2 has 3 samples, needs at least 4"):
        mean_pass_at_k(outcomes, 4)


def test_avg_at_k_uses_the_first_k_samples():
    outcomes = [[True, False, True, True], [False, False, True, True]]
    assert avg_at_k(outcomes, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert avg_at_k(outcomes, 4) == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert avg_at_k(outcomes, 4) == pass_at_1(outcomes)


def test_majority_vote_and_tie_break():
    keys = ["A", "B", "B", "A", "C", "C", "C"]
    correct = [False, True, True, False, False, False, False]
    assert majority_vote(keys, correct, 1) == ("A", False)
    assert majority_vote(keys, correct, 3) == ("B", True)
    # k=4: A and B tie 2-2 -> the one seen first (A) wins
    assert majority_vote(keys, correct, 4) == ("A", False)
    assert majority_vote(keys, correct, 7) == ("C", False)
    # None (no answer) never votes; all None -> wrong
    assert majority_vote([None, None, "7", None], [False, False, True, False]) == ("7", True)
    assert majority_vote([None, None], [False, False]) == (None, False)
    # the tie break does not depend on hashing: permuting which tied key comes first flips the winner
    assert majority_vote(["B", "A", "A", "B"], [True, False, False, True]) == ("B", True)


def test_maj_at_k_over_problems():
    outcomes = [[True, False, True], [False, True, False], [False, False, False]]
    keys = [["4", "5", "4"], ["x", "y", "x"], [None, None, None]]
    assert maj_at_k(outcomes, keys, 3) == pytest.approx(1 / 3)
    assert maj_at_k(outcomes, keys, 1) == pytest.approx(1 / 3)
    # maj@2 of problem 2: x, y tie -> x (first) -> wrong; problem 1: 4, 5 tie -> 4 -> right
    assert maj_at_k(outcomes, keys, 2) == pytest.approx(1 / 3)


def test_summarize_and_breakdown():
    results = [
        ProblemResult([True, True, False, False], ["1", "1", "2", "2"], {"subject": "Algebra", "level": 2}),
        ProblemResult([False, False, False, True], ["3", "3", None, "9"], {"subject": "Geometry", "level": 10}),
        ProblemResult([True, True, True, True], ["5"] * 4, {"subject": "Algebra"}),
    ]
    s = summarize(results)
    assert s["num_problems"] == 3 and s["num_samples"] == 12
    assert s["pass@1"] == pytest.approx((0.5 + 0.25 + 1) / 3)
    assert s["avg@4"] == s["pass@1"]
    assert s["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2) + 1) / 3)
    assert s["pass@4"] == 1.0
    assert s["maj@4"] == pytest.approx(2 / 3)
    assert set(s) == {"num_problems", "num_samples", "pass@1", "avg@4", "pass@2", "pass@4", "maj@1", "maj@2", "maj@4"}

    by_level = breakdown(results, "level")
    assert list(by_level) == [2, 10, MISSING_GROUP]  # numeric order, then the missing group
    assert by_level[10]["pass@1"] == 0.25 and by_level[MISSING_GROUP]["pass@1"] == 1.0
    by_subject = breakdown(results, "subject")
    assert list(by_subject) == ["Algebra", "Geometry"]
    assert by_subject["Algebra"]["pass@1"] == pytest.approx(0.75)
    assert available_group_fields(results) == ["level", "subject"]


def test_summarize_without_answer_keys_and_bad_k():
    results = [ProblemResult([True, False]), ProblemResult([False, False])]
    s = summarize(results)
    assert not any(name.startswith("maj@") for name in s)
    with pytest.raises(ValueError, match="exceed the smallest number of samples"):
        summarize(results, ks=[4])
    assert default_ks(16) == [1, 2, 4, 8, 16] and default_ks(6) == [1, 2, 4, 6] and default_ks(1) == [1]
