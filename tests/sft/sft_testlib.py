"""A tiny model, tokenizer and SFT rows for the SFT tests (built from configs, nothing downloaded)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from mindspeed_rl.demo.assets import arithmetic_problems, reference_response, train_tokenizer
from mindspeed_rl.sft.config import SFTConfig, SFTDataConfig, SFTModelConfig, SFTTrainConfig, check_sft_config
from mindspeed_rl.testing.tiny import SMALL, save_tiny_qwen2


def tiny_hf_dir(root: Path) -> str:
    """A random tiny Qwen2 with a ~300-token BPE of the demo's texts (Qwen chat markup)."""
    out = root / "hf"
    if (out / "config.json").is_file():
        return str(out)
    from mindspeed_rl.data import load_template

    template = load_template("qwen_r1")
    rows = arithmetic_problems(0, 60)
    texts = [template.render(r["problem"]) + reference_response(r, s) for r in rows for s in range(3)]
    tok = train_tokenizer(texts, out, vocab_size=300)
    save_tiny_qwen2(str(out), tokenizer=tok, **SMALL)
    return str(out)


def write_rows(path: Path, count: int = 12, seed: int = 0) -> str:
    """Prompt/response rows of different lengths, and one chat row with two assistant turns."""
    rows = [{"prompt": r["problem"], "response": reference_response(r, i % 3)}
            for i, r in enumerate(arithmetic_problems(seed, count - 1))]
    rows.append({"messages": [{"role": "user", "content": "What is 1 + 2?"},
                              {"role": "assistant", "content": "<think> 1 + 2 = 3 </think> <answer> \\boxed{3} </answer>"},
                              {"role": "user", "content": "And 2 + 2?"},
                              {"role": "assistant", "content": "<answer> \\boxed{4} </answer>"}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def sft_config(hf_dir: str, train_path: str, save: str, **train) -> SFTConfig:
    train = {"global_batch_size": 4, "micro_batch_size": 2, "train_iters": 2, "lr": 1e-2, "lr_warmup_fraction": 0.0,
             "params_dtype": "fp32", "label_smoothing": 0.1, "lr_decay_style": "constant", **train}
    cfg = SFTConfig(model=SFTModelConfig(load=hf_dir),
                    data=SFTDataConfig(train_path=train_path, val_path=train_path, template="qwen", seq_length=128),
                    train=SFTTrainConfig(**train), save=save, log_dir=os.path.join(save, "logs"),
                    export_hf_dir=os.path.join(save, "hf"))
    return check_sft_config(cfg)


def read_weights(hf_dir: str) -> dict:
    from safetensors.torch import load_file

    return load_file(os.path.join(hf_dir, "model.safetensors"))


def read_metrics(save: str) -> list[dict]:
    with open(os.path.join(save, "logs", "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]
