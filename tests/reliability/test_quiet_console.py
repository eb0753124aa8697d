"""Workers filter the third-party warnings once (megatron-core's Apex/TE fall-backs, deprecations);
our own warnings still show, and MINDSPEED_RL_SHOW_WARNINGS=1 shows everything."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import warnings
from mindspeed_rl.workers.worker_group import BaseWorker
BaseWorker("actor", 0, 1)  # what every Ray worker runs first
import megatron.core.models.gpt.gpt_layer_specs  # warns: Apex is not installed (CPU)
from mindspeed_rl.config import mindspeed_compat
warnings.warn_explicit("ours stays", UserWarning, mindspeed_compat.__file__, 1, module="mindspeed_rl.config.mindspeed_compat")
"""


def _stderr(show: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINDSPEED_RL_SHOW_WARNINGS": show}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_worker_console_is_quiet():
    pytest.importorskip("megatron.core")
    quiet, loud = _stderr("0"), _stderr("1")
    assert "Apex is not installed" in loud  # the warning really fires here, so the filter is what hides it
    assert "Apex is not installed" not in quiet and "Transformer Engine" not in quiet
    assert "ours stays" in quiet
