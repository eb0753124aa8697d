"""Built-in reward functions, registered under the names MindSpeed-RL users write in
``rl_config.verifier_function``. Each is ``fn(response, gold, extra) -> float``.

``extra`` keys used: ``extraction`` (an ``ExtractionConfig`` for ``acc``/``base_acc``),
``response_length`` (tokens, for ``cosine``; whitespace words otherwise), ``target`` and
``numbers`` (``countdown``; else the gold is parsed as JSON), and per-function parameters.
"""
from __future__ import annotations

import ast
import json
import math
import operator
import re
from fractions import Fraction
from typing import Mapping, Optional

from .equivalence import is_equivalent, math_verify_match
from .extraction import ExtractionConfig, _clean, all_boxed, extract_answer, last_boxed, prepare_response, readings
from .normalize import normalize_latex_answer, parse_plain_number
from .registry import register_reward

_DEFAULT_EXTRACTION = ExtractionConfig()


def _extraction_config(extra: Mapping) -> ExtractionConfig:
    cfg = extra.get("extraction") if extra else None
    return cfg if isinstance(cfg, ExtractionConfig) else _DEFAULT_EXTRACTION


def gold_answer(gold: str) -> str:
    """Gold answers may be full solutions (boxed / GSM8K ``####``): take their final answer."""
    g = str(gold)
    if "\\boxed" in g or "\\fbox" in g:
        # A gold that boxes several things ("\\boxed{1} papers and \\boxed{2} bins") means all of them.
        boxes = [b for b in dict.fromkeys(_clean(b) for b in all_boxed(g)) if b]
        if boxes:
            return ", ".join(boxes)
    if "####" in g:
        return g.rsplit("####", 1)[1].strip()
    return g.strip()


@register_reward("acc")
def accuracy_reward(response: str, gold: str, extra: Mapping = None) -> float:
    """1.0 when the extracted final answer is equivalent to the gold answer.

    Our extraction and comparison first; then math-verify's own reading of the whole response
    (with the vetoes of ``equivalence``), so a form math-verify handles is never lost here."""
    if gold is None or response is None:
        return 0.0  # no gold: nothing can be right (not even "\\boxed{None}")
    cfg = _extraction_config(extra or {})
    g = gold_answer(gold)
    if not g:
        return 0.0
    ext = extract_answer(response, cfg)
    if ext.source in _MARKED_SOURCES and not (ext.answer or "").strip():
        # The response marked its final answer and left it empty (``\\boxed{}``): no answer,
        # even if a number the gold equals appears in the reasoning.
        return 0.0
    cands = readings(ext)
    for cand in cands:
        if is_equivalent(cand, g):
            return 1.0
    if ext.source in _MARKED_SOURCES and _plain(ext.answer) and _plain(g):
        # A marked final answer and a gold that are both plain numbers were compared exactly;
        # math-verify could only read another number elsewhere ("The final answer is 5. Wait, ... 7").
        return 0.0
    return 1.0 if math_verify_match(prepare_response(response, cfg), g, tuple(cands)) else 0.0


_MARKED_SOURCES = ("answer_tag", "boxed", "phrase", "gsm8k")


def _plain(ans: str) -> bool:
    return parse_plain_number(normalize_latex_answer(ans)) is not None


_FORMAT_RE = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$", re.DOTALL)


_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def _one_of_each_tag(text: str) -> bool:
    return all(text.count(tag) == 1 for tag in _TAGS)


@register_reward("format")
def format_reward(response: str, gold: str = "", extra: Mapping = None) -> float:
    """1.0 for ``<think>...</think> <answer>...</answer>`` and nothing else: each tag exactly once
    (a duplicated or never-closed tag fails), think first, nothing after ``</answer>``."""
    text = response.strip()
    return 1.0 if _one_of_each_tag(text) and _FORMAT_RE.match(text) else 0.0


_STRICT_RE = re.compile(r"^<think>(.*?)</think>\s*<answer>(.*?)</answer>$", re.DOTALL)


@register_reward("strict_format")
def strict_format_reward(response: str, gold: str = "", extra: Mapping = None) -> float:
    """1.0 for exactly one think block, then exactly one answer block holding a ``\\boxed{}``."""
    text = response.strip()
    if not _one_of_each_tag(text):
        return 0.0
    m = _STRICT_RE.match(text)
    if not m or not m.group(1).strip():
        return 0.0
    return 1.0 if last_boxed(m.group(2)) is not None else 0.0


@register_reward("base_acc")
def base_accuracy_reward(response: str, gold: str, extra: Mapping = None) -> float:
    """Accuracy gated by the ``format`` reward: a right answer in the wrong format earns 0."""
    if format_reward(response) < 1.0:
        return 0.0
    return accuracy_reward(response, gold, extra)


_STEP_RE = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", re.MULTILINE)


@register_reward("reasoning_steps")
def reasoning_steps_reward(response: str, gold: str = "", extra: Mapping = None) -> float:
    """Share of 3 explicit step markers ("Step 1:", "1.", bullets, First/Next/Finally), capped at 1."""
    n = len(_STEP_RE.findall(response))
    return min(1.0, n / float((extra or {}).get("reasoning_steps_min", 3)))


@register_reward("cosine")
def cosine_reward(response: str, gold: str, extra: Mapping = None) -> float:
    """Cosine length scaling: short right answers earn most, short wrong answers lose most."""
    extra = extra or {}
    min_wrong = float(extra.get("cosine_min_value_wrong", -1.0))
    max_wrong = float(extra.get("cosine_max_value_wrong", -0.5))
    min_right = float(extra.get("cosine_min_value_correct", 0.5))
    max_right = float(extra.get("cosine_max_value_correct", 1.0))
    max_len = float(extra.get("cosine_max_len", 1000))
    length = extra.get("response_length")
    if length is None:
        length = len(response.split())
    correct = accuracy_reward(response, gold, extra) > 0
    progress = min(float(length) / max_len, 1.0)
    cos = math.cos(progress * math.pi)
    if correct:
        lo, hi = min_right, max_right
    else:  # longer wrong answers are penalised less: the scale runs the other way
        lo, hi = max_wrong, min_wrong
    return lo + 0.5 * (hi - lo) * (1.0 + cos)


@register_reward("repetition")
def repetition_penalty_reward(response: str, gold: str = "", extra: Mapping = None) -> float:
    """Negative share of repeated word n-grams, scaled to ``repetition_max_penalty`` (<= 0)."""
    extra = extra or {}
    n = int(extra.get("repetition_ngram_size", 3))
    max_penalty = float(extra.get("repetition_max_penalty", -1.0))
    words = response.lower().split()
    if len(words) < n:
        return 0.0
    ngrams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return (1.0 - len(set(ngrams)) / len(ngrams)) * max_penalty


# ------------------------------------------------------------------------------------------
# countdown: reach a target with each given number exactly once; arithmetic via the AST, no eval
# ------------------------------------------------------------------------------------------

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _eval_arith(node: ast.AST, used: list) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval_arith(node.body, used)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval_arith(node.operand, used)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval_arith(node.left, used), _eval_arith(node.right, used)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ZeroDivisionError
        return _BINOPS[type(node.op)](left, right)
    raise ValueError("only integers, + - * / and parentheses are allowed")


def evaluate_countdown_equation(equation: str) -> tuple[Optional[Fraction], list]:
    """Exact value of an integer arithmetic expression and the numbers it uses."""
    expr = equation.replace("×", "*").replace("÷", "/").replace("\\times", "*").replace("\\div", "/")
    expr = expr.split("=")[0].strip()
    if not expr or len(expr) > 200 or not re.fullmatch(r"[\d\s+\-*/().]+", expr) or "**" in expr:
        return None, []
    used: list = []
    try:
        return _eval_arith(ast.parse(expr, mode="eval"), used), used
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None, []


def _countdown_problem(gold, extra: Mapping) -> tuple[Optional[int], Optional[list]]:
    target, numbers = extra.get("target"), extra.get("numbers") or extra.get("nums")
    if target is None or numbers is None:
        try:
            data = json.loads(gold) if isinstance(gold, str) else gold
            target, numbers = data.get("target"), data.get("numbers") or data.get("nums")
        except (ValueError, AttributeError, TypeError):
            return None, None
    return target, numbers


@register_reward("countdown")
def countdown_reward(response: str, gold, extra: Mapping = None) -> float:
    """1.0 when the answer equation uses each number once and hits the target; ``format_score``
    (0.1) for a parseable equation that misses; 0 otherwise."""
    extra = extra or {}
    format_score = float(extra.get("countdown_format_score", 0.1))
    target, numbers = _countdown_problem(gold, extra)
    if target is None or numbers is None:
        raise ValueError("countdown needs 'target' and 'numbers' in extra or a JSON gold "
                         '{"target": 24, "numbers": [1, 2, 3, 4]}')
    blocks = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    if not blocks:
        return 0.0
    value, used = evaluate_countdown_equation(blocks[-1])
    if value is None:
        return 0.0
    if sorted(used) != sorted(int(n) for n in numbers):
        return format_score
    return 1.0 if abs(value - Fraction(target)) < Fraction(1, 10**5) else format_score


@register_reward("countdown_acc")
def countdown_accuracy(response: str, gold, extra: Mapping = None) -> float:
    """``countdown`` without format credit: 1.0 for a right equation, else 0 (log it with weight 0
    next to ``countdown`` to follow the solve rate)."""
    return 1.0 if countdown_reward(response, gold, extra) == 1.0 else 0.0
