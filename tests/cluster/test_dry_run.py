"""--dry-run: a plan and a verdict for every shipped config, fast and without devices; a plan that
does not fit the declared device memory is refused naming the phase and the knob."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mindspeed_rl.config import load_config
from mindspeed_rl.planning import plan_memory

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("grpo_*.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_shipped_config_gets_a_plan_quickly(name):
    start = time.perf_counter()
    plan = plan_memory(load_config(name))
    assert time.perf_counter() - start < 10
    text = plan.render()
    for phase in ("rollout", "log_probs", "update", "weight_sync"):
        assert phase in text
    assert "verdict:" in text and "placement:" in text


def test_cli_verdicts_and_refusal():
    def run(*args):
        return subprocess.run([sys.executable, "cli/train_grpo.py", "--config-name", "grpo_qwen25_32b", "--dry-run", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert "verdict: FITS" in ok.stdout and "node 1: ranks 8-15" in ok.stdout
    small = run("rl_config.device_memory_gb=32")
    assert small.returncode == 3 and "REFUSED" in small.stdout
    assert "phase 'update'" in small.stdout and "actor_config.micro_batch_size" in small.stdout
    resident = run("actor_config.offload_params=false", "actor_config.offload_optimizer=false",
                   "actor_config.offload_grads=false")
    assert resident.returncode == 3 and "phase 'rollout'" in resident.stdout
    assert "generate_config.gpu_memory_utilization" in resident.stdout


def test_plan_counts_match_the_model():
    # Qwen2.5-32B, TP8 x PP2: one stage of 32 layers plus embedding and output layer (vocab padded to 152576)
    cfg = load_config("grpo_qwen25_32b")
    update = next(p for p in plan_memory(cfg).phases if p.name == "update")
    m = cfg.model
    per_layer = (m.hidden_size * (m.hidden_size + 2 * 1024) + m.hidden_size + 2 * 1024 + m.hidden_size ** 2
                 + 3 * m.hidden_size * m.ffn_hidden_size)
    expected = (32 * per_layer + 2 * 152576 * m.hidden_size) / 8 + 32 * 2 * m.hidden_size + m.hidden_size
    assert update.parts["actor params"] == pytest.approx(expected * 2, rel=1e-6)
    assert update.parts["actor grads"] == pytest.approx(expected * 4, rel=1e-6)
