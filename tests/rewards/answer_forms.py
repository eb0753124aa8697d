"""Labelled answer forms the scorer once got wrong, one generator per class.

Every case is (class, response, gold, correct?, how). Gold values are real MATH-500 / GSM8K golds
(tests/fixtures/rewards/*.jsonl); the forms around them follow the MATH training set's own gold
notation and the cases of public grader test suites (see tests/fixtures/rewards/README.md). Each
class has right answers in the new form and near misses in the SAME form (hard negatives).

    python -m tests.rewards.answer_forms   # rewrite tests/fixtures/rewards/answer_forms.jsonl
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rewards"
OUT = FIXTURES / "answer_forms.jsonl"


def _golds(name):
    return [json.loads(line)["answer"] for line in open(FIXTURES / name)]


def _ints(rng, lo, hi, k):
    vals = sorted({int(g.replace(",", "")) for g in _golds("math500_answers.jsonl") + _golds("gsm8k_answers.jsonl")
                   if re.fullmatch(r"\d{1,3}(,\d{3})*|\d+", g) and lo <= int(g.replace(",", "")) <= hi})
    rng.shuffle(vals)
    return vals[:k]


def _math_comma(n: int) -> str:
    return f"{n:,}".replace(",", ",\\!")


def thousands(rng):
    for n in _ints(rng, 1000, 10**9, 14):
        g = _math_comma(n)
        yield rf"So the total is $\boxed{{{n}}}$.", g, True, "plain vs MATH ,\\!"
        yield rf"The answer is $\boxed{{{n:,}}}$.", g, True, "comma vs MATH ,\\!"
        yield rf"Hence $\boxed{{{f'{n:,}'.replace(',', '{,}')}}}$", g, True, "{,} vs ,\\!"
        yield rf"Thus \boxed{{{f'{n:,}'.replace(',', chr(92) + ',')}}}", g, True, "thin space vs ,\\!"
        yield rf"so the answer is $\boxed{{{g}}}$", str(n), True, "MATH ,\\! vs plain gold"
        yield rf"Final Answer: The final answer is ${n:,}$. I hope it is correct.", g, True, "unboxed, comma"
        yield rf"So the total is $\boxed{{{n + 1:,}}}$.", g, False, "off by one"
        yield rf"So the total is $\boxed{{{_math_comma(n * 10)}}}$.", g, False, "one digit more"
        yield rf"The answer is $\boxed{{{n / 1000:.3f}}}$.", g, False, "decimal point, not thousands"
        swapped = str(n)[::-1]
        if swapped != str(n) and not swapped.startswith("0"):
            yield rf"The answer is $\boxed{{{_math_comma(int(swapped))}}}$.", g, False, "digits reversed"


def text_placement(rng):
    hours = _ints(rng, 1, 12, 12)
    for h in hours:
        for mm, ap in (("30", "p.m."), ("15", "a.m.")):
            other = "a.m." if ap == "p.m." else "p.m."
            g = rf"\text{{{h}:{mm} {ap}}}"
            yield rf"They meet at $\boxed{{{h}:{mm} \text{{ {ap}}}}}$.", g, True, "time, text after"
            yield rf"They meet at $\boxed{{{h}:{mm}\text{{ {ap.replace('.', '').upper()}}}}}$.", g, True, "time, PM"
            yield rf"They meet at $\boxed{{{h}:{mm} \text{{ {other}}}}}$.", g, False, "am/pm swapped"
            yield rf"They meet at $\boxed{{{h % 12 + 1}:{mm} \text{{ {ap}}}}}$.", g, False, "hour off"
    for n in _ints(rng, 2, 500, 14):
        for unit in ("cm", "dollars"):
            g = rf"{n}\text{{ {unit}}}"
            yield rf"The length is $\boxed{{\text{{{n} {unit}}}}}$.", g, True, "unit inside text"
            yield rf"The length is $\boxed{{{n + 1} \text{{ {unit}}}}}$.", g, False, "number off, same unit"
    for day, other in (("Monday", "Tuesday"), ("Evelyn", "Evan"), ("east", "west"), ("ellipse", "parabola")):
        g = rf"\text{{{day}}}"
        for wrap in (r"\textbf{%s}", r"\mathrm{%s}", r"\text{ %s }", r"\mbox{%s}"):
            yield rf"So it is $\boxed{{{wrap % day}}}$", g, True, "word, other wrapper"
            yield rf"So it is $\boxed{{{wrap % other}}}$", g, False, "other word, same wrapper"


def boxed_sentence(rng):
    golds = [str(n) for n in _ints(rng, 0, 999, 8)]
    golds += [g for g in _golds("math500_answers.jsonl") if re.fullmatch(r"-?\\frac\{\d+\}\{\d+\}", g)][:6]
    templates = [r"\boxed{\text{Answer } %s}", r"\boxed{The final answer is %s}", r"$\boxed{\text{The answer is } $%s$}$",
                 r"\boxed{\text{Therefore } %s \text{ is the solution.}}", r"\boxed{\text{So the value is } %s}"]
    for g in golds:
        wrong = "17" if g != "17" else "19"
        for t in templates:
            yield "We compute step by step. " + t % g, g, True, "sentence in box"
            yield "We compute step by step. " + t % wrong, g, False, "sentence in box, wrong value"
        yield r"\boxed{\text{The answer is not } %s}" % g, g, False, "negated sentence"
        yield r"\boxed{\text{less than } %s}" % g, g, False, "bound, not the value"
    for n in _ints(rng, 1, 99, 6):
        g = rf"x \geq {n}"
        yield rf"\boxed{{\text{{Therefore }} x \geq {n} \text{{ is the solution.}}}}", g, True, "relation in sentence"
        yield rf"\boxed{{\text{{Therefore }} x > {n} \text{{ is the solution.}}}}", g, False, "strict in sentence"


def several_answers(rng):
    ints = _ints(rng, 1, 60, 40)
    for i in range(0, 36, 3):
        a, b, c = ints[i : i + 3]
        gset, glist = rf"\{{{a}, {b}, {c}\}}", f"{a}, {b}, {c}"
        boxes = rf"$\boxed{{{a}}}, \boxed{{{b}}}, \boxed{{{c}}}$"
        yield "The solutions are " + boxes, glist, True, "three boxes vs list"
        yield "The solutions are " + boxes, gset, True, "three boxes vs set"
        yield rf"So $x = \boxed{{{c}}}$ or $x = \boxed{{{a}}}$ and $\boxed{{{b}}}$", glist, True, "boxes joined by or/and"
        yield rf"$\boxed{{{a}}} \quad \boxed{{{b}}} \quad \boxed{{{c}}}$", gset, True, "boxes joined by quad"
        yield rf"so $\boxed{{{a}, {b}, {c}}}$", rf"\boxed{{{a}}}, \boxed{{{b}}}, \boxed{{{c}}}", True, "reverse: gold boxes"
        yield rf"so $\boxed{{\{{{c}, {b}, {a}\}}}}$", rf"$\boxed{{{a}}}$ and $\boxed{{{b}}}$ and $\boxed{{{c}}}$", True, "reverse: gold boxes, set"
        yield rf"$\boxed{{{a}}}, \boxed{{{b}}}$", glist, False, "one answer missing"
        yield rf"$\boxed{{{a}}}, \boxed{{{b}}}, \boxed{{{c + 100}}}$", glist, False, "one answer wrong"
        yield rf"$\boxed{{{a}}}, \boxed{{{b}}}, \boxed{{{c}}}, \boxed{{{c + 100}}}$", gset, False, "one answer extra"
        yield rf"Maybe $\boxed{{{a}}}, \boxed{{{b}}}, \boxed{{{c}}}$", str(c), False, "hedging over one gold"
        yield rf"so $\boxed{{{a}, {b}}}$", rf"\boxed{{{a}}}, \boxed{{{b}}}, \boxed{{{c}}}", False, "reverse: one missing"
    for i in range(0, 16, 2):
        a, b = ints[i], ints[i + 1] + 100
        yield rf"$\boxed{{x={a}}} \quad \boxed{{y={b}}}$", f"({a}, {b})", True, "x=, y= boxes vs pair"
        yield rf"$\boxed{{x={b}}} \quad \boxed{{y={a}}}$", f"({a}, {b})", False, "pair swapped"


def relations(rng):
    spellings = {r"\geq": [">=", r"\ge", "≥", r"\geqslant"], r"\leq": ["<=", r"\le", "≤", r"\leqslant"],
                 r"\neq": ["!=", r"\ne", "≠"], "<": [r"\lt"], ">": [r"\gt"]}
    wrong = {r"\geq": ">", r"\leq": "<", r"\neq": "=", "<": r"\leq", ">": r"\geq"}
    for n in _ints(rng, 1, 300, 5):
        for rel, alts in spellings.items():
            g = f"x {rel} {n}"
            for alt in alts:
                yield rf"Hence $\boxed{{x {alt} {n}}}$.", g, True, f"{alt} vs {rel}"
            yield rf"Hence $\boxed{{x {alts[0]} {n + 1}}}$.", g, False, "bound off by one"
            yield rf"Hence $\boxed{{x {wrong[rel]} {n}}}$.", g, False, "other relation"
            yield rf"Hence $\boxed{{{g}}}$.", rf"x {alts[0]} {n}", True, "reverse spelling"


def matrices(rng):
    golds = [g for g in _golds("math500_answers.jsonl") if g.startswith(r"\begin{pmatrix}")]
    ints = _ints(rng, 1, 50, 40)
    for i in range(0, 32, 4):
        a, b, c, d = ints[i : i + 4]
        golds.append(rf"\begin{{pmatrix}} {a} & {b} \\ {c} & -{d} \end{{pmatrix}}")
    for g in golds:
        body = g[len(r"\begin{pmatrix}") : -len(r"\end{pmatrix}")].strip()
        yield rf"So $\boxed{{\begin{{bmatrix}}{body}\end{{bmatrix}}}}$", g, True, "bmatrix"
        yield rf"So $\boxed{{\left[\begin{{array}}{{cc}}{body}\end{{array}}\right]}}$", g, True, "array in brackets"
        yield rf"So $\boxed{{\left(\begin{{matrix}}{body}\end{{matrix}}\right)}}$", g, True, "matrix in parens"
        yield rf"So $\boxed{{\begin{{pmatrix}}{body} \\ \end{{pmatrix}}}}$", g, True, "trailing row break"
        nums = re.findall(r"\d+", body)
        changed = body.replace(nums[0], str(int(nums[0]) + 1), 1)
        yield rf"So $\boxed{{\begin{{bmatrix}}{changed}\end{{bmatrix}}}}$", g, False, "one entry off, bmatrix"
        yield rf"So $\boxed{{\left[\begin{{array}}{{cc}}{changed}\end{{array}}\right]}}$", g, False, "one entry off, array"
        flipped = body.replace("-", "", 1) if "-" in body else "-" + body
        yield rf"So $\boxed{{\begin{{bmatrix}}{flipped}\end{{bmatrix}}}}$", g, False, "sign flipped"
        if "&" not in body:  # a column vector, also written as a tuple
            entries = [e.strip() for e in body.split(r"\\")]
            yield rf"So $\boxed{{\left({', '.join(entries)}\right)}}$", g, True, "vector as tuple"
            yield rf"So $\boxed{{\left({', '.join(entries[::-1])}\right)}}$", g, False, "vector as tuple, reversed"
            yield rf"So $\boxed{{({', '.join(entries[:-1])})}}$", g, False, "vector as tuple, entry missing"


def languages(rng):
    right = [r"所以答案是 $%s$。", r"因此，最终答案为：\boxed{%s 个}", r"答案：%s", r"最终答案是 %s 元。",
             r"故答案为 $\boxed{\text{%s 个}}$", r"Donc la réponse est $%s$.", r"Réponse : %s",
             r"La réponse finale est $\boxed{%s}$.", r"Por lo tanto, la respuesta es $%s$.", r"Die Antwort ist $%s$."]
    for n in _ints(rng, 2, 5000, 8):
        g = str(n)
        for t in right:
            yield "计算过程如下。\n" + t % g if "答" in t else "Calculons.\n" + t % g, g, True, "localised answer"
        yield r"我们先算出 $%d$，再相加。所以答案是 $%d$。" % (n, n + 3), g, False, "right value earlier, answer word wrong"
        yield r"Donc la réponse est $%d$." % (n * 2), g, False, "French, wrong value"
        yield r"因此，最终答案为：\boxed{%d 个}" % (n + 1), g, False, "Chinese, off by one"


def unboxed_and_markup(rng):
    golds = [str(n) for n in _ints(rng, 2, 99999, 10)]
    golds += [g for g in _golds("math500_answers.jsonl") if re.fullmatch(r"-?\\frac\{\d+\}\{\d+\}|\d+\\sqrt\{\d+\}", g)][:8]
    for g in golds:
        w = "7" if g != "7" else "8"
        yield f"Adding up.\nFinal Answer: The final answer is ${g}$. I hope it is correct.", g, True, "minerva style"
        yield f"Adding up.\nFinal Answer: The final answer is ${w}$. I hope it is correct.", g, False, "minerva style, wrong"
        yield (rf"First $3 \cdot 4 = \boxed{{12}}$, then $\boxed{{{w}}}$ more.\nFinal Answer: The final answer is ${g}$. "
               "I hope it is correct."), g, True, "intermediate boxes, then the final answer"
        yield (rf"First $\boxed{{{g}}}$, then $\boxed{{{w}}}$ more.\nFinal Answer: The final answer is ${w}$. "
               "I hope it is correct."), g, False, "right value only in an intermediate box"
        yield rf"So $\boxed{{{g}}}$.<|im_end|>" + "\n<|im_start|>user\nNext problem: what is 2+5? " + rf"\boxed{{{w}}}", g, True, "chat turn after"
        yield rf"So $\boxed{{{g}}}$.<|endoftext|>Human: and this one? \boxed{{{w}}}", g, True, "endoftext after"
        yield rf"So $\boxed{{{w}}}$.<|im_end|>" + "\n<|im_start|>user\nHmm. " + rf"\boxed{{{g}}}", g, False, "right value only in the next turn"
        yield rf"<|im_start|>assistant" + "\n" + rf"So $\boxed{{{g}}}$<|im_end|>", g, True, "assistant header"
        yield f"The answer is {g}.\n<|im_start|>user\nWrong, it is {w}", g, True, "phrase then markup"


def stray_characters(rng):
    golds = [str(n) for n in _ints(rng, 2, 999, 8)]
    golds += [g for g in _golds("math500_answers.jsonl") if re.fullmatch(r"-?\\frac\{\d+\}\{\d+\}", g)][:4]
    forms = [r"\boxed{%s\}", r"\boxed{%s \}", r"\boxed{%s\\}", r"\boxed{%s\,}", r"\boxed{ %s. }", r"\boxed{%s~}",
             r"\boxed{$%s$}", r"\boxed{%s \quad}"]
    for g in golds:
        w = str(int(g) + 1) if g.isdigit() else g.replace("{", "{1", 1)
        for f in forms:
            yield "Thus the answer is " + f % g, g, True, "stray character in box"
        for f in forms[:4]:
            yield "Thus the answer is " + f % w, g, False, "stray character, wrong value"


CLASSES = {
    "thousands": thousands, "text_placement": text_placement, "boxed_sentence": boxed_sentence,
    "several_answers": several_answers, "relations": relations, "matrices": matrices,
    "languages": languages, "unboxed_and_markup": unboxed_and_markup, "stray_characters": stray_characters,
}


def build(seed: int = 0) -> list[dict]:
    rows = []
    for name, gen in CLASSES.items():
        rng = random.Random(f"{seed}:{name}")
        for response, gold, ok, how in gen(rng):
            rows.append({"class": name, "response": response, "gold": gold, "correct": bool(ok), "how": how})
    return rows


def load() -> list[dict]:
    return [json.loads(line) for line in open(OUT, encoding="utf-8")]


if __name__ == "__main__":
    rows = build()
    with open(OUT, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    from collections import Counter

    print(len(rows), Counter((r["class"], r["correct"]) for r in rows))
