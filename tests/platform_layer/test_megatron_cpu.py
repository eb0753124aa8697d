"""Megatron-core GPTModel on CPU through the platform layer at TP1, TP2, PP2
and TP2 x PP2 gives the same logits, loss and gradient norm as TP1 from the same full weights."""
import pytest
import torch

from mindspeed_rl.testing import run_distributed
from tests.platform_layer import megatron_layouts

pytest.importorskip("megatron.core")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ckpt = str(tmp_path_factory.mktemp("tp1_ckpt"))
    (result,) = run_distributed(megatron_layouts.save_reference, 1, ckpt, timeout=300)
    return ckpt, result


@pytest.mark.dist
@pytest.mark.parametrize("tp,pp", [(1, 1), (2, 1), (1, 2), (2, 2)], ids=["tp1", "tp2", "pp2", "tp2xpp2"])
def test_layout_matches_tp1(reference, tp, pp):
    ckpt, ref = reference
    results = run_distributed(megatron_layouts.run_layout, tp * pp, tp, pp, ckpt, timeout=600)
    got = [r for r in results if r is not None]
    assert len(got) == 1
    got = got[0]
    # GPTModel returns batch-first logits [b, s, vocab] (the loss below transposes them to [s, b])
    assert got["logits"].shape == ref["logits"].shape == (megatron_layouts.BATCH, megatron_layouts.SEQ, megatron_layouts.VOCAB)
    torch.testing.assert_close(got["logits"], ref["logits"], atol=1e-5, rtol=0)
    assert abs(float(got["loss"]) - float(ref["loss"])) <= 1e-5
    assert abs(got["grad_norm"] - ref["grad_norm"]) <= 1e-5 * max(1.0, ref["grad_norm"])
    # The check has teeth: logits are not trivially equal to a zero/constant model.
    assert ref["logits"].std() > 1e-3
