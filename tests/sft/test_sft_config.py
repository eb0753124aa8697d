"""The shipped SFT configs load and pass their checks; bad values are refused naming the key and
the fix, all at once; cli/train_sft.py exits 2 with the message."""
import subprocess
import sys

import pytest

from mindspeed_rl.config.errors import ConfigError
from mindspeed_rl.sft.config import SFT_CONFIG_DIR, load_sft_config, total_steps
from tests.paths import ROOT


@pytest.mark.parametrize("name", sorted(p.stem for p in SFT_CONFIG_DIR.glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_sft_config(name)
    assert cfg.world_size >= 1 and cfg.train.lr > 0


def test_published_settings():
    seven, big = load_sft_config("sft_qwen25_7b"), load_sft_config("sft_qwen25_32b")
    assert (seven.train.lr, seven.train.lr_decay_style, seven.data.seq_length, seven.train.params_dtype) == \
        (5e-5, "cosine", 16384, "bf16")
    assert (big.train.lr, big.data.seq_length, big.world_size) == (1e-5, 32768, 32)
    assert 0.03 <= seven.train.lr_warmup_fraction <= 0.1 and 0.03 <= big.train.lr_warmup_fraction <= 0.1


def test_bad_values_refused_naming_keys():
    with pytest.raises(ConfigError) as err:
        load_sft_config("sft_tiny_cpu", ["train.data_parallel_size=3", "train.max_tokens_per_micro_batch=100",
                                         "train.label_smoothing=1.5"])
    assert set(err.value.keys) == {"train.global_batch_size", "train.max_tokens_per_micro_batch", "train.label_smoothing"}
    with pytest.raises(ConfigError, match="did you mean 'train.global_batch_size'"):
        load_sft_config("sft_tiny_cpu", ["train.global_batch_sze=4"])


def test_total_steps_from_epochs():
    cfg = load_sft_config("sft_tiny_cpu", ["train.epochs=2", "train.global_batch_size=32", "train.train_iters=0"])
    assert total_steps(cfg, 100) == 7  # ceil(2 * 100 / 32)


def test_cli_exits_2_with_the_message():
    out = subprocess.run([sys.executable, "cli/train_sft.py", "--config-name", "sft_tiny_cpu", "train.lr_warmup_fraction=2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "train.lr_warmup_fraction=2" in out.stderr
