"""After an actor update at TP1, TP2, PP2 and TP2 x PP2, the HF rollout engine
holds the actor's weights bit for bit, and its log-probs equal the Megatron engine's (fp32, CPU)."""
import pytest
import torch

from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.random_checkpoint import write_random_hf_checkpoint
from mindspeed_rl.testing import run_distributed
from tests.engine import engine_ranks as R
from tests.rollout import sync_ranks

pytest.importorskip("megatron.core")
pytestmark = pytest.mark.dist

LAYOUTS = {"tp1": (1, 1), "tp2": (2, 1), "pp2": (1, 2), "tp2xpp2": (2, 2)}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sync")
    write_random_hf_checkpoint(str(root / "hf"), R.model_config(), torch.float32, seed=9)
    return root


@pytest.mark.parametrize("name", [n if n != "tp2xpp2" else pytest.param(n, marks=pytest.mark.slow) for n in LAYOUTS])
def test_rollout_weights_and_logprobs_after_update(hf_dir, name):
    tp, pp = LAYOUTS[name]
    mg = hf_dir / f"mg_{name}"
    hf_to_mcore(str(hf_dir / "hf"), str(mg), tp=tp, pp=pp, quiet=True)
    results = run_distributed(sync_ranks.update_then_sync, tp * pp, str(hf_dir / "hf"), str(mg), tp, pp, timeout=420)
    for rank, r in enumerate(results):
        assert r["mismatched"] == [], f"rank {rank}: rollout weights differ from the actor's: {r['mismatched']}"
        assert r["moved"] > 0.5 * r["num_tensors"], "the update did not change the weights; the check would be vacuous"
        assert r["teacher_forced_diff"] < 1e-5, r
        assert r["sampled_diff"] < 1e-4 and r["sampled_tokens"] > 0, r
        assert r["temperature_diff"] < 1e-4, r
