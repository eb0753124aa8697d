"""The export round trip: a 3-iteration GRPO run (TP2 actor, Ray, the real engine's
run checkpoint) -> mcore2hf -> the HF weights equal the actor's, the HF model's greedy output
equals the actor's rollout at that iteration, and cli/evaluate.py on the HF dir and on the run
checkpoint give identical results."""
import json
import os
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("megatron.core")

from tests.convert.test_roundtrip import cli, load_hf  # noqa: E402
from tests.trainer.tiny_run import build_assets, tiny_config  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_ray():
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "TOKENIZERS_PARALLELISM": "false"}
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def test_run_checkpoint_round_trip(local_ray, tmp_path):
    from mindspeed_rl.engine.rollout import build_rollout_engine
    from mindspeed_rl.trainer.grpo import GRPOTrainer

    assets = build_assets(tmp_path / "assets")
    ckpt = tmp_path / "ckpt"
    cfg = tiny_config(assets, [
        "megatron_training.train_iters=3", f"megatron_training.save={ckpt}", "megatron_training.save_interval=2",
        f"megatron_training.log_dir={tmp_path / 'runs'}", "rl_config.entropy_coeff=0.01",
        "rl_config.actor_resource.num_devices=2", "actor_config.tensor_model_parallel_size=2",
        f"actor_config.load={assets / 'mcore_tp2'}", "ref_config.tensor_model_parallel_size=2",
        f"ref_config.load={assets / 'mcore_tp2'}", "generate_config.infer_tensor_parallel_size=1",
    ])
    trainer = GRPOTrainer(cfg)
    try:
        trainer.fit()
        stop_ids = list(trainer.stop_ids)
        prompts = [item.prompt_ids.tolist() for item in trainer.dataset.batch(list(range(4)))]
        greedy = dict(n=1, temperature=0.0, max_tokens=24, stop_token_ids=stop_ids, seed=0, logprobs=False)
        # one prompt per call: the same batch shape as the standalone engine below
        actor_out = [trainer.generate([p], greedy)[0][0].token_ids for p in prompts]
        actor_weights = trainer.final_weights()
    finally:
        trainer.shutdown()
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text() == "3"

    # export the latest iteration, at the TP2 layout it was trained with
    hf_out = tmp_path / "hf_iter3"
    assert cli("mcore2hf", "--load-dir", ckpt, "--save-dir", hf_out, "--quiet") == 0
    exported = load_hf(hf_out)
    assert sorted(exported) == sorted(actor_weights)
    for name, t in actor_weights.items():
        torch.testing.assert_close(exported[name], t, rtol=0, atol=0, msg=name)
    init = load_hf(assets / "hf")
    assert not torch.equal(init["model.layers.0.mlp.down_proj.weight"], exported["model.layers.0.mlp.down_proj.weight"])
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (hf_out / f).is_file(), f
    gen = json.loads((hf_out / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert set(stop_ids) <= set(eos)
    # an earlier iteration is there too, and differs
    assert cli("mcore2hf", "--load-dir", ckpt, "--iteration", 2, "--save-dir", tmp_path / "hf_iter2", "--quiet") == 0
    it2 = load_hf(tmp_path / "hf_iter2")
    assert not all(torch.equal(it2[n], exported[n]) for n in exported)

    # the HF model's greedy output is the actor's
    engine = build_rollout_engine("hf", model_path=str(hf_out), dtype="float32")
    try:
        from mindspeed_rl.engine.rollout import SamplingParams

        hf_tokens = [engine.generate([p], SamplingParams(**greedy))[0][0].token_ids for p in prompts]
    finally:
        engine.shutdown()
    assert hf_tokens == actor_out
    assert any(len(t) > 3 for t in hf_tokens)

    # cli/evaluate.py: the HF dir and the run checkpoint give the same samples and numbers
    from cli.evaluate import main

    flags = ["--dataset", str(assets / "train.jsonl"), "--max-problems", "6", "--n", "2", "--max-tokens", "24",
             "--temperature", "1.0", "--top-p", "1.0", "--batch-size", "3", "--seed", "5", "--dtype", "float32"]
    keys = ["dataset.problem_key=problem", "dataset.answer_key=answer", "scorer.num_workers=0", "chart=false"]
    assert main(["--model", str(hf_out), "--output-dir", str(tmp_path / "ev_hf"), *flags, *keys]) == 0
    assert main(["--model", str(ckpt), "--output-dir", str(tmp_path / "ev_run"), *flags, *keys]) == 0
    reports = [json.loads((tmp_path / d / "report.json").read_text()) for d in ("ev_hf", "ev_run")]
    samples = [[json.loads(line)["response"] for line in open(tmp_path / d / "samples.jsonl")] for d in ("ev_hf", "ev_run")]
    assert reports[0]["metrics"] == reports[1]["metrics"]
    assert samples[0] == samples[1] and len(samples[0]) == 12
    assert reports[1]["settings"]["model"]["source"] == "run" and reports[1]["settings"]["model"]["iteration"] == 3
