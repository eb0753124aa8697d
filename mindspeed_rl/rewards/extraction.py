"""Find the final answer in a model response.

Order of preference (the first that matches wins):
1. ``<answer>...</answer>`` contents (the last block; a ``\\boxed{}`` inside it wins over the rest
   of its text),
2. the last ``\\boxed{}`` / ``\\fbox{}`` with brace matching (``\\boxed 5`` too; a box closed by a
   stray escaped brace, ``\\boxed{185\\}``, too); boxes right before it that only separators
   divide from it ("\\boxed{1}, \\boxed{2} and \\boxed{3}") join it as one list answer,
3. "the (final) answer is X" / "Answer: X", also localised (答案是, la réponse est, ...; the last
   one, up to the end of its line),
4. GSM8K ``#### X``,
5. a bare short answer (the whole response is one short line, e.g. ``12.5`` or ``$\\frac12$``),
6. a fallback (configurable): the last math environment or number in the text.
Responses are first cut at the configured stop words and where chat markup starts a new turn
(``<|im_end|>``, ``<|im_start|>user``, ...). ``answer_candidates`` adds readings of the same final
answer: the math of a boxed sentence ("\\boxed{The final answer is 34}" -> "34").
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
    r"(?:(?:final\s+)?answer\s+is|answer\s*(?:is)?\s*:|final\s+answer\s*:"
    # localised answer words: zh/ja, fr, es/pt/it, de, ru
    r"|(?:最终|最后的?)?答案\s*(?:是|为|為|应为|應為|应该是)?\s*[:：]?|答え\s*(?:は)?\s*[:：]?"
    r"|(?:la\s+)?réponse(?:\s+finale)?\s*(?:est\b|:)|(?:la\s+)?(?:respuesta|resposta|risposta)(?:\s+finale?)?\s*(?:(?:es|é|è)\b|:)"
    r"|(?:die\s+)?antwort\s*(?:(?:ist|lautet)\b|:)|ответ\s*:)\s*",
    re.IGNORECASE,
)
# Chat-template markup: a response that runs on into a new turn is cut where the turn ends.
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>",
                "<|end_of_text|>", "<|end|>", "<|user|>", "<|assistant|>", "<｜end▁of▁sentence｜>",
                "<｜User｜>", "<｜Assistant｜>", "</s>")
_LEADING_MARKUP_RE = re.compile(r"^\s*(?:<\|im_start\|>assistant|<\|start_header_id\|>assistant<\|end_header_id\|>"
                                r"|<\|assistant\|>|<｜Assistant｜>)\s*")
# Between boxes that together state one answer: "\boxed{1}, \boxed{2} and \boxed{3}", "\boxed{a} \quad \boxed{b}"
_BOX_SEPARATOR_RE = re.compile(
    r"[\s$,;]*(?:(?:and|or|&|et|和|或|以及|\\text\{\s*(?:and|or|,)?\s*\}|\\(?:q?quad|[,;:]|\\)|\\[()\[\]])[\s$,;]*)*",
    re.IGNORECASE)
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


def cut_at_chat_markup(text: str) -> str:
    """Drop a leading assistant header, then cut where the chat template starts a new turn."""
    text = _LEADING_MARKUP_RE.sub("", text)
    return cut_at_stop_words(text, CHAT_MARKERS)


def prepare_response(response, config: "ExtractionConfig") -> str:
    """The part of a response that can hold its answer: cut at stop words and chat markup."""
    return cut_at_chat_markup(cut_at_stop_words(str(response), config.stop_words))


def _matching_brace(text: str, open_pos: int, escapes: bool = True) -> int:
    """Index of the ``}`` matching ``text[open_pos] == '{'``, or -1 when unbalanced.

    With ``escapes`` (the default) ``\{``/``\}`` are literal braces; without, they count too (for
    a box closed by a stray escaped brace: ``\boxed{185\}``)."""
    depth = 0
    i = open_pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and escapes:
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


def _box_at(text: str, m: re.Match) -> Optional[tuple[int, str]]:
    """(end, contents) of the box whose ``\boxed`` matched at ``m``, or None when incomplete."""
    start = m.end()
    if start < len(text) and text[start] == "{":
        end = _matching_brace(text, start)
        if end == -1:
            end = _matching_brace(text, start, escapes=False)
        if end != -1:
            return end + 1, text[start + 1 : end].strip()
    elif m.group(0)[-1:] in (" ", "\t"):
        # "\boxed 5": one token after the space
        tok = re.match(r"[^\s$.,;]+", text[start:])
        if tok:
            return start + tok.end(), tok.group(0)
    return None


def boxed_group(text: str) -> list[str]:
    """Contents of the last complete box and of the boxes right before it that only separators
    (commas, "and", ``\quad``, ...) divide from it: ``\boxed{1}, \boxed{2}`` -> ["1", "2"]."""
    out: list[str] = []
    prev_start = None
    for m in reversed(list(_BOX_RE.finditer(text))):
        got = _box_at(text, m)
        if got is None:
            if out:
                break
            continue
        end, content = got
        if out:
            if end > prev_start:  # a box around the previous one: keep the inner answer
                continue
            if not _BOX_SEPARATOR_RE.fullmatch(text[end:prev_start]):
                break
        out.append(content)
        prev_start = m.start()
    return out[::-1]


def all_boxed(text: str) -> list[str]:
    """Contents of every complete box in order; a box inside another is part of it, and a box
    that only wraps another box counts as that one. After a negation between two boxes
    ("\\boxed{1}, no: \\boxed{2}") only the boxes after it count."""
    found: list[tuple[int, int, str]] = []
    for m in _BOX_RE.finditer(text):
        if found and m.start() < found[-1][1]:
            continue  # inside the previous box
        got = _box_at(text, m)
        if got is None:
            continue
        if found and _NEGATION_RE.search(text[found[-1][1] : m.start()]):
            found = []
        found.append((m.start(), got[0], got[1]))
    out = []
    for _, _, c in found:
        inner = last_boxed(c)
        out.append(inner if inner is not None and _BOX_RE.match(c) and _box_at(c, _BOX_RE.match(c))[0] == len(c) else c)
    return out


def last_boxed(text: str) -> Optional[str]:
    """Contents of the last complete ``\boxed{...}`` / ``\fbox{...}`` (or ``\boxed X``)."""
    for m in reversed(list(_BOX_RE.finditer(text))):
        got = _box_at(text, m)
        if got is not None:
            return got[1]
    return None


def boxed_answer(text: str) -> Optional[str]:
    """The boxed final answer: one box, or several adjacent boxes joined as a list."""
    group = boxed_group(text)
    if not group:
        return None
    if len(group) == 1:
        return group[0]
    return ", ".join(c for c in (_clean(g) for g in group) if c)


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
_CJK_EDGE_RE = re.compile(rf"^[{_CJK}\s]+|[{_CJK}\s]+$")
_STRAY_TAIL_RE = re.compile(r"(?:\s|\\\\|\\[,;:! ]|\\q?quad|~|\\$|[。，；：、．！])+$")
_STRAY_HEAD_RE = re.compile(r"^(?:\s|\\[,;:! ]|\\q?quad|~|[：:，])+")
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox)\s*\{([^{}$]*)\}")
_TEXT_ONLY_RE = re.compile(r"^\\(?:text|mbox|textbf|mathrm)\{([^{}]*)\}$")


def _clean(ans: str) -> Optional[str]:
    ans = _HOPE_RE.sub("", ans).strip()
    # Surrounding math delimiters and trailing sentence punctuation.
    for _ in range(2):
        ans = _STRAY_HEAD_RE.sub("", _STRAY_TAIL_RE.sub("", ans))
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if ans.startswith(left) and ans.endswith(right) and len(ans) >= len(left) + len(right):
                ans = ans[len(left) : len(ans) - len(right)].strip()
        ans = ans.rstrip(" .;:,").strip()
        if ans.startswith("**") and ans.endswith("**") and len(ans) > 4:
            ans = ans[2:-2].strip()
        if re.search(f"[{_CJK}]", ans):
            # "9 个", "\text{9 个苹果}", "共 9 个": the number, not the unit words around it
            inner = _TEXT_ONLY_RE.match(ans)
            if inner:
                ans = inner.group(1)
            core = _CJK_EDGE_RE.sub("", ans)
            if core and not re.search(f"[{_CJK}]", core):
                ans = core
    return ans or None


_NEGATION_RE = re.compile(r"\b(?:not|no|never|none|neither|nor|except|cannot|impossible|unless)\b", re.I)
_WORD = r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z])"
_SEP = r"[\s,:;.!]*"
# Words that only introduce an answer ("Therefore the answer is 9"). Anything else before the
# math ("less than 5", "negative 5", "at least 5") changes its meaning and stops the strip.
_INTRO_WORDS = frozenset("""answer answers final the is are therefore thus so hence we get have find
    obtain found solution solutions result value total there it this that which gives a an number
    required correct and as follows then finally equals be will would becomes""".split())
# Words after the math that change its value ("5 percent", "3 thousand", "2 or more") stop it too.
_VALUE_WORDS = frozenset("""percent squared cubed thousand thousands million millions billion billions
    hundred hundreds dozen dozens times less more fewer greater or and pi minus plus over half per
    inverse factorial root roots degrees radians""".split())


def _strip_words(s: str, allowed, leading: bool) -> str:
    rx = re.compile(rf"^{_SEP}({_WORD}){_SEP}" if leading else rf"{_SEP}({_WORD}){_SEP}$")
    while True:
        m = rx.search(s)
        if not m or not allowed(m.group(1).lower()):
            return s
        s = s[m.end():] if leading else s[: m.start()]


def sentence_answers(ans: str) -> list[str]:
    """The math inside a boxed sentence: "Answer $9$", "The final answer is 34",
    "\text{Therefore } x \geq 5 \text{ is the solution.}" -> ["9"], ["34"], ["x \geq 5"].

    Only introducing words before the math and unit-like words after it are dropped, never words
    between two pieces of math, and never in a sentence that negates ("x is not 5")."""
    if len(ans) > 300:
        return []
    plain = _TEXT_WRAP_RE.sub(lambda m: " " + m.group(1) + " ", ans)
    if not re.search(_WORD, re.sub(r"\$[^$]*\$", " ", plain)) or _NEGATION_RE.search(plain):
        return []
    out = []
    phrase = _phrase_answer(plain)
    if phrase:
        out.append(phrase)
    envs = [next(g for g in m.groups() if g is not None) for m in _MATH_ENV_RE.finditer(plain)]
    if len(envs) == 1:
        out.append(envs[0])
    core = _strip_words(plain, lambda w: w in _INTRO_WORDS, leading=True)
    core = _strip_words(core, lambda w: w not in _VALUE_WORDS, leading=False)
    core = _clean(core)
    if core and core != ans and not re.search(_WORD, re.sub(r"\$[^$]*\$|\\[A-Za-z]+", " ", core)):
        out.append(core)
    return [c for c in dict.fromkeys(_clean(c) for c in out) if c]


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


_FINAL_PHRASE_RE = re.compile(r"final\s+answer|最终答案|réponse\s+finale", re.IGNORECASE)


def _text_after_last_box(text: str) -> str:
    last = None
    for m in _BOX_RE.finditer(text):
        last = m
    got = _box_at(text, last) if last is not None else None
    return text[got[0]:] if got is not None else ""


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
    text = prepare_response(response, config)

    if config.answer_tag and "<answer>" in text:
        blocks = _ANSWER_BLOCK_RE.findall(text)
        if blocks:
            block = blocks[-1]
            boxed = boxed_answer(block) if config.boxed else None
            if boxed is not None:
                return Extraction(_clean(boxed), "answer_tag")
            phrase = _phrase_answer(block) if config.answer_phrases else None
            ans = phrase if phrase is not None else _clean(block)
            if ans is not None:
                return Extraction(ans, "answer_tag")

    if config.boxed:
        boxed = boxed_answer(text)
        if boxed is not None:
            # "... \\boxed{255} ... Final Answer: The final answer is $10,455$.": boxes of
            # intermediate results, then the final answer stated after them.
            after = _text_after_last_box(text) if config.answer_phrases else ""
            if _FINAL_PHRASE_RE.search(after):
                ans = _phrase_answer(after)
                if ans:
                    return Extraction(ans, "phrase")
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


def answer_candidates(response: str, config: ExtractionConfig = ExtractionConfig()) -> list[str]:
    """The extracted final answer, then readings of that same answer: the math of a boxed
    sentence ("\\boxed{The final answer is 34}" -> "34")."""
    return readings(extract_answer(response, config))


def readings(ext: Extraction) -> list[str]:
    """``ext.answer`` and the other readings of it (see ``answer_candidates``)."""
    if ext.answer is None:
        return []
    return [ext.answer] + [c for c in sentence_answers(ext.answer) if c != ext.answer]
