"""engine.fast_paths: megatron-core's local-spec linear layers through torch's F.linear at TP1
equal megatron's own autograd functions (output and every parameter gradient, fp32, 1e-6), and
megatron's path still runs at TP2 and with a deferred-wgrad buffer."""
import pytest

from mindspeed_rl.testing import run_distributed
from tests.engine import linear_ranks


@pytest.mark.dist
@pytest.mark.parametrize("world", [1, 2])
def test_fast_linear_equals_megatron_linear(world):
    for rank, r in enumerate(run_distributed(linear_ranks.compare, world, timeout=240)):
        assert r["scale"] > 0.1 and r["grad_scale"] > 1e-3, (rank, r)
        assert r["out"] <= 1e-6 and r["grad"] <= 1e-6, (rank, r)
        assert r["megatron_calls"] == 0, (rank, r)  # megatron's functions never call F.linear
        # TP1: both linears of the pair took F.linear; TP2: neither (the TP collectives are needed)
        assert r["fast_calls"] == (2 if world == 1 else 0), (rank, r)
        # a wgrad-deferral buffer: megatron's path (one F.linear: the fast reference it is compared to)
        assert r["deferred_calls"] == (1 if world == 1 else 0) and r["deferred_out"] <= 1e-6, (rank, r)
