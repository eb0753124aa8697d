"""The critic engine (``output="values"``, engine.value_head) on CPU gloo ranks:

* its values equal a transformers computation: the Qwen2 backbone's last hidden state (same HF
  weights) through the same seeded [hidden, 1] head, read where each response token is predicted;
* one value-loss update (2 mini-batches, clip active) gives the same values afterwards, metrics
  and grad norm at TP1, TP2, PP2 and DP2 and with 1, 2 and 4 micro-batches and a token budget;
* save / load of a critic resumes bit-identically; a policy loss on a critic is refused.
"""
import pytest
import torch

from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.random_checkpoint import write_random_hf_checkpoint
from mindspeed_rl.testing import run_distributed

from tests.engine import critic_worlds as CW
from tests.engine import engine_ranks as R

pytest.importorskip("megatron.core")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.dist
TIMEOUT = 420
SEED = 1234  # engine_ranks.engine_config's seed: the head's draw


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("critic")
    hf = root / "hf"
    write_random_hf_checkpoint(str(hf), R.model_config(), torch.float32, seed=3)
    dirs = {}
    for tp, pp in [(1, 1), (2, 1), (1, 2)]:
        dirs[(tp, pp)] = str(root / f"mg_tp{tp}_pp{pp}")
        hf_to_mcore(str(hf), dirs[(tp, pp)], tp=tp, pp=pp, quiet=True)
    return {"root": root, "hf": str(hf), "mg": dirs}


def hf_values(hf_dir: str, batch: dict) -> torch.Tensor:
    """transformers' backbone + the head drawn as ValueHead draws it, a loop over the tokens."""
    from mindspeed_rl.engine.value_head import ValueHead

    torch.set_num_threads(2)
    model = transformers.Qwen2ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    head = ValueHead(model.config.hidden_size, torch.float32, SEED)
    with torch.no_grad():
        hidden = model.model(batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    n, r = batch["response_mask"].shape
    out = torch.zeros(n, r)
    for i in range(n):
        p_len = int(batch["attention_mask"][i].sum() - batch["response_mask"][i].sum())
        for j in range(int(batch["response_mask"][i].sum())):
            out[i, j] = float(hidden[i, p_len - 1 + j] @ head.weight[0] + head.bias[0])
    return out


# (tp, pp, world size, micro-batching specs); 8 samples, 2 mini-batches
LAYOUTS = {
    "tp1": (1, 1, 1, [4, 2, 1, "tok24"]),
    "tp2": (2, 1, 2, [2]),
    "pp2": (1, 2, 2, [1, "tok24"]),
    "dp2": (1, 1, 2, [1]),
}


@pytest.fixture(scope="module")
def results(ckpts):
    out = {}
    for name, (tp, pp, world, specs) in LAYOUTS.items():
        out[name] = run_distributed(CW.critic_world, world, ckpts["hf"], ckpts["mg"][(tp, pp)], tp, pp, specs,
                                    timeout=TIMEOUT)[0]
    return out


def test_values_match_transformers(ckpts, results):
    batch = R.make_batch(R.model_config()["vocab_size"])
    want = hf_values(ckpts["hf"], batch)
    mask = batch["response_mask"].bool()
    for name, res in results.items():
        diff = (res["values"] - want)[mask].abs().max().item()
        assert diff <= 1e-5, f"{name}: values differ from transformers by {diff:.3g}"
        assert (res["values"][~mask] == 0).all()
    assert want[mask].std() > 1e-3  # the head is not degenerate


def test_critic_update_is_invariant_across_layouts_and_micro_batches(results):
    base = results["tp1"]["updates"][4]
    mask = R.make_batch(R.model_config()["vocab_size"])["response_mask"].bool()
    moved = (base["values_after"] - results["tp1"]["values"])[mask].abs().max().item()
    assert moved > 1e-3, "the update did not move the values"
    assert 0 < base["metrics"]["vf_clipfrac"] < 1
    for name, res in results.items():
        for spec, upd in res["updates"].items():
            m, bm = upd["metrics"], base["metrics"]
            assert m["num_optimizer_steps"] == 2
            for key in ("vf_loss", "vf_clipfrac", "vpred_mean", "grad_norm"):
                assert m[key] == pytest.approx(bm[key], rel=1e-5, abs=1e-7), f"{name} {spec}: {key}"
            diff = (upd["values_after"] - base["values_after"]).abs().max().item()
            assert diff <= 1e-5, f"{name} {spec}: values after the update differ by {diff:.3g}"


def test_critic_checkpoint_resumes_exactly(ckpts):
    res = run_distributed(CW.critic_checkpoint_world, 1, ckpts["hf"], ckpts["mg"][(1, 1)],
                          str(ckpts["root"] / "critic_ckpt"), timeout=TIMEOUT)[0]
    assert res["second"] == res["again"]
    assert torch.equal(res["plain"], res["resumed"])


def test_policy_loss_on_a_critic_and_bad_output_are_refused():
    from mindspeed_rl.engine import MegatronEngineConfig

    with pytest.raises(ValueError, match="output='logits'"):
        MegatronEngineConfig(output="logits")
    with pytest.raises(ValueError, match="sequence_parallel"):
        MegatronEngineConfig(output="values", sequence_parallel=True, tensor_model_parallel_size=2)
