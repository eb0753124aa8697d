"""cli/evaluate.py on a checkpoint converted by MindSpeed-LLM (no convert_meta.json / hf_config/):
with --hf-config-dir it gives the samples of the original HF directory; without, a clear refusal."""
import json
import os

import pytest

from tests.convert.legacy_lib import as_mindspeed_llm
from tests.evaluation.eval_testlib import save_tiny_qwen2, one_thread  # noqa: F401
from tests.evaluation.test_evaluate_e2e import CLI_FLAGS, read_samples

FLAGS = [*CLI_FLAGS, "--max-problems", "2", "--max-tokens", "8"]  # the later flag wins: a short run


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from mindspeed_rl.models.convert import hf_to_mcore

    root = tmp_path_factory.mktemp("tiny_legacy")
    hf = save_tiny_qwen2(str(root / "hf"))
    hf_to_mcore(hf, str(root / "mcore"), quiet=True)
    return {"hf": hf, "legacy": as_mindspeed_llm(str(root / "mcore"), str(root / "legacy"), release=True)}


def test_cli_evaluates_a_legacy_checkpoint_with_hf_config_dir(model_dirs, tmp_path, capsys):
    from cli.evaluate import main

    assert main(["--model", model_dirs["hf"], "--output-dir", str(tmp_path / "hf"), *FLAGS]) == 0
    assert main(["--model", model_dirs["legacy"], "--hf-config-dir", model_dirs["hf"],
                 "--output-dir", str(tmp_path / "legacy"), *FLAGS]) == 0
    assert "converting Megatron checkpoint" in capsys.readouterr().out
    a, b = read_samples(tmp_path / "hf"), read_samples(tmp_path / "legacy")
    assert len(a) == 4 and [r["response"] for r in a] == [r["response"] for r in b]
    report = json.loads((tmp_path / "legacy" / "report.json").read_text())
    assert report["settings"]["model"]["source"] == "legacy"
    assert report["settings"]["model"]["iteration"] == "release"


def test_cli_refuses_a_legacy_checkpoint_without_hf_config_dir(model_dirs, tmp_path, capsys):
    from cli.evaluate import main

    assert main(["--model", model_dirs["legacy"], "--output-dir", str(tmp_path / "x"), *FLAGS]) == 2
    err = capsys.readouterr().err
    assert model_dirs["legacy"] in err and "--hf-config-dir" in err
    assert not os.path.exists(tmp_path / "x" / "samples.jsonl")
