"""A labelled (response, gold, correct?) set built from real MATH-500 / GSM8K golds.

Rewrites are generic rules keyed on the gold's form (integer, decimal, fraction, radical,
degrees, set/list, interval, matrix, text, choice), not per-row answers; every case is wrapped
in one of several realistic response styles. Used by test_labelled.py and benchmarks/scorer.py.
"""
from __future__ import annotations

import json
import random
import re
from fractions import Fraction
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rewards"

STYLES = [
    "So the final answer is $\\boxed{{{a}}}$.",
    "<think>\nLet me work it out.\n</think>\n<answer>{a}</answer>",
    "<think>\ncompute\n</think>\n<answer>The answer is $\\boxed{{{a}}}$</answer>",
    "Therefore, the answer is ${a}$.",
    "Step 1: simplify.\nStep 2: solve.\nAnswer: {a}",
    "{a}",
]


def _int_cases(g: str, n: int):
    yield f"{n}.0", True
    yield f"\\frac{{{2 * n}}}{{2}}", True
    if abs(n) >= 1000:
        yield f"{n:,}", True
    yield f"{n} \\text{{ units}}", True
    yield str(n + 1), False
    yield str(n - 1), False
    if n != 0:
        yield str(-n), False
    yield f"{n}.5", False


def _frac_cases(sign: str, a: int, b: int):
    v = Fraction(a, b) * (-1 if sign else 1)
    yield f"{sign}{a}/{b}", True
    yield f"{sign}\\dfrac{{{2 * a}}}{{{2 * b}}}", True
    d = v.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:
        yield f"{float(v):g}", True
    yield f"{sign}\\frac{{{a + 1}}}{{{b}}}", False
    if a != b:
        yield f"{sign}\\frac{{{b}}}{{{a}}}", False
    yield f"{round(float(v), 2)}", abs(round(float(v), 2) - float(v)) < 1e-12


def cases_for(gold: str):
    g = gold.strip()
    yield g, True
    if re.fullmatch(r"-?\d+", g):
        yield from _int_cases(g, int(g))
        return
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+", g):
        yield from _int_cases(g, int(g.replace(",", "")))
        return
    if re.fullmatch(r"-?\d+\.\d+", g):
        yield g + "0", True
        yield str(float(g) + 0.1), False
        return
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", g)
    if m:
        yield from _frac_cases(m.group(1), int(m.group(2)), int(m.group(3)))
        return
    m = re.fullmatch(r"(\d*)\s*\\sqrt\{(\d+)\}", g)
    if m:
        c, r = m.group(1) or "1", int(m.group(2))
        yield f"\\sqrt{{{int(c) ** 2 * r}}}", True
        yield f"{c}\\sqrt{r}" if r < 10 else f"{c}\\sqrt{{{r}}}", True
        yield c, c != "1" and False
        yield f"{int(c) + 1}\\sqrt{{{r}}}", False
        return
    m = re.fullmatch(r"(\d+)\^\\circ", g)
    if m:
        yield m.group(1), True
        yield f"{m.group(1)}°", True
        yield f"{int(m.group(1)) + 1}^\\circ", False
        return
    if g.startswith("\\begin{pmatrix}"):
        yield g.replace(" ", ""), True
        yield g.replace("pmatrix", "bmatrix"), True
        nums = re.findall(r"-?\d+", g)
        if nums:
            first = nums[0]
            flip = first[1:] if first.startswith("-") else "-" + first if first != "0" else "1"
            yield g.replace(first, flip, 1), False
        return
    if re.fullmatch(r"[\[(].*[\])]", g) and "\\cup" not in g and g.count(",") == 1:
        yield g.replace(" ", ""), True
        opened = ("[" if g[0] == "(" else "(") + g[1:]
        if "\\infty" not in g.split(",")[0]:  # [-oo is ambiguous, not a near miss
            yield opened, False
        return
    if "," in g and not re.search(r"[\[\]()\\{}]", g):
        parts = [p.strip() for p in g.split(",")]
        if len(parts) >= 2 and len(set(parts)) == len(parts):
            yield ", ".join(reversed(parts)), True
            yield ", ".join(parts[:-1]), False
        return
    m = re.fullmatch(r"\\text\{\s*\(?([A-E])\)?\s*\}", g)
    if m:
        yield m.group(1), True
        yield f"({m.group(1)})", True
        yield "ABCDE"[("ABCDE".index(m.group(1)) + 1) % 5], False
        return
    m = re.fullmatch(r"\\text\{([A-Za-z ]+)\}", g)
    if m:
        yield m.group(1), True
        yield "Nobody", False
        return


def build(seed: int = 0) -> list[tuple[str, str, bool]]:
    rng = random.Random(seed)
    out = []
    golds = [json.loads(l)["answer"] for l in open(FIXTURES / "math500_answers.jsonl")]
    golds += [json.loads(l)["answer"] for l in open(FIXTURES / "gsm8k_answers.jsonl")]
    for gold in golds:
        for ans, ok in cases_for(gold):
            style = rng.choice(STYLES)
            out.append((style.format(a=ans), gold, bool(ok)))
    return out
