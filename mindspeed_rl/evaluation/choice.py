"""Multiple-choice judging: which letter (A-D) did a response choose?

Where the choice is looked for, most formal first; the first place that holds a choice decides:

1. the last ``<answer>...</answer>`` (a box inside it first)   ``<answer>C</answer>``, ``<answer>(C) 42</answer>``
2. the last ``\\boxed{...}``                 ``\\boxed{C}``, ``\\boxed{(C)}``, ``\\boxed{\\text{C}}``, ``\\boxed{C) 42}``
3. the last answer phrase                    "the answer is (C)", "Answer: C", "correct option is C."
4. a response that is only a choice          "C", "(C)", "C."

Guards: several different letters in the deciding place ("A and C", "\\boxed{A, C}", "the answer
is A or C") mean no answer (the later places are not consulted); a place without any choice
(``\\boxed{42}``) passes to the next; a letter only counts
as a choice standing alone (``Carbon``, ``CO2``, ``B12``, "A large value" hold none); letters are
upper case (the article "a" is not choice A).
"""
from __future__ import annotations

import re
from typing import Mapping, Optional

LETTERS = "ABCD"
_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textrm|operatorname)\s*\{([^{}]*)\}")
_LEAD = re.compile(r"^(?:(?:the\s+)?(?:correct\s+|final\s+|best\s+|right\s+)?(?:answer|option|choice)\s*"
                   r"(?:is|:)?\s*:?\s*)", re.IGNORECASE)
_PHRASE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would\s+be|should\s+be|must\s+be|will\s+be|:)\s*:?\s*"
    r"(?:option\s+|choice\s+)?(?:\*\*)?\$?", re.IGNORECASE)
_MARK = r"\(\s*([A-Z])\s*\)|\[\s*([A-Z])\s*\]|([A-Z])"


def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces, in order."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end():i - 1])
    return out


def _clean(segment: str) -> str:
    s = segment
    for _ in range(3):  # nested wrappers: \textbf{\text{C}}
        s = _WRAPPERS.sub(r"\1", s)
    s = s.replace("$", "").replace("**", "").replace("\\", " ").strip()
    return _LEAD.sub("", s).strip()


def _letters_in_list(s: str, letters: str) -> Optional[set]:
    """The letters of a segment that is only a list of choices ("A, C", "(A) and (C)"), else None."""
    item = rf"(?:\(\s*[A-Z]\s*\)|[A-Z])"
    if not re.fullmatch(rf"{item}(?:\s*(?:,|;|/|&|\band\b|\bor\b|\s)\s*{item})+\s*\.?", s):
        return None
    found = set(re.findall(r"[A-Z]", s))
    return found if found <= set(letters) else None


def parse_choice_segment(segment: str, letters: str = LETTERS) -> tuple[Optional[str], bool]:
    """``(letter, decided)`` for a boxed / answer-tag segment: decided is True when the segment
    says something definite (one letter, or several letters = no answer)."""
    s = _clean(segment)
    if not s:
        return None, False
    several = _letters_in_list(s, letters)
    if several is not None:
        return (next(iter(several)), True) if len(several) == 1 else (None, True)
    # one marker, alone or followed by the choice's text after a separator: "C", "(C) 42", "C. 42", "C: 42"
    m = re.fullmatch(rf"(?:{_MARK})\s*(?:[.):：]\s*(.*))?", s, re.DOTALL)
    if m:
        letter = m.group(1) or m.group(2) or m.group(3)
        return (letter, True) if letter in letters else (None, True)
    m = re.match(rf"(?:\(\s*([A-Z])\s*\))\s+\S", s)  # "(C) 42" without a separator
    if m and m.group(1) in letters:
        return m.group(1), True
    return None, False


def _phrase_choice(text: str, letters: str) -> tuple[Optional[str], bool]:
    last = None
    for m in _PHRASE.finditer(text):
        last = m
    if last is None:
        return None, False
    tail = text[last.end():last.end() + 80]
    m = re.match(rf"(?:{_MARK})(?![A-Za-z0-9])", tail)
    if not m:
        return None, False
    letter = m.group(1) or m.group(2) or m.group(3)
    rest = tail[m.end():]
    if m.group(3):  # a bare letter must end the phrase: "is C.", "is C because" - not "is A large"
        if not re.match(r"\s*(?:$|[.,;:!?)\]*$\n]|\s+(?:because|since|as|which|for)\b)", rest):
            return None, False
    if re.match(rf"\s*(?:,|/|&|\band\b|\bor\b)\s*(?:{_MARK})(?![A-Za-z0-9])", rest):
        return None, True  # "A or C": several letters
    return (letter, True) if letter in letters else (None, True)


def extract_choice(response: str, letters: str = LETTERS) -> Optional[str]:
    """The chosen letter, or None (no choice, or several)."""
    if not response:
        return None
    tags = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    # the final answer tag first (a box inside it, then the tag itself), then the last box anywhere
    segments = ([*(_boxed_contents(tags[-1])[-1:]), tags[-1]] if tags else []) + _boxed_contents(response)[-1:]
    for segment in segments:
        letter, decided = parse_choice_segment(segment, letters)
        if decided:
            return letter
    letter, decided = _phrase_choice(response, letters)
    if decided:
        return letter
    stripped = response.strip()
    if len(stripped) <= 8:
        letter, decided = parse_choice_segment(stripped, letters)
        if decided:
            return letter
    return None


def choice_accuracy(response: str, gold: str, extra: Optional[Mapping] = None) -> float:
    """Reward function (``mindspeed_rl.evaluation.choice:choice_accuracy``): 1.0 when the response
    chooses the gold letter."""
    gold_letter = (gold or "").strip().strip("()").upper()
    if len(gold_letter) != 1 or not gold_letter.isalpha():
        raise ValueError(f"multiple-choice gold {gold!r} is not a single letter")
    letters = LETTERS if gold_letter in LETTERS else LETTERS + gold_letter
    return 1.0 if extract_choice(response, letters) == gold_letter else 0.0
