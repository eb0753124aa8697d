"""Tokens/s of one GRPO actor update: MegatronEngine vs plain transformers + torch AdamW.

Both sides do the same work in the same process: the same random Qwen2 weights, the same batch
(variable-length right-padded rows), the same micro-batches, the GRPO loss from
``mindspeed_rl.algorithms`` with global normalisers (KL loss, entropy), gradient clipping and one
Adam step per mini-batch. Throughput counts attended (prompt + response) tokens.

    python3 benchmarks/train_step.py                 # tiny CPU model
    python3 benchmarks/train_step.py --hidden 256 --layers 4 --samples 32 --seq 128
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_batch(vocab: int, n: int, seq: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(seq // 8, seq // 3, (n,), generator=g)
    resp = torch.randint(seq // 4, seq - seq // 3, (n,), generator=g)
    width = int(resp.max())
    ids = torch.zeros(n, seq, dtype=torch.long)
    att = torch.zeros(n, seq, dtype=torch.long)
    rmask = torch.zeros(n, width, dtype=torch.long)
    for i in range(n):
        t = int(prompt[i] + resp[i])
        ids[i, :t] = torch.randint(2, vocab, (t,), generator=g)
        att[i, :t] = 1
        rmask[i, : int(resp[i])] = 1
    adv = torch.randn(n, width, generator=g) * rmask
    ref = (torch.randn(n, width, generator=g) * 0.1 - 5.0) * rmask
    return {"input_ids": ids, "attention_mask": att, "response_mask": rmask, "advantages": adv, "ref_log_probs": ref}


def hf_update(model, opt, batch, loss_cfg, mbs: int, clip: float) -> None:
    """The same update with transformers: micro-batched forward/backward, global normalisers."""
    from mindspeed_rl.algorithms import compute_grpo_loss, compute_loss_normalizers, entropy_from_logits
    from mindspeed_rl.engine.batch import response_positions

    norm = compute_loss_normalizers(batch["response_mask"])
    opt.zero_grad(set_to_none=True)
    n = batch["input_ids"].shape[0]
    longest = int(batch["attention_mask"].sum(-1).max())
    for s in range(0, n, mbs):
        mb = {k: v[s:s + mbs] for k, v in batch.items()}
        ids, att = mb["input_ids"][:, :longest], mb["attention_mask"][:, :longest]
        logits = model(ids, attention_mask=att).logits
        pos = response_positions(att, mb["response_mask"])
        sel = logits.gather(1, pos.unsqueeze(-1).expand(-1, -1, logits.shape[-1])).float()
        labels = ids.gather(1, pos + 1)
        logp = torch.log_softmax(sel, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        loss, _ = compute_grpo_loss(logp, mb["advantages"], mb["response_mask"], loss_cfg,
                                    ref_log_prob=mb["ref_log_probs"], entropy=entropy_from_logits(sel),
                                    normalizers=norm)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def engine_rank(rank, world_size, hf_dir, mg_dir, args):
    from mindspeed_rl.engine import MegatronEngine
    from mindspeed_rl.engine.config import EngineConfig
    from mindspeed_rl.algorithms import PolicyLossConfig

    torch.set_num_threads(args.threads)
    cfg = EngineConfig(micro_batch_size=args.micro_batch_size, params_dtype="fp32", lr=1e-5, clip_grad=1.0)
    engine = MegatronEngine(hf_dir, cfg, load=mg_dir)
    loss_cfg = PolicyLossConfig(kl_loss_coef=0.01, entropy_coeff=0.001)
    batch = make_batch(engine.bridge.vocab_size, args.samples, args.seq)
    engine.update(batch, loss_cfg)  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        engine.update(batch, loss_cfg)
        times.append(time.perf_counter() - t)
    return min(times), int(batch["attention_mask"].sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--micro-batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import transformers

    from mindspeed_rl.algorithms import PolicyLossConfig
    from mindspeed_rl.models.convert import hf_to_mcore
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
    from mindspeed_rl.testing import run_distributed

    torch.set_num_threads(args.threads)
    heads = max(args.hidden // 16, 2)
    cfg = tiny_qwen2_config(hidden_size=args.hidden, num_hidden_layers=args.layers, vocab_size=args.vocab,
                            intermediate_size=args.hidden * 3 // 2 * 2, num_attention_heads=heads,
                            num_key_value_heads=max(heads // 2, 1), max_position_embeddings=max(args.seq, 128))
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, mg_dir = os.path.join(tmp, "hf"), os.path.join(tmp, "mg")
        write_random_hf_checkpoint(hf_dir, cfg, torch.float32, seed=1)
        hf_to_mcore(hf_dir, mg_dir, quiet=True)

        model = transformers.Qwen2ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
        loss_cfg = PolicyLossConfig(kl_loss_coef=0.01, entropy_coeff=0.001)
        batch = make_batch(cfg["vocab_size"], args.samples, args.seq)
        tokens = int(batch["attention_mask"].sum())
        hf_update(model, opt, batch, loss_cfg, args.micro_batch_size, 1.0)  # warm-up
        hf_times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            hf_update(model, opt, batch, loss_cfg, args.micro_batch_size, 1.0)
            hf_times.append(time.perf_counter() - t)
        del model, opt

        (eng_time, eng_tokens), = run_distributed(engine_rank, 1, hf_dir, mg_dir, args, timeout=1200)
    assert eng_tokens == tokens
    hf_rate, eng_rate = tokens / min(hf_times), tokens / eng_time
    print(f"model: hidden={args.hidden} layers={args.layers} vocab={args.vocab}; batch: {args.samples} rows, "
          f"{tokens} tokens, micro-batch {args.micro_batch_size}; {args.threads} threads; best of {args.repeats}")
    print(f"transformers + AdamW : {hf_rate:10.0f} tokens/s  ({min(hf_times) * 1e3:.1f} ms/update)")
    print(f"MegatronEngine       : {eng_rate:10.0f} tokens/s  ({eng_time * 1e3:.1f} ms/update)")
    print(f"ratio engine / transformers: {eng_rate / hf_rate:.2f}")


if __name__ == "__main__":
    main()
