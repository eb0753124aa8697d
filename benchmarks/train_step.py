"""Tokens/s of one GRPO actor update, sides interleaved in one process (A, B, A, B ...).

Two comparisons:

* ``--workload uniform`` (default): MegatronEngine vs plain transformers + torch AdamW: the same
  random Qwen2 weights, the same variable-length right-padded rows in the same micro-batches of
  rows, fp32 on both, the same torch
  thread count (one process), causal attention through torch's SDPA on both (HF's default
  ``sdpa`` without a padding mask: rows are right-padded, so it changes no real token; the engine's
  local spec runs ``engine.sdpa_attention``), the GRPO loss from ``mindspeed_rl.algorithms`` with
  global normalisers (KL loss, entropy), gradient clipping and one Adam step. Logits: the engine
  projects only the rows that predict a response token (``engine.response_logits``); transformers
  takes TRL's ``logits_to_keep`` suffix by default (``--hf-logits rows`` gives it the engine's
  row selection, ``full`` every position). Padding: the engine pads each micro-batch to its own
  longest row; transformers slices one batch padded to the call's longest row by default, as TRL
  does (``--hf-pad micro`` gives it the engine's padding: the same work on both sides).
* ``--workload mixed``: R1-Zero-like lengths (64 rows, prompts 50-500 tokens, responses
  log-normal between 10 and 1,500): the engine with fixed micro-batches padded to the call's
  longest row (as it was before; emulated here), with fixed micro-batches padded to their own
  longest row (now), and with token-budget micro-batches (dynamic batch size). Reports the padded
  fraction of the tokens computed on each side.

Throughput counts real (attended) tokens. Each side runs once to warm up, then ``--repeats``
interleaved rounds (a round times each side over as many updates as make 0.5 s, the same number on
both); the median and the spread (min-max) are printed.

    python3 benchmarks/train_step.py
    python3 benchmarks/train_step.py --hidden 256 --layers 4 --samples 32 --seq 128
    python3 benchmarks/train_step.py --workload mixed
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

import torch

from mindspeed_rl.algorithms import grpo_loss

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _empty_batch(lengths, prompts, seq: int) -> dict:
    n = len(lengths)
    width = max(int(length - p) for length, p in zip(lengths, prompts))
    return {"input_ids": torch.zeros(n, seq, dtype=torch.long), "attention_mask": torch.zeros(n, seq, dtype=torch.long),
            "response_mask": torch.zeros(n, width, dtype=torch.long)}


def _fill(batch: dict, prompts, resps, vocab: int, g: torch.Generator) -> dict:
    n, width = batch["response_mask"].shape
    for i in range(n):
        t = int(prompts[i] + resps[i])
        batch["input_ids"][i, :t] = torch.randint(2, vocab, (t,), generator=g)
        batch["attention_mask"][i, :t] = 1
        batch["response_mask"][i, : int(resps[i])] = 1
    rmask = batch["response_mask"]
    batch["advantages"] = torch.randn(n, width, generator=g) * rmask
    batch["ref_log_probs"] = (torch.randn(n, width, generator=g) * 0.1 - 5.0) * rmask
    return batch


def uniform_batch(vocab: int, n: int, seq: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(seq // 8, seq // 3, (n,), generator=g)
    resp = torch.randint(seq // 4, seq - seq // 3, (n,), generator=g)
    return _fill(_empty_batch((prompt + resp).tolist(), prompt.tolist(), seq), prompt, resp, vocab, g)


def mixed_batch(vocab: int, n: int = 64, seed: int = 0) -> dict:
    """Prompts uniform in 50-500 tokens, responses log-normal clipped to 10-1,500 (median ~200)."""
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(50, 501, (n,), generator=g)
    resp = torch.exp(torch.randn(n, generator=g) * 1.0 + math.log(200)).round().clamp(10, 1500).long()
    seq = int((prompt + resp).max())
    return _fill(_empty_batch((prompt + resp).tolist(), prompt.tolist(), seq), prompt, resp, vocab, g)


def hf_logits(model, ids, att, response_mask, mode: str):
    """Logits at the response positions ``[b, R, V]`` the way ``mode`` says: ``full`` (every position,
    then picked), ``suffix`` (``logits_to_keep``, as TRL does: the last positions covering every
    response) or ``rows`` (the lm_head on the response rows' hidden states only, the engine's way)."""
    from mindspeed_rl.engine.batch import response_positions

    pos = response_positions(att, response_mask)
    if mode == "rows":
        hidden = model.model(ids, use_cache=False).last_hidden_state
        picked = hidden.gather(1, pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        return model.lm_head(picked), pos
    keep = 0 if mode == "full" else ids.shape[1] - int(pos.min())  # 0: every position
    logits = model(ids, use_cache=False, logits_to_keep=keep).logits
    shift = ids.shape[1] - logits.shape[1]
    return logits.gather(1, (pos - shift).unsqueeze(-1).expand(-1, -1, logits.shape[-1])), pos


def hf_update(model, opt, batch, loss_cfg, mbs: int, clip: float, logits_mode: str = "suffix",
              pad: str = "call") -> None:
    """The same update with transformers: micro-batched forward/backward, global normalisers; each
    micro-batch cut to the call's longest row (``pad="call"``, one padded batch sliced, as TRL does)
    or to its own (``"micro"``, what the engine does)."""
    from mindspeed_rl.algorithms import compute_grpo_loss, compute_loss_normalizers, entropy_from_logits
    norm = compute_loss_normalizers(batch["response_mask"])
    opt.zero_grad(set_to_none=True)
    n = batch["input_ids"].shape[0]
    longest = int(batch["attention_mask"].sum(-1).max())
    for s in range(0, n, mbs):
        mb = {k: v[s:s + mbs] for k, v in batch.items()}
        if pad == "micro":
            longest = int(mb["attention_mask"].sum(-1).max())
        ids, att = mb["input_ids"][:, :longest], mb["attention_mask"][:, :longest]
        # Rows are right-padded and attention is causal, so padding never reaches a real token: no
        # attention mask (the engine passes none either; a mask would take HF's slower masked SDPA
        # path), and no KV cache (a training forward does not need one).
        sel, pos = hf_logits(model, ids, att, mb["response_mask"], logits_mode)
        sel = sel.float()
        labels = ids.gather(1, pos + 1)
        logp = torch.log_softmax(sel, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        loss, _ = compute_grpo_loss(logp, mb["advantages"], mb["response_mask"], loss_cfg,
                                    ref_log_prob=mb["ref_log_probs"], entropy=entropy_from_logits(sel),
                                    normalizers=norm)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def pad_to_call_longest(engine) -> None:
    """Make ``engine`` cut fixed micro-batches the way it did before (every one padded to the call's
    longest row): the "before" side of the mixed workload."""
    from mindspeed_rl.engine import batch as B

    def micro_batches(batch, max_tokens, micro_batch_size):
        mbs = micro_batch_size or engine.config.micro_batch_size
        micro = B.split_micro_batches(B.trim_to_longest(batch), mbs)
        n = batch["input_ids"].shape[0]
        return micro, [torch.arange(i * mbs, min((i + 1) * mbs, n)) for i in range(len(micro))]

    engine._micro_batches = micro_batches


def padded_fraction(engine, batch: dict) -> float:
    """Share of the tokens the engine's update computes that are padding."""
    from mindspeed_rl.engine.batch import padded_token_count

    micro, _ = engine._micro_batches(batch, engine.config.max_tokens_per_micro_batch, None)
    computed, real = padded_token_count(micro)
    return 1.0 - real / computed


def interleave(sides: dict, repeats: int, min_sample_s: float = 0.5) -> dict:
    """Warm each side up once, then time them in turn ``repeats`` times; seconds per update per side.

    A sample runs the same number of updates on every side, enough for the faster side's warm-up
    to last ``min_sample_s``: a 30 ms update timed once is mostly scheduler noise."""
    warm = []
    for fn in sides.values():
        t = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t)
    per_sample = max(1, math.ceil(min_sample_s / max(min(warm), 1e-6)))
    times = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t = time.perf_counter()
            for _ in range(per_sample):
                fn()
            times[name].append((time.perf_counter() - t) / per_sample)
    return times


def report(times: dict, tokens: int) -> None:
    for name, ts in times.items():
        rates = sorted(tokens / t for t in ts)
        print(f"{name:34s}: {statistics.median(rates):10.0f} tokens/s  (spread {rates[0]:.0f}-{rates[-1]:.0f}; "
              f"median {statistics.median(ts) * 1e3:.1f} ms/update)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=["uniform", "mixed"], default="uniform")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--samples", type=int, default=16, help="rows (uniform workload)")
    p.add_argument("--seq", type=int, default=64, help="row width (uniform workload)")
    p.add_argument("--micro-batch-size", type=int, default=4)
    p.add_argument("--max-tokens-per-micro-batch", type=int, default=4096, help="token budget (mixed workload)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hf-pad", choices=["call", "micro"], default="call",
                   help="transformers' micro-batches padded to the call's longest row (one padded batch "
                        "sliced, as TRL does; default) or each to its own longest row (the engine's way)")
    p.add_argument("--hf-logits", choices=["full", "suffix", "rows"], default="suffix",
                   help="where transformers computes logits: every position, logits_to_keep's suffix (TRL's "
                        "way, default) or the response rows only (the engine's way)")
    args = p.parse_args()

    import torch.distributed as dist
    import transformers

    from mindspeed_rl.algorithms import PolicyLossConfig
    from mindspeed_rl.engine import MegatronEngine
    from mindspeed_rl.engine.config import MegatronEngineConfig
    from mindspeed_rl.models.convert import hf_to_mcore
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
    from mindspeed_rl.utils.net import free_port

    torch.set_num_threads(args.threads)
    heads = max(args.hidden // 16, 2)
    seq = args.seq if args.workload == "uniform" else 2048
    cfg = tiny_qwen2_config(hidden_size=args.hidden, num_hidden_layers=args.layers, vocab_size=args.vocab,
                            intermediate_size=args.hidden * 3 // 2 * 2, num_attention_heads=heads,
                            num_key_value_heads=max(heads // 2, 1), max_position_embeddings=max(seq, 128))
    batch = (uniform_batch(cfg["vocab_size"], args.samples, args.seq) if args.workload == "uniform"
             else mixed_batch(cfg["vocab_size"]))
    tokens = int(batch["attention_mask"].sum())
    loss_cfg = PolicyLossConfig(kl_loss_coef=0.01, entropy_coeff=0.001)
    loss = grpo_loss(loss_cfg)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, mg_dir = os.path.join(tmp, "hf"), os.path.join(tmp, "mg")
        write_random_hf_checkpoint(hf_dir, cfg, torch.float32, seed=1)
        hf_to_mcore(hf_dir, mg_dir, quiet=True)

        def engine(**kw):
            engine_cfg = MegatronEngineConfig(micro_batch_size=args.micro_batch_size, params_dtype="fp32", lr=1e-5,
                                              clip_grad=1.0, **kw)
            return MegatronEngine(hf_dir, engine_cfg, load=mg_dir)

        print(f"model: hidden={args.hidden} layers={args.layers} vocab={args.vocab}; {args.workload} workload: "
              f"{batch['input_ids'].shape[0]} rows, {tokens} real tokens; {args.threads} threads; "
              f"median of {args.repeats} interleaved rounds after a warm-up")
        if args.workload == "uniform":
            model = transformers.Qwen2ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
            eng = engine()
            times = interleave({
                f"transformers + AdamW ({args.hf_logits} logits, {args.hf_pad} padding)": lambda: hf_update(
                    model, opt, batch, loss_cfg, args.micro_batch_size, 1.0, args.hf_logits, args.hf_pad),
                f"MegatronEngine (micro-batch {args.micro_batch_size})": lambda: eng.train_batch(batch, loss),
            }, args.repeats)
        else:
            before, fixed = engine(), engine()
            pad_to_call_longest(before)
            budget = engine(max_tokens_per_micro_batch=args.max_tokens_per_micro_batch)
            print(f"padded share of tokens computed: micro-batches of {args.micro_batch_size} padded to the call's "
                  f"longest row (before) {padded_fraction(before, batch):.1%}, to their own "
                  f"{padded_fraction(fixed, batch):.1%}, token budget {args.max_tokens_per_micro_batch} "
                  f"{padded_fraction(budget, batch):.1%}")
            times = interleave({
                f"engine, micro-batch {args.micro_batch_size}, call's longest (before)":
                    lambda: before.train_batch(batch, loss),
                f"engine, micro-batch {args.micro_batch_size}, own longest": lambda: fixed.train_batch(batch, loss),
                f"engine, token budget {args.max_tokens_per_micro_batch}": lambda: budget.train_batch(batch, loss),
            }, args.repeats)
    report(times, tokens)
    (a, ta), *others = times.items()
    for b, tb in others:
        ratios = sorted(x / y for x, y in zip(ta, tb))
        print(f"ratio {b} / {a} (tokens/s, per round): median {statistics.median(ratios):.2f}, "
              f"spread {ratios[0]:.2f}-{ratios[-1]:.2f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
