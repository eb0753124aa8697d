"""A new policy loss is one registered function, selected by name from the run YAML.

What this proves (nothing outside ``mindspeed_rl.algorithms`` is edited; the loss lives here):

* registering a function in ``POLICY_LOSSES`` makes its name valid for ``rl_config.policy_loss``
  (an unregistered name is refused before launch, naming the key);
* the config room carries the name into the loss config, and one engine training step at TP1
  runs with it: the registered function is called on every micro-batch, and the step differs
  from the built-in loss exactly as the math says (this surrogate has half the gradient of the
  clipped one at ratio 1, so the gradient norm is half, and the weights move).
"""
import pytest
import torch

from mindspeed_rl.algorithms import POLICY_LOSSES, PolicyLossOutput
from mindspeed_rl.config import ConfigError, load_config
from mindspeed_rl.config.components import megatron_engine_config, policy_loss_config
from mindspeed_rl.testing import run_distributed

pytest.importorskip("megatron.core")
pytestmark = pytest.mark.dist

NAME = "sigmoid_ratio"
CALLS = {"n": 0}


@POLICY_LOSSES.register(NAME)
def sigmoid_ratio_policy_loss(log_prob, old_log_prob, advantages, response_mask, config) -> PolicyLossOutput:
    """``-A * 2 sigmoid(log r)``: equals ``-A`` at ratio 1 like PPO's clip, with half its gradient."""
    CALLS["n"] += 1
    log_ratio = log_prob - old_log_prob
    loss = -advantages * 2.0 * torch.sigmoid(log_ratio)
    none = torch.zeros_like(response_mask, dtype=torch.bool)
    return PolicyLossOutput(loss, none, none, log_ratio.detach())


OVERRIDES = ["rl_config.use_kl_in_reward=true", "rl_config.entropy_coeff=0.0", "actor_config.clip_grad=1000.0",
             "actor_config.micro_batch_size=2", "actor_config.load=''"]


def _batch() -> dict:
    g = torch.Generator().manual_seed(11)
    n, s, r = 4, 12, 5
    mask = torch.ones(n, r, dtype=torch.long)
    mask[1, 3:] = 0
    return {"input_ids": torch.randint(2, 200, (n, s), generator=g), "attention_mask": torch.ones(n, s, dtype=torch.long),
            "response_mask": mask, "advantages": torch.randn(n, r, generator=g) * mask}


def one_step_world(rank, world_size, engine_cfg, loss_cfgs):
    """One train_batch per loss config, each from the same random initial weights."""
    from mindspeed_rl.algorithms import grpo_loss
    from mindspeed_rl.engine import MegatronEngine
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config

    out = []
    for loss_cfg in loss_cfgs:
        engine = MegatronEngine(tiny_qwen2_config(num_hidden_layers=2), engine_cfg)
        before = {k: v.clone() for k, v in engine.export_hf_weights()}
        calls = CALLS["n"]
        metrics = engine.train_batch(_batch(), grpo_loss(loss_cfg))
        moved = max((v - before[k]).abs().max().item() for k, v in engine.export_hf_weights())
        out.append({"metrics": metrics, "calls": CALLS["n"] - calls, "moved": moved})
    return out


def test_unregistered_name_is_refused_before_launch():
    with pytest.raises(ConfigError) as info:
        load_config("grpo_tiny_cpu", ["rl_config.policy_loss=sigmoid_ratios"])
    assert info.value.keys == ["rl_config.policy_loss"] and f"did you mean {NAME!r}" in str(info.value)


def test_registered_loss_selected_from_yaml_trains_one_step():
    run = load_config("grpo_tiny_cpu", [f"rl_config.policy_loss={NAME}", *OVERRIDES])
    custom = policy_loss_config(run)
    assert custom.policy_loss == NAME
    builtin = policy_loss_config(load_config("grpo_tiny_cpu", OVERRIDES))
    assert builtin.policy_loss == "vanilla"
    engine_cfg = megatron_engine_config(run, "actor", total_steps=1)

    (res,) = run_distributed(one_step_world, 1, engine_cfg, [custom, builtin], timeout=300)
    mine, theirs = res
    assert mine["calls"] == 2 and theirs["calls"] == 0  # two micro-batches of 2 rows, only when selected
    assert mine["moved"] > 0 and mine["metrics"]["num_optimizer_steps"] == 1.0
    # same loss value at ratio 1, half the gradient
    assert mine["metrics"]["pg_loss"] == pytest.approx(theirs["metrics"]["pg_loss"], rel=1e-6)
    assert mine["metrics"]["grad_norm"] == pytest.approx(0.5 * theirs["metrics"]["grad_norm"], rel=1e-5)
