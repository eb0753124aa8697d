"""GRPOTrainer.step without Ray: with no KL anywhere (kl_coef 0, as DAPO and Open-Reasoner-Zero
train) the reference pass is skipped and the update gets no reference log-probs; with a KL, in the
loss or in the reward, the reference runs and its log-probs reach the update."""
import pytest
import torch

from mindspeed_rl.engine.rollout import RolloutOutput
from mindspeed_rl.trainer.dynamic_sampling import ScoredRollout


class _Worker:
    def __init__(self):
        self.calls = []

    def compute_log_probs(self, batch):
        self.calls.append("log_probs")
        return torch.full(batch["response_mask"].shape, -0.5)

    def update(self, batch, num_mini_batches, epochs):
        self.calls.append(("update", sorted(batch)))
        return {"pg_loss": 0.0, "grad_norm": 1.0, "lr": 1e-3}

    def sync_weights(self):
        self.calls.append("sync")


def _step(overrides):
    from mindspeed_rl.config import load_config
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    trainer = object.__new__(GRPOTrainer)  # no Ray: workers are stand-ins that record their calls
    trainer.cfg = load_config("grpo_tiny_cpu", ["rl_config.n_samples_per_prompt=2", "rl_config.log_rollout_logprob_diff=false",
                                                *overrides])
    trainer.pad_id, trainer.num_mini_batches, trainer.critic = 0, 1, None
    trainer.actor, trainer.ref = _Worker(), _Worker()
    outputs = [[RolloutOutput(p, [5, 6, 7][: k + 2], [-0.1] * (k + 2), "stop", k) for k in range(2)] for p in range(2)]
    scored = ScoredRollout([0, 1], [[1, 2], [3]], ["a", "b"], outputs, ["t"] * 4, [1.0, 0.0, 0.0, 1.0],
                           {"acc": [1.0, 0.0, 0.0, 1.0]}, {"timeouts": 0.0, "extraction_failures": 0.0})
    trainer.generate_and_score = lambda iteration, rows, round_, timer: scored
    trainer.step(1, [0, 1])
    return trainer


def test_no_kl_skips_the_reference_pass():
    trainer = _step(["rl_config.kl_coef=0.0"])
    assert trainer.ref.calls == []
    update = [c for c in trainer.actor.calls if c[0] == "update"]
    assert update == [("update", ["advantages", "attention_mask", "input_ids", "response_mask"])]


@pytest.mark.parametrize("overrides", [["rl_config.kl_coef=0.001"],
                                       ["rl_config.kl_coef=0.001", "rl_config.use_kl_in_reward=true"]])
def test_a_kl_runs_the_reference_pass(overrides):
    trainer = _step(overrides)
    assert trainer.ref.calls == ["log_probs"]
    (name, keys), = [c for c in trainer.actor.calls if c[0] == "update"]
    assert "ref_log_probs" in keys


def test_the_loss_needs_the_reference_only_with_a_kl_in_it():
    from mindspeed_rl.algorithms.losses import grpo_loss
    from mindspeed_rl.config import components, load_config

    for overrides, needs in [(["rl_config.kl_coef=0.0"], False), (["rl_config.kl_coef=0.001"], True),
                             (["rl_config.kl_coef=0.001", "rl_config.use_kl_in_reward=true"], False)]:
        loss = grpo_loss(components.policy_loss_config(load_config("grpo_tiny_cpu", overrides)))
        assert ("ref_log_probs" in loss.required_keys) is needs, overrides
