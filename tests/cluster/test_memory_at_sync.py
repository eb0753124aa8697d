"""Weight sync runs with the update's grads and optimizer state off the device; the fp32 grad
buffer is freed, not copied to host; training afterwards equals a never-offloaded twin bit for bit."""
import pytest

from mindspeed_rl.testing import run_distributed


@pytest.mark.dist
def test_sync_weights_with_grads_and_optimizer_parked():
    from tests.cluster.offload_ranks import sync_with_state_parked

    out = run_distributed(sync_with_state_parked, 1, timeout=300)[0]
    assert out["grads_bytes"] > 0
    assert out["resident_at_load"] == 0, out  # nothing of grads/optimizer on the device during sync
    assert out["host"]["grads"] == 0  # the grad buffer was not copied to host memory
    assert out["host"]["optimizer"] > 0
    assert out["grads_zero_after_onload"] and out["update_identical"]
