"""A brief supervised warm start on the Megatron engine (the actor's own SFT loss), so that a tiny
random model produces the think/answer format and the accuracy reward becomes learnable by GRPO."""
from __future__ import annotations

import os
import random

import torch

from mindspeed_rl.algorithms import sft_loss
from mindspeed_rl.demo.assets import reference_response


def sft_batches(prompts: list[list[int]], rows: list[dict], tokenizer, batch_size: int, seed: int,
                respond=reference_response):
    """Endless shuffled batches of prompt + reference response (+ end-of-turn token)."""
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    examples = []
    for prompt, row in zip(prompts, rows):
        for style in range(3):
            resp = tokenizer.encode(respond(row, style), add_special_tokens=False) + [end]
            examples.append((prompt, resp))
    rng = random.Random(seed)
    while True:
        rng.shuffle(examples)
        for start in range(0, len(examples) - batch_size + 1, batch_size):
            yield _to_batch(examples[start : start + batch_size], tokenizer.pad_token_id)


def _to_batch(examples, pad_id: int) -> dict:
    seq = max(len(p) + len(r) for p, r in examples)
    width = max(len(r) for _, r in examples)
    n = len(examples)
    input_ids = torch.full((n, seq), pad_id, dtype=torch.long)
    attention = torch.zeros((n, seq), dtype=torch.long)
    response_mask = torch.zeros((n, width), dtype=torch.long)
    for i, (p, r) in enumerate(examples):
        ids = p + r
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        response_mask[i, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "response_mask": response_mask}


def warm_start(hf_dir: str, mcore_dir: str, out_hf_dir: str, prompts: list[list[int]], rows: list[dict],
               steps: int, lr: float, batch_size: int, seed: int, task: str = "arith",
               lr_decay_style: str = "constant") -> list[float]:
    """SFT ``steps`` steps from ``mcore_dir`` (a converted checkpoint), save the result as a HF model.
    ``lr_decay_style`` cosine anneals to lr/20 over the steps (the long countdown warm start)."""
    from transformers import AutoConfig, AutoTokenizer

    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig
    from mindspeed_rl.platform import current_platform
    from mindspeed_rl.utils.net import free_port

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    platform = current_platform()
    platform.init_process_group(0, 1)
    platform.apply_megatron_adaptor()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    hf_config = AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    cfg = MegatronEngineConfig(params_dtype="fp32", micro_batch_size=batch_size, lr=lr, lr_decay_style=lr_decay_style,
                               min_lr=lr / 20 if lr_decay_style != "constant" else 0.0, lr_decay_steps=steps, clip_grad=1.0, seed=seed, use_distributed_optimizer=False)
    engine = MegatronEngine(hf_config, cfg, load=mcore_dir)
    losses = []
    from mindspeed_rl.demo.assets import REFERENCE_RESPONSES

    batches = sft_batches(prompts, rows, tokenizer, batch_size, seed, REFERENCE_RESPONSES[task])
    for step in range(steps):
        out = engine.train_batch(next(batches), sft_loss())
        losses.append(float(out["sft_loss"]))
        if step % 20 == 0 or step == steps - 1:
            print(f"  sft step {step + 1}/{steps}  loss {out['sft_loss']:.4f}", flush=True)
    _save_hf(engine, hf_dir, out_hf_dir)
    return losses


def _save_hf(engine, src_hf_dir: str, out_dir: str) -> None:
    """Write the engine's weights as a HF directory (safetensors + the source's config and tokenizer)."""
    from safetensors.torch import save_file

    from mindspeed_rl.models.convert import copy_side_files

    copy_side_files(src_hf_dir, out_dir)
    weights = {name: t.detach().clone().contiguous() for name, t in engine.export_hf_weights()}
    save_file(weights, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
