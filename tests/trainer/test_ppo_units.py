"""The PPO pieces of the trainer (trainer/ppo.py) and the critic part of a run checkpoint's check."""
import json
import shutil

import pytest
import torch

from mindspeed_rl.algorithms import compute_gae, scores_to_token_rewards
from mindspeed_rl.config import load_config
from mindspeed_rl.trainer import ppo


def _batch():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    scores = torch.tensor([1.0, 0.0, 1.0])
    values = torch.tensor([[0.2, 0.4, 0.6, 9.0], [0.1, -0.2, 9.0, 9.0], [0.5, 0.5, 0.5, 0.5]])
    return scores, values, mask


def test_gae_wrapper_follows_rl_config():
    scores, values, mask = _batch()
    rl = load_config("ppo_tiny_cpu", ["rl_config.lam=0.9", "rl_config.whiten_advantages=false"]).rl_config
    adv, ret = ppo.gae(rl, scores, values, mask)
    want_adv, want_ret = compute_gae(scores_to_token_rewards(scores, mask), values, mask, 1.0, 0.9)
    assert torch.equal(adv, want_adv) and torch.equal(ret, want_ret)
    rl.whiten_advantages = True
    white, _ = ppo.gae(rl, scores, values, mask)
    valid = white[mask.bool()]
    assert abs(float(valid.mean())) < 1e-6 and float(valid.std()) == pytest.approx(1.0, rel=1e-4)


def test_warmup_and_critic_metrics():
    rl = load_config("ppo_tiny_cpu", ["rl_config.critic_warmup=2"]).rl_config
    assert [ppo.actor_trains(rl, it) for it in (1, 2, 3)] == [False, False, True]
    _, values, mask = _batch()
    m = ppo.critic_metrics({"vf_loss": 0.5}, values, values, mask)
    assert m["critic/vf_loss"] == 0.5 and m["critic/explained_var"] == pytest.approx(1.0)
    returns = torch.full_like(values, 1.0) * mask + values * 0.0
    returns[0, 0] = 0.0  # non-constant returns
    m = ppo.critic_metrics({}, torch.zeros_like(values), returns, mask)
    assert m["critic/explained_var"] < 1.0 and m["critic/values_mean"] == 0.0


def test_damaged_critic_shard_in_a_run_checkpoint_is_named(tmp_path):
    from mindspeed_rl.trainer.resume_check import checkpoint_problem

    it = tmp_path / "iter_0000002"
    for part in ("actor", "critic"):
        engine = it / part / "iter_0000002"
        engine.mkdir(parents=True)
        (it / part / "latest_checkpointed_iteration.txt").write_text("2")
        (engine / "engine_meta.json").write_text(json.dumps({"tp": 1, "pp": 1, "dp": 1}))
        torch.save({"model": {"w": torch.zeros(256)}}, engine / "rank_tp00_pp000_dp000.pt")
    (it / "run_state.json").write_text(json.dumps({"iteration": 2, "sampler": {}}))
    assert checkpoint_problem(tmp_path, 2) is None
    shard = it / "critic" / "iter_0000002" / "rank_tp00_pp000_dp000.pt"
    shard.write_bytes(shard.read_bytes()[:-300])
    assert str(shard) in checkpoint_problem(tmp_path, 2)
    shutil.rmtree(it / "critic" / "iter_0000002")
    assert "critic" in checkpoint_problem(tmp_path, 2)
