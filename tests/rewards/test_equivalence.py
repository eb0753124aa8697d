import json
import random

import pytest

from tests.paths import FIXTURES
from mindspeed_rl.rewards import is_equivalent

DATA = FIXTURES / "rewards"


def _math500():
    return [json.loads(line) for line in open(DATA / "math500_answers.jsonl")]


def _gsm8k():
    return [json.loads(line) for line in open(DATA / "gsm8k_answers.jsonl")]


# Known false positives of plain math-verify: must stay wrong.
@pytest.mark.parametrize("pred,gold", [
    (r"\frac{1}{2^{98}}", r"\frac{1}{2^{99}}"),
    (r"2+3=5", r"1+1=2"),
    (r"3\times 4=12", r"5=5"),
    (r"4\sqrt(2)", "4"),
    (r"1,3,\ldots,2n-1", r"1,2,\ldots,n"),
    (r"1, 3, \ldots, 2n-1", r"1, 2, \ldots, n"),
    ("1e-20", "0"),
    (r"9^{9^{9^{9}}}", "3"),
])
def test_known_false_positives_rejected(pred, gold):
    assert not is_equivalent(pred, gold)


@pytest.mark.parametrize("pred,gold", [
    ("12.5", "12.5"), ("0.75", r"\frac{3}{4}"), ("3/4", r"\frac34"), (r"\dfrac{3}{4}", r"\frac{3}{4}"),
    ("1,234", "1234"), ("1.5e3", "1500"), (r"1.5 \times 10^{3}", "1500"), (r"2\frac{1}{2}", "2.5"),
    ("10\\%", "10"), ("x=3", "3"), ("3", "x = 3"), (r"\{1,-2\}", "-2,1"),
    (r"(-\infty,2)\cup(3,\infty)", r"(-\infty, 2) \cup (3, \infty)"),
    (r"\begin{pmatrix}-1&0\\0&-1\end{pmatrix}", r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}"),
    ("76", r"76^\circ"), ("76°", r"76^\circ"), ("15", r"15\mbox{ cm}^2"), ("Evelyn", r"\text{Evelyn}"),
    ("C", r"\text{(C)}"), (r"\sqrt{20}", r"2\sqrt{5}"), ("9i+6", "6+9i"), (r"4\sqrt(2)", r"4\sqrt{2}"),
    (r"\frac{1}{\sqrt3}", r"\frac{\sqrt{3}}{3}"), (r"1, 2, \dots, n", r"1,2,\ldots,n"), ("0.333333", r"\frac13"),
])
def test_equivalent_rewritings(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize("pred,gold", [
    ("13", "12"), ("0.33", r"\frac13"), (r"(2,12]\cup(12,102)", r"(2,12) \cup (12,102)"),
    (r"\begin{pmatrix}-1&0\\0&1\end{pmatrix}", r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}"),
    ("Alice", r"\text{Evelyn}"), ("(D)", r"\text{(C)}"), (r"\sqrt{5}", r"2 \sqrt{5}"), ("6-9i", "6+9i"),
    (r"\frac{1}{2^{10}}", r"\frac{1}{2^{11}}"), ("-2", "2"), ("1", "-2,1"), ("0.1", "10\\%"),
])
def test_near_misses_rejected(pred, gold):
    assert not is_equivalent(pred, gold)


def test_math500_golds_against_themselves_and_boxed_solutions():
    rows = [r for r in _math500() if "\\boxed" in r["solution_tail"]]
    assert len(rows) > 450
    from mindspeed_rl.rewards.extraction import extract_answer

    misses = [r["answer"] for r in rows if not is_equivalent(extract_answer(r["solution_tail"]).answer, r["answer"])]
    # A few reference solutions box something other than the dataset's answer string; none may be
    # lost beyond that handful.
    assert len(misses) <= 5, misses


def test_math500_numeric_near_misses_rejected():
    rows = [r for r in _math500() if r["answer"].lstrip("-").isdigit()]
    rng = random.Random(0)
    for r in rng.sample(rows, 60):
        n = int(r["answer"])
        for wrong in (n + 1, n - 1, 10 * n + 1):
            assert not is_equivalent(str(wrong), r["answer"]), (wrong, r["answer"])
        assert is_equivalent(f"{n}.0", r["answer"])
        assert is_equivalent(rf"\frac{{{2 * n}}}{{2}}", r["answer"])


def test_math500_fraction_rewritings():
    import re

    rows = [r for r in _math500() if re.fullmatch(r"-?\\frac\{\d+\}\{\d+\}", r["answer"])]
    assert len(rows) > 10
    for r in rows:
        sign = "-" if r["answer"].startswith("-") else ""
        a, b = re.findall(r"\d+", r["answer"])
        assert is_equivalent(f"{sign}{a}/{b}", r["answer"])
        assert is_equivalent(rf"{sign}\dfrac{{{3 * int(a)}}}{{{3 * int(b)}}}", r["answer"])
        assert not is_equivalent(f"{sign}{int(a) + 1}/{b}", r["answer"])
        if a != b:
            assert not is_equivalent(f"{sign}{b}/{a}", r["answer"])


def test_gsm8k_golds():
    for r in _gsm8k():
        g = r["answer"]
        n = int(g.replace(",", ""))
        assert is_equivalent(f"{n:,}", g)
        assert is_equivalent(f"\\${n}.00", g)
        assert not is_equivalent(str(n + 1), g)
