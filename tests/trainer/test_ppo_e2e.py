"""PPO with a critic end to end on CPU through Ray (actor + rollout, colocated reference, a critic
group of its own, the scorer): 2 iterations (the first only trains the critic), and a run resumed
after iteration 1 reproduces the uninterrupted one exactly, critic included."""
import os
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("megatron.core")

from mindspeed_rl.config import load_config  # noqa: E402

from tests.trainer.tiny_run import build_assets, tiny_overrides  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("tiny_ppo"))


@pytest.fixture(scope="module")
def local_ray():
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "TOKENIZERS_PARALLELISM": "false"}
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def ppo_config(work: Path, extra):
    return load_config("ppo_tiny_cpu", tiny_overrides(work, [
        "critic_config.micro_batch_size=4", "critic_config.mini_batch_size=2", "critic_config.lr=5e-4",
        f"critic_config.load={work / 'mcore_tp1'}", "rl_config.critic_warmup=1",
        # an entropy bonus gives the actor a gradient even when a random tiny model earns no reward
        "rl_config.entropy_coeff=0.01", *extra]))


def _run(cfg):
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    trainer = GRPOTrainer(cfg)
    try:
        history = trainer.fit()["history"]
        weights = trainer.final_weights()
    finally:
        trainer.shutdown()
    return history, weights


def _comparable(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith("timing/") and k != "tokens_per_second_per_device"}


def _critic_state(ckpt: Path, iteration: int) -> dict:
    files = sorted((ckpt / f"iter_{iteration:07d}" / "critic").glob("iter_*/rank_*.pt"))
    assert len(files) == 1, files
    return torch.load(files[0], weights_only=False)["model"]


def test_ppo_trains_the_critic_first_and_resumes_exactly(assets, local_ray, tmp_path):
    full_ckpt = tmp_path / "full"
    full = ppo_config(assets, ["megatron_training.train_iters=2", f"megatron_training.save={full_ckpt}",
                               "megatron_training.save_interval=2", f"megatron_training.log_dir={tmp_path / 'a'}"])
    ref_history, ref_weights = _run(full)
    assert len(ref_history) == 2
    first, second = ref_history
    for m in ref_history:
        for key in ("critic/vf_loss", "critic/vf_clipfrac", "critic/vpred_mean", "critic/grad_norm",
                    "critic/explained_var", "critic/num_optimizer_steps", "timing/values", "timing/critic_update"):
            assert key in m, key
        assert m["critic/num_optimizer_steps"] == 2
    assert "pg_loss" not in first and "timing/update" not in first  # warm-up: the actor waits
    assert "pg_loss" in second and "timing/weight_sync" in second
    assert first["critic/vpred_mean"] != second["critic/vpred_mean"]  # the critic moved

    ckpt = tmp_path / "ckpt"
    common = [f"megatron_training.save={ckpt}", "megatron_training.save_interval=1",
              f"megatron_training.log_dir={tmp_path / 'b'}"]
    part1, _ = _run(ppo_config(assets, ["megatron_training.train_iters=1", *common]))
    assert (ckpt / "iter_0000001" / "critic").is_dir()
    part2, weights = _run(ppo_config(assets, ["megatron_training.train_iters=2", *common]))
    resumed = part1 + part2
    assert len(resumed) == 2
    for it, (a, b) in enumerate(zip(ref_history, resumed), start=1):
        a, b = _comparable(a), _comparable(b)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), f"iteration {it}: {key} {a[key]} != {b[key]}"
    for name in ref_weights:
        torch.testing.assert_close(weights[name], ref_weights[name], rtol=0, atol=0, msg=name)
    want, got = _critic_state(full_ckpt, 2), _critic_state(ckpt, 2)
    assert want.keys() == got.keys() and "output_layer.weight" in want
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)
