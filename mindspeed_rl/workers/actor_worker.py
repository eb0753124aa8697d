"""The hybrid actor worker: a Megatron actor (and, colocated, the reference) plus a rollout engine
on the same device. Phases take turns on the device: the actor's state is parked in host memory
while the rollout engine is awake, and the rollout engine sleeps while the actor trains."""
from __future__ import annotations

import os
from typing import Any

import torch

from mindspeed_rl.workers.worker_group import BaseWorker, set_worker_threads  # noqa: F401 - re-exported


def hf_config_dir(cfg) -> str:
    return cfg.model.hf_config_dir or cfg.megatron_training.tokenizer_name_or_path


def output_log_probs(engine, batch: dict) -> dict | None:
    """The engine's log-probs of ``batch`` from the rank that returns outputs, else None; as CPU
    tensors, since the driver has no device."""
    out = engine.infer_batch(batch)
    return {"log_probs": out["log_probs"].cpu()} if engine.layout.returns_outputs else None


def check_hf_config_matches(cfg, hf_config) -> None:
    """The HF config the engines build from must be the architecture the run config validated."""
    from mindspeed_rl.config.errors import ConfigError, Problem

    m = cfg.model
    pairs = [
        ("hidden_size", m.hidden_size, hf_config.hidden_size),
        ("num_layers", m.num_layers, hf_config.num_hidden_layers),
        ("num_attention_heads", m.num_attention_heads, hf_config.num_attention_heads),
        ("num_query_groups", m.num_query_groups, getattr(hf_config, "num_key_value_heads", hf_config.num_attention_heads)),
        ("ffn_hidden_size", m.ffn_hidden_size, hf_config.intermediate_size),
        ("tie_word_embeddings", m.tie_word_embeddings, bool(getattr(hf_config, "tie_word_embeddings", False))),
    ]
    problems = [Problem(f"model.{key}", mine, f"the HF config in {hf_config_dir(cfg)} says {theirs}",
                        f"set model.{key}={theirs} or point model.hf_config_dir at the right model")
                for key, mine, theirs in pairs if mine != theirs]
    if problems:
        raise ConfigError(problems)


class ActorRolloutWorker(BaseWorker):
    """One rank of the actor group (see module doc). All methods are collective over the group."""

    def __init__(self, group: str, rank: int, world_size: int, env: dict | None, cfg_dict: dict,
                 with_reference: bool):
        super().__init__(group, rank, world_size, env)  # threads: BaseWorker.place, by ranks per node
        from mindspeed_rl.config import GRPOConfig
        from mindspeed_rl.config.structured import from_dict

        self.cfg = from_dict(GRPOConfig, cfg_dict)
        self.with_reference = with_reference
        self.actor = self.ref = self.rollout = None

    # ---- set-up ----------------------------------------------------------------------
    def build(self, total_optimizer_steps: int) -> dict[str, Any]:
        from transformers import AutoConfig

        from mindspeed_rl.config.components import megatron_engine_config
        from mindspeed_rl.engine import MegatronEngine
        from mindspeed_rl.engine.rollout.parallel_plan import plan_rollout_parallel
        from mindspeed_rl.platform import current_platform

        from mindspeed_rl.platform.adaptors import mindspeed_flags

        cfg = self.cfg
        current_platform().apply_megatron_adaptor(mindspeed_flags(cfg))  # before anything imports megatron
        hf_dir = hf_config_dir(cfg)
        hf_config = AutoConfig.from_pretrained(hf_dir, local_files_only=True)
        check_hf_config_matches(cfg, hf_config)
        gen = cfg.generate_config
        self.plan = plan_rollout_parallel(self.world_size, cfg.actor_config.tensor_model_parallel_size,
                                          cfg.actor_config.pipeline_model_parallel_size, gen.infer_tensor_parallel_size)
        # The rollout engine comes first and goes to sleep at once, so that it never starts next to
        # resident training state (vLLM sizes its KV cache from the memory free at start-up).
        self.rollout = self._build_rollout(hf_dir, hf_config)
        self.rollout.sleep()
        actor_cfg = megatron_engine_config(cfg, "actor", total_steps=total_optimizer_steps)
        self.actor = MegatronEngine(hf_config, actor_cfg, load=cfg.actor_config.load or None)
        if self.with_reference:
            ref_cfg = megatron_engine_config(cfg, "ref")
            self.ref = MegatronEngine(hf_config, ref_cfg, load=cfg.ref_config.load or cfg.actor_config.load or None)
        self.sync_weights()
        return self.actor.layout

    def _build_rollout(self, hf_dir: str, hf_config):
        """The rollout engine with the architecture only: the weights come from the actor
        (sync_weights). Either backend takes all prompts and answers with all results."""
        from mindspeed_rl.engine.rollout import build_rollout_engine

        gen = self.cfg.generate_config
        if gen.backend == "hf":
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_config(hf_config, dtype=getattr(torch, gen.dtype))
            return build_rollout_engine("hf", model=model, max_batch_size=gen.max_num_seqs, plan=self.plan, rank=self.rank)
        return build_rollout_engine(
            "vllm",
            model_path=hf_dir,
            load_format="dummy",
            plan=self.plan,
            rank=self.rank,
            gpu_memory_utilization=gen.gpu_memory_utilization,
            kv_cache_memory_bytes=gen.kv_cache_memory_mb * 2**20 if gen.kv_cache_memory_mb else None,
            max_model_len=gen.max_model_len,
            max_num_seqs=gen.max_num_seqs,
            max_num_batched_tokens=gen.max_num_batched_tokens,
            dtype=gen.dtype,
            enforce_eager=gen.enforce_eager,
            enable_prefix_caching=gen.enable_prefix_caching,
            seed=self.cfg.megatron_training.seed,
            bucket_bytes=gen.weight_sync_bucket_mb * 2**20,
        )

    # ---- phases ----------------------------------------------------------------------
    def sync_weights(self) -> float:
        """Push the actor's current weights into the rollout engine (no disk); returns GB moved."""
        moved = {"bytes": 0}

        def counted():
            for name, tensor in self.actor.export_hf_weights():
                moved["bytes"] += tensor.numel() * tensor.element_size()
                yield name, tensor

        a = self.cfg.actor_config
        if a.offload_grads or a.offload_optimizer:
            # free the update's grads and optimizer state before the rollout's weights wake up
            # (they stay parked through generate(), which brings everything back at its end)
            self.actor.offload(params=False, grads=a.offload_grads, optimizer=a.offload_optimizer)
        # Only the rollout's weights wake up for loading; its KV cache sleeps until generate().
        self.rollout.wake_up(tags=["weights"])
        self.rollout.update_weights(counted())
        return moved["bytes"] / 1e9

    def generate(self, prompt_token_ids: list[list[int]], sampling_kwargs: dict) -> tuple[int, list] | None:
        """Generate for ALL the iteration's prompts: every rank gets them all, the rollout engine
        shares them out over its replicas and hands every rank all results in prompt order.
        Returns ``(0, outputs)`` on rank 0 and None elsewhere."""
        from mindspeed_rl.engine.rollout import SamplingParams

        a = self.cfg.actor_config
        parked = a.offload_params or a.offload_grads or a.offload_optimizer
        if parked:
            self.actor.offload(params=a.offload_params, grads=a.offload_grads, optimizer=a.offload_optimizer)
            if self.ref is not None:
                self.ref.offload(params=True, grads=False, optimizer=False)
        self.rollout.wake_up()
        try:
            outputs = self.rollout.generate(prompt_token_ids, SamplingParams(**sampling_kwargs))
            return (0, outputs) if self.rank == 0 else None
        finally:
            self.rollout.sleep()
            if parked:
                self.actor.onload()
                if self.ref is not None:
                    self.ref.onload()

    def compute_log_probs(self, batch: dict, which: str = "actor") -> dict | None:
        engine = self.actor if which == "actor" else self.ref
        return output_log_probs(engine, batch)

    def update(self, batch: dict, num_mini_batches: int, epochs: int) -> dict:
        """One actor update with the run's loss (``rl_config``'s policy loss, KL and entropy)."""
        from mindspeed_rl.algorithms.losses import grpo_loss
        from mindspeed_rl.config.components import policy_loss_config

        loss = grpo_loss(policy_loss_config(self.cfg))
        metrics = self.actor.train_batch(batch, loss, num_mini_batches=num_mini_batches, epochs=epochs)
        return metrics if self.rank == 0 else None

    def save(self, directory: str) -> None:
        self.actor.save_checkpoint(os.path.join(directory, "actor"))

    def load(self, directory: str) -> int:
        step = self.actor.load_checkpoint(os.path.join(directory, "actor"))
        self.sync_weights()
        return step

    def export_state(self) -> dict | None:
        """Full HF-named weights (rank 0 only), for tests and final export."""
        weights = {n: t.clone() for n, t in self.actor.export_hf_weights()}
        return weights if self.rank == 0 else None

    def shutdown(self) -> None:
        if self.rollout is not None:
            self.rollout.shutdown()
