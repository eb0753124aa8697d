"""The accelerator acceptance script's checks that mean something on CPU; the CUDA ones skip cleanly."""
import pytest
import torch

from tests.accelerator import acceptance as A


@pytest.mark.dist
@pytest.mark.parametrize("name", A.CPU_CHECKS)
def test_cpu_parts(name):
    res = A.run_check(name, "cpu")
    assert res["ok"], res


@pytest.mark.parametrize("name", ["fp32_cuda_equals_cpu", "bf16_dtypes_and_hf"])
def test_cuda_parts(name):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device: run bash tests/accelerator/run.sh on a GPU machine")
    res = A.fp32_cuda_equals_cpu() if name == "fp32_cuda_equals_cpu" else A.run_check(name, "cuda")
    assert res["ok"], res


def test_script_skips_cleanly_without_cuda(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script runs its checks")
    import json
    import sys

    out = tmp_path / "results.json"
    monkeypatch.setattr(sys, "argv", ["acceptance.py", "--platform", "cuda", "--out", str(out)])
    assert A.main() == 0
    res = json.loads(out.read_text())
    assert res["all_passed"] is None and "no CUDA device" in res["skipped"] and res["checks"] == {}
