"""String-level normalisation of answers and exact parsing of plain numbers.

Plain numbers (integers, decimals, fractions, mixed numbers, percentages, scientific notation,
thousands separators, currency, trailing unit words) are compared exactly with ``Fraction``: that
is the fast path that keeps sympy out of most GSM8K/MATH comparisons.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

_SPACING_RE = re.compile(r"(?<!\\)\\[,;:!> ]|\\quad|\\qquad|~")
_DELIMS_RE = re.compile(r"\\left\b|\\right\b|\\bigl?\b|\\bigr\b|\\Bigl?\b|\\Bigr\b|\\displaystyle\b")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree\b|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}")


def _fix_sqrt_parens(s: str) -> str:
    """``\\sqrt(2)`` -> ``\\sqrt{2}`` (latex2sympy otherwise drops the root: 4\\sqrt(2) == 4)."""
    out = []
    i = 0
    while True:
        j = s.find("\\sqrt(", i)
        if j < 0:
            out.append(s[i:])
            break
        out.append(s[i:j] + "\\sqrt{")
        depth, k = 0, j + len("\\sqrt")
        while k < len(s):
            if s[k] == "(":
                depth += 1
            elif s[k] == ")":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if k >= len(s):  # unbalanced: leave the rest as it is
            out.append(s[j + len("\\sqrt(") :])
            break
        out.append(s[j + len("\\sqrt(") : k] + "}")
        i = k + 1
    return "".join(out)


# MATH writes thousands as 12,\!345 or 12{,}345; a thin space (12\,345) is the SI form.
_THOUSANDS_RE = re.compile(r"(?<=\d),\s*\\!\s*(?=\d{3})|(?<=\d)\{,\}(?=\d{3})")
_SPACED_THOUSANDS_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:(?:\\[,;! ]|\\thinspace\s*|~| )\d{3})+(?![\d,])")
# One spelling per relation: >= \ge \geqslant ≥ -> \geq, and so on (\le never eats \left).
_RELATIONS = [
    (re.compile(r"\\(?:geqslant|geq|ge)(?![A-Za-z])|>=|≥|⩾"), r" \\geq "),
    (re.compile(r"\\(?:leqslant|leq|le)(?![A-Za-z])|<=|≤|⩽"), r" \\leq "),
    (re.compile(r"\\(?:neq|ne)(?![A-Za-z])|!=|≠"), r" \\neq "),
    (re.compile(r"\\lt(?![A-Za-z])"), " < "),
    (re.compile(r"\\gt(?![A-Za-z])"), " > "),
]
_MATRIX_ENV_RE = re.compile(r"\\begin\{(?:bmatrix|Bmatrix|matrix|smallmatrix)\}|\\begin\{array\}\{[^{}]*\}")
_MATRIX_END_RE = re.compile(r"\\end\{(?:bmatrix|Bmatrix|matrix|smallmatrix|array)\}")


def _one_matrix_form(s: str) -> str:
    """Every bracketed matrix as ``pmatrix``: ``[\\begin{array}{cc}..\\end{array}]``, bmatrix, ..."""
    if "\\begin" not in s:
        return s
    s = re.sub(r"[\[(]\s*(\\begin\{(?:array\}\{[^{}]*|matrix)\})", r"\1", s)
    s = re.sub(r"(\\end\{(?:array|matrix)\})\s*[\])]", r"\1", s)
    s = _MATRIX_ENV_RE.sub(r"\\begin{pmatrix}", s)
    s = _MATRIX_END_RE.sub(r"\\end{pmatrix}", s)
    s = s.replace("\\hline", "")
    # a row separator before \end adds an empty row
    return re.sub(r"\\\\\s*(\\end\{pmatrix\})", r"\1", s)


def normalize_relations(s: str) -> str:
    for rx, rep in _RELATIONS:
        s = rx.sub(rep, s)
    return s


def normalize_latex_answer(ans: str) -> str:
    """Light, meaning-preserving clean-up applied to both sides before any comparison."""
    s = ans.strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _THOUSANDS_RE.sub(",", s)
    s = _SPACED_THOUSANDS_RE.sub(lambda m: re.sub(r"\D", "", m.group(0)), s)
    s = _DELIMS_RE.sub("", s)
    s = _one_matrix_form(s)
    s = normalize_relations(s)
    s = _SPACING_RE.sub(" ", s)
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\%", "%").replace("\\$", "").replace("−", "-")
    if "\\sqrt(" in s:
        s = _fix_sqrt_parens(s)
    s = re.sub(r"\s+", " ", s).strip()
    s = s.rstrip(".").strip()
    if s.startswith("$") and s.endswith("$") and len(s) > 1:
        s = s.strip("$").strip()
    return s


@dataclass(frozen=True)
class PlainNumber:
    value: Fraction
    is_decimal: bool  # written with a decimal point or in scientific notation
    percent: bool


_UNIT_WORD_RE = re.compile(r"(?:\s*(?:\\text|\\mbox|\\mathrm)\{\s*[A-Za-z][A-Za-z .^0-9]*\}|\s+[A-Za-z][A-Za-z.]+)+(?:\^?\{?[23]\}?)?$")
# Words that are maths, not units: never stripped as a unit suffix.
_NOT_UNITS = {"pi", "sqrt", "inf", "infty", "infinity", "i", "e", "mod", "and", "or", "to", "times"}
_INT = r"(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)"  # "0,111" is a decimal comma, not thousands
_DEC = rf"(?:{_INT}(?:\.\d*)?|\.\d+)"
_NUM_RE = re.compile(rf"^(?P<sign>[-+]?)\s*(?P<num>{_DEC})(?:\s*(?:[eE]|\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^)\s*\{{?\s*(?P<exp>[-+]?\d+)\s*\}}?)?$")
_FRAC_RE = re.compile(r"^(?P<sign>[-+]?)\s*(?:(?P<whole>\d+)\s*)?(?:\\frac\{\s*(?P<a>\d+)\s*\}\{\s*(?P<b>\d+)\s*\}|\\frac(?P<a1>\d)(?P<b1>\d)|(?P<a2>\d+)\s*/\s*(?P<b2>\d+))$")


def _strip_units(s: str) -> str:
    m = _UNIT_WORD_RE.search(s)
    if not m or m.start() == 0:
        return s
    words = re.findall(r"[A-Za-z]+", m.group(0).replace("\\text", "").replace("\\mbox", "").replace("\\mathrm", ""))
    if any(w.lower() in _NOT_UNITS for w in words):
        return s
    return s[: m.start()].strip()


def parse_plain_number(ans: str) -> Optional[PlainNumber]:
    """Exact value of a plain number written any common way, else None."""
    s = ans.strip()
    if not s or len(s) > 64:
        return None
    if not any(c.isdigit() for c in s):
        return None
    s = s.replace("{,}", ",").replace("\\!", "").strip()
    for cur in ("$", "€", "£", "¥", "₹", "USD", "dollars"):
        s = s.replace(cur, "")
    s = _strip_units(s.strip())
    percent = False
    for pct in ("%", "percent"):
        if s.endswith(pct):
            s, percent = s[: -len(pct)].strip(), True
    if s.startswith("(") and s.endswith(")") and s.count("(") == 1:
        s = s[1:-1].strip()
    m = _NUM_RE.match(s)
    if m:
        num = m.group("num").replace(",", "")
        if num.endswith("."):
            num = num[:-1]
        value = Fraction(num)
        exp = m.group("exp")
        if exp is not None:
            e = int(exp)
            if abs(e) > 400:
                return None
            value *= Fraction(10) ** e
        if m.group("sign") == "-":
            value = -value
        return PlainNumber(value, "." in num or exp is not None, percent)
    m = _FRAC_RE.match(s)
    if m:
        a = m.group("a") or m.group("a1") or m.group("a2")
        b = m.group("b") or m.group("b1") or m.group("b2")
        if int(b) == 0:
            return None
        value = Fraction(int(a), int(b))
        if m.group("whole"):
            if m.group("a2") and not re.search(r"\d\s+\d+\s*/", s):
                # "21/2" is a fraction; only "2 1/2" (with a space) is a mixed number
                value = Fraction(int(m.group("whole") + a), int(b))
            else:
                value += int(m.group("whole"))
        if m.group("sign") == "-":
            value = -value
        return PlainNumber(value, False, percent)
    return None


def _round6(x: Fraction) -> Fraction:
    return Fraction(round(x * 10**6), 10**6)


def plain_numbers_equal(gold: PlainNumber, pred: PlainNumber) -> bool:
    """Exact equality; when a decimal is involved, equality after rounding to 6 places that is
    also within a relative 1e-4 (so tiny distinct values never round together)."""
    g, p = gold.value, pred.value
    if g == p:
        return True
    if gold.is_decimal or pred.is_decimal:
        if _round6(g) == _round6(p):
            scale = max(abs(g), abs(p))
            return abs(g - p) <= Fraction(1, 10**4) * scale
    return False
