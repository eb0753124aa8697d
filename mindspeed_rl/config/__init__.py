"""Typed run configuration: sections as MindSpeed-RL users know them, loaded through Hydra.

``load_config("grpo_qwen25_32b", ["actor_config.lr=2e-6"])`` composes ``configs/<name>.yaml`` (with
its ``defaults`` list, e.g. ``model: qwen25_32b``), applies overrides, converts the result to
``GRPOConfig`` (unknown keys and wrong types rejected with a did-you-mean) and runs every
cross-field rule in ``validate``. Nothing starts before this returns.
"""
from mindspeed_rl.config.errors import ConfigError
from mindspeed_rl.config.loader import CONFIG_DIR, compose_dict, load_config
from mindspeed_rl.config.schema import (
    GenerateConfig,
    GRPOConfig,
    MegatronTrainingConfig,
    ModelConfig,
    ResourceConfig,
    RLConfig,
    SamplingConfig,
    WorkerConfig,
)
from mindspeed_rl.config.validate import check_inputs_exist, check_resources, validate

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "GRPOConfig",
    "GenerateConfig",
    "MegatronTrainingConfig",
    "ModelConfig",
    "RLConfig",
    "ResourceConfig",
    "SamplingConfig",
    "WorkerConfig",
    "check_inputs_exist",
    "check_resources",
    "compose_dict",
    "load_config",
    "validate",
]
