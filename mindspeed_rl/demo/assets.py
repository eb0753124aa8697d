"""Build the CPU demo's tokenizer, model and data (nothing is downloaded)."""
from __future__ import annotations

import json
import random
from pathlib import Path

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_STYLES = (
    "{a} + {b} = {c}",
    "{a} plus {b} is {c}",
    "add {a} and {b} to get {c}",
)


def arithmetic_problems(seed: int, count: int, max_operand: int = 9) -> list[dict]:
    """``count`` addition problems ``a + b`` (0 <= a, b <= max_operand) with their answers."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        rows.append({"id": i, "problem": f"What is {a} + {b}?", "answer": str(a + b), "a": a, "b": b})
    return rows


def reference_response(row: dict, style: int = 0) -> str:
    """A well-formed R1-style response (think, then a boxed answer): the SFT warm-start target."""
    think = THINK_STYLES[style % len(THINK_STYLES)].format(a=row["a"], b=row["b"], c=row["answer"])
    return f"<think> {think} </think> <answer> \\boxed{{{row['answer']}}} </answer>"


def countdown_reference_response(row: dict, style: int = 0) -> str:
    """A Mini-R1-style countdown response (the prompt already opened ``<think>``): the solver's
    steps, then the equation; the SFT warm-start target of the countdown demo."""
    # steps stay in the solver's (causal) order: each uses values already written
    joiner = (", ", "; ", " and ")[style % 3]
    return f" {joiner.join(row['steps'])} </think>\n<answer> {row['solution']} </answer>"


REFERENCE_RESPONSES = {"arith": reference_response, "countdown": countdown_reference_response}


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def train_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 512):
    """A byte-level BPE on the demo's texts with Qwen's special tokens and chat markup.

    Digits are split one per token (as Qwen2's tokenizer does), so numbers are composed.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_model(tokenizer, out_dir: Path, seed: int, hidden_size: int = 64, num_layers: int = 2,
                     max_position_embeddings: int = 512):
    """A randomly initialised Qwen2ForCausalLM saved as safetensors (tied embeddings, GQA, QKV bias)."""
    from mindspeed_rl.models.random_checkpoint import random_hf_model, tiny_qwen2_config

    config = tiny_qwen2_config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = random_hf_model(config, seed=seed)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return model
