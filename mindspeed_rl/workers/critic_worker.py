"""The PPO critic on devices of its own: the policy's architecture with a value head
(``MegatronEngineConfig.output="values"``), trained with the clipped value loss."""
from __future__ import annotations

import os

from mindspeed_rl.workers.worker_group import BaseWorker

CRITIC_DIR = "critic"  # its engine checkpoint inside a run checkpoint


class CriticWorker(BaseWorker):
    """One rank of the critic group. All methods are collective over the group."""

    def __init__(self, group: str, rank: int, world_size: int, env: dict | None, cfg_dict: dict):
        super().__init__(group, rank, world_size, env)  # threads: BaseWorker.place, by ranks per node
        from mindspeed_rl.config import GRPOConfig
        from mindspeed_rl.config.structured import from_dict

        self.cfg = from_dict(GRPOConfig, cfg_dict)
        self.critic = None

    def build(self, total_optimizer_steps: int):
        from transformers import AutoConfig

        from mindspeed_rl.config.components import megatron_engine_config
        from mindspeed_rl.engine import MegatronEngine
        from mindspeed_rl.platform import current_platform
        from mindspeed_rl.platform.adaptors import mindspeed_flags
        from mindspeed_rl.workers.actor_worker import check_hf_config_matches, hf_config_dir

        cfg = self.cfg
        current_platform().apply_megatron_adaptor(mindspeed_flags(cfg))  # before anything imports megatron
        hf_config = AutoConfig.from_pretrained(hf_config_dir(cfg), local_files_only=True)
        check_hf_config_matches(cfg, hf_config)
        engine_cfg = megatron_engine_config(cfg, "critic", total_steps=total_optimizer_steps)
        # the backbone from critic_config.load (a converted checkpoint at the critic's TP/PP) or the actor's
        self.critic = MegatronEngine(hf_config, engine_cfg, load=cfg.critic_config.load or cfg.actor_config.load or None)
        return self.critic.layout

    def compute_values(self, batch: dict) -> dict | None:
        out = self.critic.infer_batch(batch)
        return {"values": out["values"].cpu()} if self.critic.layout.returns_outputs else None

    def update(self, batch: dict, num_mini_batches: int, epochs: int) -> dict | None:
        from mindspeed_rl.algorithms import value_loss
        from mindspeed_rl.config.components import value_loss_config

        metrics = self.critic.train_batch(batch, value_loss(value_loss_config(self.cfg)),
                                          num_mini_batches=num_mini_batches, epochs=epochs)
        return metrics if self.rank == 0 else None

    def save(self, directory: str) -> None:
        self.critic.save_checkpoint(os.path.join(directory, CRITIC_DIR))

    def load(self, directory: str) -> int:
        return self.critic.load_checkpoint(os.path.join(directory, CRITIC_DIR))
