"""In-memory weight sync: a live TP/PP-sharded model yields exactly the original HF tensors on every rank."""
import glob
import os

import pytest
import torch
from safetensors.torch import load_file

from mindspeed_rl.models.convert import hf_to_mcore
from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint
from mindspeed_rl.testing import run_distributed

from tests.models import mcore_ranks

pytest.importorskip("megatron.core")


@pytest.mark.dist
@pytest.mark.parametrize("tp,pp,nll,tied", [(2, 2, [1, 3], False), (2, 1, None, True)],
                         ids=["tp2pp2-uneven-untied", "tp2-tied"])
def test_iter_hf_weights_matches_checkpoint(tmp_path, tp, pp, nll, tied):
    hf = tmp_path / "hf"
    write_random_hf_checkpoint(str(hf), tiny_qwen2_config(tie_word_embeddings=tied), torch.float32, seed=5)
    src = {}
    for f in glob.glob(os.path.join(hf, "*.safetensors")):
        src.update(load_file(f))
    hf_to_mcore(str(hf), str(tmp_path / "mg"), tp=tp, pp=pp, num_layer_list=nll, quiet=True)
    per_rank = run_distributed(mcore_ranks.synced_weights, tp * pp, str(tmp_path / "mg"), 60_000, timeout=300)
    for rank, buckets in enumerate(per_rank):
        assert len(buckets) > 1, "bucketing did not split the weights"
        got = [item for b in buckets for item in b]
        names = [n for n, _ in got]
        assert len(names) == len(set(names)) and sorted(names) == sorted(src), f"rank {rank}"
        for name, t in got:
            assert torch.equal(t, src[name]), f"rank {rank}: {name}"
