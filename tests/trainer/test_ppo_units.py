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


def test_hand_made_batch_feeds_actor_and_critic_the_right_tensors():
    """Scores on the last valid token, values V(s_t) per response token, right padding: with
    gamma = lam = 1 every valid token's advantage is score - V_t and its return is the score;
    padding gets neither; the critic's batch carries the values as old values and the train mask."""
    rl = load_config("ppo_tiny_cpu", ["rl_config.whiten_advantages=false"]).rl_config
    scores, values, mask = _batch()
    adv, ret = ppo.gae(rl, scores, values, mask)
    want_adv = torch.tensor([[0.8, 0.6, 0.4, 0.0], [-0.1, 0.2, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    want_ret = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert torch.allclose(adv, want_adv, atol=1e-6) and torch.allclose(ret, want_ret, atol=1e-6)
    batch = {"input_ids": torch.zeros(3, 6, dtype=torch.long), "attention_mask": torch.ones(3, 6, dtype=torch.long)}
    train_mask = mask.clone()
    train_mask[1] = 0  # e.g. a truncated response filtered out
    cb = ppo.critic_batch(batch, train_mask, values, ret)
    assert cb["old_values"] is values and cb["returns"] is ret and cb["response_mask"] is train_mask
    # whitened: zero mean, unit std over valid tokens; the order of the advantages is kept
    rl.whiten_advantages = True
    white, ret_w = ppo.gae(rl, scores, values, mask)
    assert torch.equal(ret_w, ret)  # whitening touches the advantages only, not the critic's target
    m = mask.bool()
    assert torch.equal(torch.argsort(white[m]), torch.argsort(adv[m])) and (white[~m] == 0).all()


def test_value_head_starts_small_next_to_the_scores():
    """The head's first values on final-norm outputs (RMS ~1 per channel) have a std of about
    1/sqrt(hidden), well under the 0/1 score's: a head drawn at std 1/sqrt(hidden) (values of
    std ~1) made the critic's explained variance start at -4 and the advantages mostly noise."""
    from mindspeed_rl.engine.value_head import ValueHead, init_std

    hidden = 128  # the CPU demo model's
    head = ValueHead(hidden, torch.float32, seed=1234)
    assert float(head.weight.detach().std()) == pytest.approx(1.0 / (hidden + 1), rel=0.15)
    assert init_std(hidden) == 1.0 / (hidden + 1)
    assert float(head.bias.detach().abs().max()) == 0.0
    h = torch.randn(4096, hidden, generator=torch.Generator().manual_seed(0))
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True))  # RMSNorm output with unit weight
    with torch.no_grad():
        values, _ = head(h)
    assert float(values.std()) < 0.15  # a Bernoulli(0.3) score has std 0.46
