"""Find the final answer in a model response.

Order of preference (the first that matches wins):
1. ``<answer>...</answer>`` contents (the last block; a ``\\boxed{}`` inside it wins over the rest
   of its text),
2. the last ``\\boxed{}`` / ``\\fbox{}`` with brace matching (``\\boxed 5`` too),
3. "the (final) answer is X" / "Answer: X" (the last one, up to the end of its line),
4. GSM8K ``#### X``,
5. a bare short answer (the whole response is one short line, e.g. ``12.5`` or ``$\\frac12$``),
6. a fallback (configurable): the last math environment or number in the text.
Responses are first cut at the configured stop words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

FallbackMode = Literal["none", "number", "math"]


@dataclass(frozen=True)
class ExtractionConfig:
    stop_words: tuple[str, ...] = ()
    answer_tag: bool = True
    boxed: bool = True
    answer_phrases: bool = True
    gsm8k_hash: bool = True
    bare_answer: bool = True
    # "math": last $..$/\(..\)/\[..\] or number; "number": last number only; "none": nothing
    fallback: FallbackMode = "math"
    # Longest bare response treated as an answer on its own.
    bare_max_chars: int = 120


@dataclass(frozen=True)
class Extraction:
    answer: Optional[str]
    source: str  # answer_tag | boxed | phrase | gsm8k | bare | fallback | none


_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_BLOCK_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
_PHRASE_RE = re.compile(
    r"(?:(?:final\s+)?answer\s+is|answer\s*(?:is)?\s*:|final\s+answer\s*:)\s*", re.IGNORECASE
)
_GSM8K_RE = re.compile(r"####\s*([^\n]+)")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?%?|-?\.\d+")
_MATH_ENV_RE = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\\d])\$([^$\n]+?)\$", re.DOTALL)
_HOPE_RE = re.compile(r"\s*\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)


def cut_at_stop_words(text: str, stop_words) -> str:
    """Cut ``text`` at the earliest occurrence of any stop word."""
    cut = len(text)
    for word in stop_words or ():
        if word:
            pos = text.find(word)
            if 0 <= pos < cut:
                cut = pos
    return text[:cut]


def _matching_brace(text: str, open_pos: int) -> int:
    """Index of the ``}`` matching ``text[open_pos] == '{'``, or -1 when unbalanced."""
    depth = 0
    i = open_pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # skip escaped characters such as \{ and \}
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def last_boxed(text: str) -> Optional[str]:
    """Contents of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed X``)."""
    for m in reversed(list(_BOX_RE.finditer(text))):
        start = m.end()
        if start < len(text) and text[start] == "{":
            end = _matching_brace(text, start)
            if end != -1:
                return text[start + 1 : end].strip()
        elif m.group(0).endswith(" ") or m.group(0).endswith("\t"):
            # "\boxed 5": one token after the space
            tok = re.match(r"[^\s$.,;]+", text[start:])
            if tok:
                return tok.group(0)
    return None


def _clean(ans: str) -> Optional[str]:
    ans = _HOPE_RE.sub("", ans).strip()
    # Surrounding math delimiters and trailing sentence punctuation.
    for _ in range(2):
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if ans.startswith(left) and ans.endswith(right) and len(ans) >= len(left) + len(right):
                ans = ans[len(left) : len(ans) - len(right)].strip()
        ans = ans.rstrip(" .;:,").strip()
        if ans.startswith("**") and ans.endswith("**") and len(ans) > 4:
            ans = ans[2:-2].strip()
    return ans or None


def _phrase_answer(text: str) -> Optional[str]:
    last = None
    for m in _PHRASE_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end() :]
    boxed = last_boxed(rest)
    if boxed is not None:
        return boxed
    line = rest.split("\n", 1)[0]
    # "The answer is $x$ because ..." -> the math part when present
    env = _MATH_ENV_RE.search(line)
    if env:
        return next(g for g in env.groups() if g is not None)
    # A sentence ends at ". " (not at a decimal point)
    line = re.split(r"\.\s", line, maxsplit=1)[0]
    return _clean(line)


def _fallback(text: str, mode: FallbackMode) -> Optional[str]:
    if mode == "none":
        return None
    best_pos, best = -1, None
    if mode == "math":
        for m in _MATH_ENV_RE.finditer(text):
            best_pos, best = m.end(), next(g for g in m.groups() if g is not None)
    for m in _NUMBER_RE.finditer(text):
        if m.end() > best_pos:
            best_pos, best = m.end(), m.group(0)
    return _clean(best) if best is not None else None


def extract_answer(response: str, config: ExtractionConfig = ExtractionConfig()) -> Extraction:
    """Return the final answer string of ``response`` and where it came from."""
    if response is None:
        return Extraction(None, "none")
    text = cut_at_stop_words(str(response), config.stop_words)

    if config.answer_tag and "<answer>" in text:
        blocks = _ANSWER_BLOCK_RE.findall(text)
        if blocks:
            block = blocks[-1]
            boxed = last_boxed(block) if config.boxed else None
            if boxed is not None:
                return Extraction(_clean(boxed), "answer_tag")
            phrase = _phrase_answer(block) if config.answer_phrases else None
            ans = phrase if phrase is not None else _clean(block)
            if ans is not None:
                return Extraction(ans, "answer_tag")

    if config.boxed:
        boxed = last_boxed(text)
        if boxed is not None:
            return Extraction(_clean(boxed) or "", "boxed")

    if config.answer_phrases:
        ans = _phrase_answer(text)
        if ans:
            return Extraction(ans, "phrase")

    if config.gsm8k_hash:
        found = _GSM8K_RE.findall(text)
        if found:
            ans = _clean(found[-1])
            if ans:
                return Extraction(ans, "gsm8k")

    stripped = text.strip()
    if config.bare_answer and stripped and len(stripped) <= config.bare_max_chars and "\n" not in stripped:
        ans = _clean(stripped)
        # A bare answer is short math, not a sentence of words.
        if ans and len(re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", "", ans))) <= 2:
            return Extraction(ans, "bare")

    ans = _fallback(text, config.fallback)
    if ans:
        return Extraction(ans, "fallback")
    return Extraction(None, "none")
