"""Rewards under the names MindSpeed-RL registers in ``rule_verifier.py``, with its meaning and this
suite's extraction and equivalence (``acc``). ``step`` is the same as ``reasoning_steps`` and is
renamed by the config loader."""
from __future__ import annotations

import re
from typing import Mapping

from .functions import accuracy_reward
from .registry import register_reward

# MindSpeed-RL's gate: think, then an answer block holding a \boxed{} (anything may surround them).
_BOXED_ANSWER_FORMAT = re.compile(r"<think>.*</think>.*<answer>.*\\boxed\{.*\}.*</answer>", re.DOTALL)
# DAPO scores only the end of a response (the longest MATH-500 answer has 159 characters).
_DAPO_TAIL_CHARS = 300


@register_reward("math_verify_reward")
def math_verify_reward(response: str, gold: str, extra: Mapping = None) -> float:
    """1.0 when the response is ``<think>...</think>...<answer>...\\boxed{...}...</answer>`` and the
    answer is right; else 0.0."""
    if response is None or not _BOXED_ANSWER_FORMAT.fullmatch(response):
        return 0.0
    return accuracy_reward(response, gold, extra)


@register_reward("acc_for_dapo")
def dapo_accuracy_reward(response: str, gold: str, extra: Mapping = None) -> float:
    """DAPO's accuracy: +1.0 right, -1.0 wrong, judged on the last 300 characters."""
    tail = (response or "")[-_DAPO_TAIL_CHARS:]
    return 1.0 if accuracy_reward(tail, gold, extra) == 1.0 else -1.0
