"""A tiny world for the reliability tests, built once per session in seconds: a BPE tokenizer and a
Qwen2 model trained/initialised here, and a preprocessed prompt dataset."""
from pathlib import Path

import pytest

from tests.reliability.world import MODEL, write_rows


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory) -> Path:
    """A directory holding a 512-token byte-level BPE with Qwen's chat markup."""
    from mindspeed_rl.data import load_template
    from mindspeed_rl.demo.assets import train_tokenizer

    work = tmp_path_factory.mktemp("tiny_tok")
    template = load_template("qwen_r1")
    texts = [template.render(f"What is {i} + {i}?") + f"<answer>{2 * i}</answer>" for i in range(40)]
    train_tokenizer(texts, work / "hf", vocab_size=512)
    return work / "hf"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory, tiny_tokenizer) -> Path:
    """``hf/`` (tokenizer + random tiny Qwen2 whose vocab is the tokenizer's) and ``data/train``."""
    import shutil

    import torch

    from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint

    work = tmp_path_factory.mktemp("tiny_world")
    shutil.copytree(tiny_tokenizer, work / "hf")
    vocab = len(__import__("json").loads((work / "hf" / "tokenizer.json").read_text())["model"]["vocab"])
    write_random_hf_checkpoint(str(work / "hf"), tiny_qwen2_config(vocab_size=vocab, **MODEL), torch.float32)
    write_rows(work / "train.jsonl", n=8)
    preprocess(PreprocessConfig(input=str(work / "train.jsonl"), handler="flat",
                                map_keys={"prompt": "problem", "response": "answer"}, template="qwen_r1",
                                tokenizer_name_or_path=str(work / "hf"), output_prefix=str(work / "data" / "train"),
                                max_prompt_length=0, progress=False), log=lambda *a, **k: None)
    return work
