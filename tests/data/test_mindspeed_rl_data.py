"""MindSpeed-RL's dataset YAML loads in our preprocessor as published, and ``preprocess_data.py
deepscaler`` (positional) works like ``--config-name deepscaler``: the same rows give the same bytes."""
import os
import subprocess
import sys

import pytest

from tests.paths import FIXTURES, ROOT
from mindspeed_rl.config.errors import ConfigError
from mindspeed_rl.data.mindspeed_dataset_config import translate

CLI = str(ROOT / "cli" / "preprocess_data.py")
MINDSPEED_DATASET = FIXTURES / "mindspeed_rl" / "configs" / "datasets" / "deepscaler.yaml"
ROWS = FIXTURES / "data" / "deepscaler_flat20.json"  # DeepScaleR's flat problem/answer rows
TOKENIZER = FIXTURES / "qwen2_tokenizer"


def _run(args, cwd):
    return subprocess.run([sys.executable, CLI, *args], cwd=cwd, env=dict(os.environ), capture_output=True, text=True,
                          timeout=300)


def _bins(prefix):
    return {part: open(f"{prefix}_{part}.bin", "rb").read() for part in ("prompt", "label")}


def test_positional_name_and_mindspeed_rl_yaml_give_the_same_dataset(tmp_path):
    sys.path.insert(0, str(ROOT / "cli"))
    from preprocess_data import _positional_config

    assert _positional_config(["p", "deepscaler", "workers=1"]) == ["p", "--config-name", "deepscaler", "workers=1"]
    assert _positional_config(["p", "--config-name", "deepscaler"]) == ["p", "--config-name", "deepscaler"]
    common = [f"input={ROWS}", f"tokenizer_name_or_path={TOKENIZER}", "workers=1"]
    positional = _run(["deepscaler", *common, "map_keys.prompt=problem", "map_keys.response=answer",
                       "output_prefix=out/positional", "progress=false"], tmp_path)
    assert positional.returncode == 0, positional.stderr
    theirs = _run([str(MINDSPEED_DATASET), *common, "output_prefix=out/theirs"], tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    assert "written: 20" in theirs.stdout
    for note in ("handler_name=R1AlpacaStyleInstructionHandler is renamed: now handler=flat",
                 "prompt_type is renamed: now template=qwen_r1", "dataset_additional_keys=['labels'] is not needed",
                 "tokenizer_type is not needed", "log_interval is not needed"):
        assert note in theirs.stderr, note
    assert _bins(tmp_path / "out" / "theirs") == _bins(tmp_path / "out" / "positional")


def test_unsupported_handler_and_extra_columns_are_refused():
    with pytest.raises(ConfigError, match="handler_name"):
        translate({"handler_name": "AlpacaStylePairwiseHandler"})
    with pytest.raises(ConfigError, match=r"columns \['difficulty'\] are not carried"):
        translate({"handler_name": "R1AlpacaStyleInstructionHandler", "dataset_additional_keys": ["labels", "difficulty"]})
    data = {"prompt_type": "qwen_r1", "map_keys": {"prompt": "problem", "query": "", "response": "answer", "system": ""}}
    translate(data)
    assert data == {"template": "qwen_r1", "map_keys": {"prompt": "problem", "query": None, "response": "answer",
                                                         "system": None}}
