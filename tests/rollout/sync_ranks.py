"""Rank function of the actor -> rollout sync acceptance test (importable by spawned ranks)."""
from __future__ import annotations

import torch

from mindspeed_rl.algorithms import grpo_loss
from mindspeed_rl.testing.tiny import hf_log_probs
from tests.engine import engine_ranks


def update_then_sync(rank, world_size, hf_dir, mg_dir, tp, pp):
    """One GRPO update on the Megatron actor, sync into a HF rollout engine on every rank, then:
    the rollout weights vs the actor's export (bitwise), teacher-forced log-probs of the rollout
    model vs the engine's (fp32), and sampled log-probs vs the engine's recomputation."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from mindspeed_rl.engine import MegatronEngine
    from mindspeed_rl.engine.rollout import SamplingParams, build_rollout_engine
    from mindspeed_rl.platform import current_platform
    from mindspeed_rl.trainer.experience import build_experience

    current_platform().apply_megatron_adaptor()
    torch.manual_seed(0)
    actor = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp), load=mg_dir)
    vocab = engine_ranks.model_config()["vocab_size"]
    batch = engine_ranks.make_batch(vocab)
    before = {k: v.clone() for k, v in actor.export_hf_weights()}
    actor.train_batch(engine_ranks.dp_rows(batch, actor), grpo_loss(engine_ranks.loss_config()), num_mini_batches=1)
    exported = {k: v.clone() for k, v in actor.export_hf_weights()}

    hf_config = AutoConfig.from_pretrained(hf_dir)
    rollout = build_rollout_engine("hf", model=AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32))
    rollout.update_weights(actor.export_hf_weights())
    state = rollout.state_dict()
    mismatched = [n for n, t in exported.items() if not torch.equal(state[n], t)]
    moved = sum(int(not torch.equal(before[n], exported[n])) for n in exported)

    # teacher-forced: HF rollout model vs Megatron engine on the same rows
    hf_lp, _ = hf_log_probs(rollout.model, batch)
    mg_lp = actor.infer_batch(batch)["log_probs"]

    # sampled: rollout log-probs vs the engine's recomputation of the same tokens
    prompts = [batch["input_ids"][i, :3].tolist() for i in range(4)]
    outs = rollout.generate(prompts, SamplingParams(n=2, max_tokens=6, seed=11, temperature=1.0))
    exp = build_experience(prompts, outs, pad_token_id=0)
    sampled = {k: exp.batch[k] for k in ("input_ids", "attention_mask", "response_mask")}
    recomputed = actor.infer_batch(sampled)["log_probs"]
    mask = exp.batch["response_mask"].bool()

    # at temperature 0.7 the rollout reports log softmax(logits / 0.7); so must the engine
    hot = rollout.generate(prompts, SamplingParams(n=2, max_tokens=6, seed=12, temperature=0.7))
    hot_exp = build_experience(prompts, hot, pad_token_id=0)
    actor.config.logit_temperature = 0.7
    hot_recomputed = actor.infer_batch({k: hot_exp.batch[k] for k in sampled})["log_probs"]
    hot_mask = hot_exp.batch["response_mask"].bool()
    return {
        "temperature_diff": float((hot_exp.batch["rollout_log_probs"] - hot_recomputed)[hot_mask].abs().max()),
        "mismatched": mismatched,
        "num_tensors": len(exported),
        "moved": moved,
        "teacher_forced_diff": float((hf_lp - mg_lp)[batch["response_mask"].bool()].abs().max()),
        "sampled_diff": float((exp.batch["rollout_log_probs"] - recomputed)[mask].abs().max()),
        "sampled_tokens": int(mask.sum()),
    }
