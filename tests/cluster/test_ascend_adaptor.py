"""Ascend start-up on CPU: MindSpeed's adaptor is imported before megatron, with the run config's
feature flags in sys.argv (a Ray worker's argv is Ray's), and its dummy transformer_engine does
not make the engine pick the Transformer Engine layer spec."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fixtures" / "fake_mindspeed"

SCRIPT = r"""
import json, sys
sys.argv = ["/ray/default_worker.py", "--node-ip-address=10.0.0.1", "--object-store-name=/tmp/x"]
from mindspeed_rl.config import load_config
from mindspeed_rl.platform.adaptors import apply, mindspeed_flags
from mindspeed_rl.platform.detect import PLATFORMS
from mindspeed_rl.engine import megatron_engine
cfg = load_config("grpo_qwen25_32b")
apply("npu", mindspeed_flags(cfg))
import mindspeed.megatron_adaptor as ms
import megatron.core
ms.register_dummy_te()
from mindspeed_rl.platform import detect
detect._current = PLATFORMS["cuda"]  # even on CUDA, a dummy TE module is not TE
print(json.dumps({**ms.SEEN, "te_npu": PLATFORMS["npu"].use_transformer_engine(),
                  "te_engine": megatron_engine._te_available()}))
"""


def _run(script):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(FAKE), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_mindspeed_first_with_config_flags_and_no_dummy_te():
    seen = _run(SCRIPT)
    assert seen["megatron_imported_before"] is False
    assert seen["argv"][1:] == ["--use-flash-attn", "--use-fused-rmsnorm", "--use-fused-swiglu",
                                "--use-fused-rotary-pos-emb"]
    assert seen["te_npu"] is False and seen["te_engine"] is False


def test_megatron_imported_first_is_refused():
    script = ("import megatron.core\nfrom mindspeed_rl.platform.adaptors import apply, AdaptorOrderError\n"
              "try:\n    apply('npu', [])\nexcept AdaptorOrderError as e:\n"
              "    import json; print(json.dumps(str(e)))\n")
    assert "imported before mindspeed.megatron_adaptor" in _run(script)
