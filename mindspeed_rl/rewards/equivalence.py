"""Is a predicted answer string equivalent to the gold answer string?

Layers, cheapest first:
1. normalised string equality;
2. exact plain-number comparison (``normalize.parse_plain_number``);
3. multiple-choice letters; comma lists with ellipses (compared element by element, in order);
   a column vector against the same entries as a tuple;
4. math-verify / latex2sympy2_extended for everything symbolic (sets, intervals, tuples,
   equations, matrices, radicals, pi, ...), with math-verify's own signal-based timeouts off
   (callers run this under the hard per-sample timeout of ``pool``), and with vetoes for its
   documented false positives:
   - tiny distinct values that its chopped ``evalf`` calls equal (``1/2^99`` vs ``1/2^98``),
   - bare equations without variables, which all reduce to ``0 = 0`` (``1+1=2`` vs ``2+3=5``),
   - ``\\sqrt(2)`` parsed as nothing (``4\\sqrt(2)`` == ``4``; fixed in normalisation),
   - ellipses dropped from lists (``1,2,\\ldots,n`` vs ``1,3,\\ldots,2n-1``; layer 3),
   - astronomically large powers (``9^{9^{9}}``) are compared structurally, never evaluated;
5. the same text with ``\\text{}`` placed differently (``\\text{4:30 p.m.}`` / ``4:30 \\text{ p.m.}``).

``math_verify_match`` is plain math-verify on a whole response (its own extraction) with the same
vetoes: ``acc`` uses it last, so a form math-verify reads is never lost to our extraction.
"""
from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Optional

from .normalize import normalize_latex_answer, parse_plain_number, plain_numbers_equal

logger = logging.getLogger(__name__)

_ELLIPSIS_RE = re.compile(r"\\[lc]?dots\b|\\ldotp|\.\.\.|…")
_CHOICE_RE = re.compile(r"^\(?\s*([A-Ja-j])\s*\)?\s*[.:)]?$")
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|mathbf|textit)\s*\{([^{}]*)\}")
_LOG_DIGITS_LIMIT = 10_000  # a power with more digits than this is never evaluated


def _unwrap_text(s: str) -> str:
    prev = None
    while prev != s:
        prev, s = s, _TEXT_WRAP_RE.sub(r"\1", s)
    return s


def _choice_letter(s: str) -> Optional[str]:
    m = _CHOICE_RE.match(_unwrap_text(s).strip())
    return m.group(1).upper() if m else None


def _split_top_level(s: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _text_key(s: str) -> str:
    return re.sub(r"[\s{}\\.,;:!?'\"`]", "", _unwrap_text(s)).lower()


def _layout_key(s: str) -> str:
    """The answer with its text wrappers, spacing and abbreviation dots gone, digits and all other
    punctuation kept: ``\\text{4:30 p.m.}`` and ``4:30 \\text{ p.m.}`` both give ``4:30pm``."""
    s = _unwrap_text(s).lower()
    s = re.sub(r"(?<=[a-z])\.|\.(?=[a-z])", "", s)
    return re.sub(r"\\[,;:! ]|[\s{}~]", "", s).strip(".")


# --------------------------------------------------------------------------------------------
# sympy layer
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=8192)
def parse_math(ans: str) -> tuple:
    """math-verify parse of one answer string (cached: golds repeat n times per prompt)."""
    from math_verify import parse
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    boxed_cfg = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    parsed = parse("\\boxed{" + ans + "}", extraction_config=boxed_cfg, parsing_timeout=None)
    if not any(not isinstance(p, str) for p in parsed):
        alt = parse("$" + ans + "$", extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                    parsing_timeout=None)
        if any(not isinstance(p, str) for p in alt):
            parsed = alt
    return tuple(parsed)


def _is_huge(expr) -> bool:
    """True when evaluating ``expr`` would build an astronomically large number."""
    from sympy import Basic, Pow, log, preorder_traversal

    if not isinstance(expr, Basic):
        return False
    try:
        for node in preorder_traversal(expr):
            if isinstance(node, Pow) and node.exp.is_number and node.base.is_number:
                base = abs(node.base.evalf(5))
                if base in (0, 1):
                    continue
                digits = abs(node.exp.evalf(5)) * abs(log(base, 10).evalf(5))
                if not digits.is_finite or digits > _LOG_DIGITS_LIMIT:
                    return True
            elif node.is_Function and node.func.__name__ in ("factorial", "factorial2", "subfactorial"):
                arg = node.args[0]
                if arg.is_number and abs(arg.evalf(5)) > 2000:
                    return True
    except Exception:  # evaluation of the exponent itself overflowed
        return True
    return False


def _is_percent(expr) -> bool:
    from math_verify.grader import get_pct_val

    return get_pct_val(expr) is not None


def _numeric_value(expr):
    """High-precision complex value of a closed-form number, else None."""
    from sympy import Basic, MatrixBase, Set, Tuple
    from sympy.core.relational import Relational

    if not isinstance(expr, Basic) or isinstance(expr, (MatrixBase, Set, Tuple, Relational)):
        return None
    try:
        if expr.free_symbols or not expr.is_number:
            return None
        v = expr.doit().evalf(40)
        return complex(v) if v.is_number and v.is_finite else None
    except Exception:
        return None


def _assigned_value(expr):
    """``x = 1/2^98`` -> ``1/2^98`` (math-verify compares an assignment by its value)."""
    from sympy import Eq, Symbol

    if isinstance(expr, Eq) and isinstance(expr.lhs, Symbol):
        return expr.rhs
    return expr


def _vetoed(gold, pred) -> bool:
    """Reject math-verify's known false positives after it said "equal"."""
    from sympy import Basic
    from sympy.core.relational import Relational
    from latex2sympy2_extended.logic import And

    # Bare equations with no variables all reduce to 0: compare what they state as a result.
    if isinstance(gold, (Relational, And)) and isinstance(pred, (Relational, And)):
        if isinstance(gold, Basic) and isinstance(pred, Basic) and not gold.free_symbols and not pred.free_symbols:
            g = gold if isinstance(gold, Relational) else gold._unsorted_args[-1]
            p = pred if isinstance(pred, Relational) else pred._unsorted_args[-1]
            return not _sympy_equal(g.rhs, p.rhs)
    # Tiny distinct values: math-verify's chopped evalf / 6-decimal rounding calls them equal.
    if _is_percent(gold) or _is_percent(pred):
        return False
    gold, pred = _assigned_value(gold), _assigned_value(pred)
    a, b = _numeric_value(gold), _numeric_value(pred)
    if a is not None and b is not None:
        scale = max(abs(a), abs(b))
        if scale > 0 and abs(a - b) > 1e-4 * scale:
            return True
    return False


def _sympy_equal(gold, pred) -> bool:
    from math_verify import verify

    return verify(gold, pred, timeout_seconds=None)


def _sympy_equiv(pred: str, gold: str) -> bool:
    gold_items = parse_math(gold)
    pred_items = parse_math(pred)
    g_exprs = [g for g in gold_items if not isinstance(g, str)]
    p_exprs = [p for p in pred_items if not isinstance(p, str)]
    if not g_exprs or not p_exprs:
        return False
    huge = any(_is_huge(e) for e in g_exprs + p_exprs)
    for g in g_exprs:
        for p in p_exprs:
            if huge:
                # Structural identity only: never evaluate 9^(9^9).
                if g == p:
                    return True
                continue
            if _sympy_equal(g, p) and not _vetoed(g, p):
                return True
    return False


_MV_TAIL_CHARS = 4000  # math-verify's regexes are slow on long runs without spaces (8 s on 100k "x")


def _response_tail(text: str) -> str:
    """The end of a long response, from a word boundary: where its final answer is."""
    if len(text) <= _MV_TAIL_CHARS:
        return text
    tail = text[-_MV_TAIL_CHARS:]
    m = re.search(r"\s", tail)
    return tail[m.end():] if m else tail


@lru_cache(maxsize=4096)
def _parse_response(text: str) -> tuple:
    from math_verify import parse

    return tuple(parse(_response_tail(text), parsing_timeout=None))


def math_verify_match(response: str, gold: str, tried: tuple = ()) -> bool:
    """Plain math-verify on a whole response (its own extraction: boxes, "final answer" anchors,
    the last math), gold boxed, with the same vetoes as ``is_equivalent``. ``tried``: answers
    already compared with ``is_equivalent``; math-verify readings identical to theirs are not
    compared again (the same sympy work, and the slow part)."""
    if not response or not gold:
        return False
    try:
        g_exprs = [g for g in parse_math(normalize_latex_answer(gold)) if not isinstance(g, str)]
        if not g_exprs:
            return False
        seen = [e for t in tried for e in parse_math(normalize_latex_answer(t)) if not isinstance(e, str)]
        p_exprs = [p for p in _parse_response(response)
                   if not isinstance(p, str) and not any(type(p) is type(e) and p == e for e in seen)]
        if not p_exprs:
            return False
        for g in g_exprs:
            for p in p_exprs:
                if _is_huge(g) or _is_huge(p):
                    if g == p:
                        return True
                    continue
                if _sympy_equal(g, p) and not _vetoed(g, p):
                    return True
    except Exception:  # a parser bug must never crash a batch; it just is not a match
        logger.debug("math-verify comparison failed", exc_info=True)
    return False


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------

_COLUMN_RE = re.compile(r"^\\begin\{pmatrix\}(.*)\\end\{pmatrix\}$", re.DOTALL)


def _column_vector(s: str) -> Optional[list[str]]:
    """Entries of a one-column pmatrix (a vector, MATH's form for them), else None."""
    m = _COLUMN_RE.match(s.strip())
    if not m or "&" in m.group(1):
        return None
    rows = [r.strip() for r in m.group(1).split("\\\\")]
    return rows if len(rows) >= 2 and all(rows) else None


def _tuple_items(s: str) -> Optional[list[str]]:
    s = s.strip()
    for left, right in (("(", ")"), ("\\langle", "\\rangle"), ("<", ">")):
        if s.startswith(left) and s.endswith(right):
            return _split_top_level(s[len(left) : len(s) - len(right)])
    return None


def _vector_tuple_equiv(pred: str, gold: str) -> Optional[bool]:
    """A column vector against the same entries written as a tuple ``(1, 2)``; None: not that case."""
    gv, pv = _column_vector(gold), _column_vector(pred)
    if (gv is None) == (pv is None):
        return None
    items = _tuple_items(pred if gv is not None else gold)
    vec = gv if gv is not None else pv
    if items is None or len(items) != len(vec):
        return None
    pairs = zip(items, vec) if gv is not None else zip(vec, items)
    return all(is_equivalent(a, b) for a, b in pairs)


def _list_with_ellipsis_equiv(pred: str, gold: str) -> bool:
    gp, pp = _split_top_level(gold), _split_top_level(pred)
    if len(gp) != len(pp):
        return False
    for g, p in zip(gp, pp):
        g_dots, p_dots = bool(_ELLIPSIS_RE.fullmatch(g.strip())), bool(_ELLIPSIS_RE.fullmatch(p.strip()))
        if g_dots or p_dots:
            if g_dots != p_dots:
                return False
            continue
        if not is_equivalent(p, g):
            return False
    return True


def is_equivalent(pred: Optional[str], gold: Optional[str]) -> bool:
    """True when the extracted answer ``pred`` means the same as ``gold``."""
    if pred is None or gold is None:
        return False
    p = normalize_latex_answer(str(pred))
    g = normalize_latex_answer(str(gold))
    if not p or not g:
        return False
    if p == g or p.replace(" ", "") == g.replace(" ", ""):
        return True

    gn = parse_plain_number(g)
    if gn is not None:
        pn = parse_plain_number(p)
        if pn is not None:
            return plain_numbers_equal(gn, pn)

    g_choice = _choice_letter(g)
    if g_choice is not None and len(g.strip("(){}")) <= 12 and not re.fullmatch(r"[a-j]", g):
        p_choice = _choice_letter(p)
        if p_choice is not None:
            return p_choice == g_choice

    if "pmatrix" in g or "pmatrix" in p:
        vt = _vector_tuple_equiv(p, g)
        if vt:
            return True

    if _ELLIPSIS_RE.search(g) or _ELLIPSIS_RE.search(p):
        if "," in g or "," in p:
            return _list_with_ellipsis_equiv(p, g)

    try:
        if _sympy_equiv(p, g):
            return True
    except Exception:  # a parser bug must never crash a batch; it just is not a match
        logger.debug("sympy comparison failed", exc_info=True)

    # Text answers ("\text{Evelyn}" vs "Evelyn"): compare letters only when the gold is words.
    gk = _text_key(g)
    if gk and re.fullmatch(r"[a-z]{2,}", gk) and gk == _text_key(p):
        return True
    # The same text with \text{} placed differently (times, units written around a number).
    if "\\text" in g + p or "\\mbox" in g + p or "\\mathrm" in g + p:
        lk = _layout_key(g)
        if lk and lk == _layout_key(p):
            return True
    return False
