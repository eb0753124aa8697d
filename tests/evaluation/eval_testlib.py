"""Shared pieces of the evaluation tests: a tiny random Qwen2 model with the real Qwen2 tokenizer."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKENIZER_DIR = FIXTURES / "qwen2_tokenizer"
MATH500_SLICE = FIXTURES / "evaluation" / "math500_slice12.jsonl"
AIME24_SLICE = FIXTURES / "evaluation" / "aime24_slice4.jsonl"
GSM8K_SLICE = FIXTURES / "evaluation" / "gsm8k_slice4.jsonl"
# the scorer spec of a test reward that a random model passes about a third of the time
LENGTH_MOD3 = "tests.evaluation.eval_testlib:length_mod3"


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: a tiny model on a shared 2-core box only loses to OpenMP
    contention (about 10x slower with 2). A module opts in with an autouse fixture that requests it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def length_mod3(response: str, gold: str, extra=None) -> float:
    """A test-only 'correctness' that a random model passes about a third of the time, so pass@k
    and maj@k are not all zero and any difference between two runs' samples shows in the numbers."""
    return 1.0 if len(response) % 3 == 0 else 0.0


def save_tiny_qwen2(out_dir: str, seed: int = 0) -> str:
    """A 2-layer Qwen2 with the real tokenizer's vocabulary, saved as a HF directory (fp32)."""
    from transformers import AutoTokenizer

    from mindspeed_rl.testing import tiny

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    return tiny.save_tiny_qwen2(out_dir, seed, tokenizer=tok, max_position_embeddings=1024,
                                tie_word_embeddings=True, initializer_range=0.5, **tiny.SMALL)


class CountingEngine:
    """Wraps a rollout engine and records every generate call's prompts."""

    def __init__(self, engine):
        self.engine = engine
        self.calls: list[list[list[int]]] = []

    def generate(self, prompt_token_ids, sampling):
        self.calls.append([list(p) for p in prompt_token_ids])
        return self.engine.generate(prompt_token_ids, sampling)

    @property
    def prompts_generated(self) -> int:
        return sum(len(c) for c in self.calls)
