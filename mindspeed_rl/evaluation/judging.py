"""Correctness and majority-vote keys of sampled responses, through the rewards room's scorer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from mindspeed_rl.rewards import ExtractionConfig, RewardScorer, extract_answer
from mindspeed_rl.rewards.normalize import normalize_latex_answer, parse_plain_number

from .choice import extract_choice
from .config import ScorerConfig


def answer_key(response: str, extraction: ExtractionConfig = ExtractionConfig()) -> Optional[str]:
    """The vote key of a response for maj@k: its extracted final answer, normalised.

    Plain numbers are keyed by exact value ("0.5", "1/2" and "\\frac{1}{2}" share a key), other
    answers by their normalised LaTeX string. ``None`` when no answer can be extracted.
    """
    extracted = extract_answer(response, extraction).answer
    if extracted is None:
        return None
    text = normalize_latex_answer(extracted)
    number = parse_plain_number(text)
    if number is not None:
        value = number.value / 100 if number.percent else number.value
        return f"num:{value}"
    return text or None


@dataclass
class Judgement:
    correct: bool
    rewards: Dict[str, float]
    extracted: Optional[str]
    key: Optional[str]


class Judge:
    """Scores responses with ``RewardScorer`` (hard timeouts, worker pool) and keys them for votes."""

    def __init__(self, cfg: ScorerConfig, stop_words: Sequence[str] = ()):
        self.cfg = cfg
        self.extraction = ExtractionConfig(stop_words=tuple(stop_words))
        self.correct_function = cfg.correct_function or cfg.functions[0]
        self._scorer = RewardScorer(functions=list(cfg.functions), num_workers=cfg.num_workers,
                                    timeout_s=cfg.timeout_s, timeout_score=0.0, extraction=self.extraction)
        self.stats = {"timeouts": 0, "errors": 0, "extraction_failures": 0}

    def judge(self, responses: Sequence[str], golds: Sequence[str]) -> List[Judgement]:
        if not responses:
            return []
        _totals, per_fn, metrics = self._scorer.score(list(responses), list(golds))
        for key in self.stats:
            self.stats[key] += int(metrics.get(key, 0))
        out = []
        choice = self.cfg.answer_format == "choice"
        for i, response in enumerate(responses):
            rewards = {name: float(values[i]) for name, values in per_fn.items()}
            if choice:  # the chosen letter is both the extracted answer and the vote key
                extracted = key = extract_choice(response)
            else:
                extracted, key = extract_answer(response, self.extraction).answer, answer_key(response, self.extraction)
            out.append(Judgement(rewards[self.correct_function] >= self.cfg.correct_threshold, rewards, extracted, key))
        return out

    def close(self) -> None:
        self._scorer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
