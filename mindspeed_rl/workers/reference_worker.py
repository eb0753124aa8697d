"""The reference policy on devices of its own: the same Megatron engine, forward only."""
from __future__ import annotations

from mindspeed_rl.workers.worker_group import BaseWorker


class ReferenceWorker(BaseWorker):
    def __init__(self, group: str, rank: int, world_size: int, env: dict | None, cfg_dict: dict):
        super().__init__(group, rank, world_size, env)  # threads: BaseWorker.place, by ranks per node
        from mindspeed_rl.config import GRPOConfig
        from mindspeed_rl.config.structured import from_dict

        self.cfg = from_dict(GRPOConfig, cfg_dict)
        self.ref = None

    def build(self) -> dict:
        from transformers import AutoConfig

        from mindspeed_rl.config.components import megatron_engine_config
        from mindspeed_rl.engine import MegatronEngine
        from mindspeed_rl.platform import current_platform
        from mindspeed_rl.workers.actor_worker import check_hf_config_matches, hf_config_dir

        from mindspeed_rl.platform.adaptors import mindspeed_flags

        cfg = self.cfg
        current_platform().apply_megatron_adaptor(mindspeed_flags(cfg))  # before anything imports megatron
        hf_config = AutoConfig.from_pretrained(hf_config_dir(cfg), local_files_only=True)
        check_hf_config_matches(cfg, hf_config)
        self.ref = MegatronEngine(hf_config, megatron_engine_config(cfg, "ref"),
                                  load=cfg.ref_config.load or cfg.actor_config.load or None)
        return self.ref.layout

    def compute_log_probs(self, batch: dict, which: str = "ref") -> dict | None:
        from mindspeed_rl.workers.actor_worker import output_log_probs

        return output_log_probs(self.ref, batch)
