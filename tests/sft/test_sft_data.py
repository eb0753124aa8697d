"""SFT data: the loss mask covers the assistant tokens only (a multi-turn chat row, checked token by
token against the template's own rendering), prompt/response rows end with the end-of-turn token,
too-long rows are refused naming file and row (all counted) or cut when told, bad rows are named."""
import json

import pytest

from mindspeed_rl.data import load_template
from mindspeed_rl.sft.config import SFTDataConfig
from mindspeed_rl.sft.data import (SFTDataError, collate, conversation_segments, encode_row, load_examples,
                                   step_rows)
from tests.paths import FIXTURES

CHAT = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "It is 5."},
        {"role": "user", "content": "And 4 + 4?"},
        {"role": "assistant", "content": "<think> 4 + 4 = 8 </think> \\boxed{8}"}]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(FIXTURES / "qwen2_tokenizer"))


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_chat_row_learns_assistant_tokens_only(tokenizer):
    template = load_template("qwen")
    segments = conversation_segments(template, CHAT)
    assert "".join(t for t, _ in segments) == template.render(CHAT, add_generation_prompt=False)
    ex = encode_row({"messages": CHAT}, SFTDataConfig(), template, tokenizer, "x row 0")
    learned = tokenizer.decode([t for t, m in zip(ex.response_ids, ex.loss_mask) if m])
    assert learned == "It is 5.<|im_end|><think> 4 + 4 = 8 </think> \\boxed{8}<|im_end|>"
    not_learned = tokenizer.decode(ex.prompt_ids + [t for t, m in zip(ex.response_ids, ex.loss_mask) if not m])
    assert "What is 2 + 3?" in not_learned and "And 4 + 4?" in not_learned and "It is 5" not in not_learned
    # the prompt ends exactly where the first assistant reply starts (its header included)
    assert tokenizer.decode(ex.prompt_ids).endswith("<|im_start|>assistant\n")
    # the collated batch: a contiguous response span (locates it), loss_mask inside it
    batch = collate([ex], tokenizer.pad_token_id or 0)
    assert int(batch["response_mask"].sum()) == len(ex.response_ids) == int(batch["attention_mask"].sum()) - len(ex.prompt_ids)
    assert batch["loss_mask"][0, :len(ex.loss_mask)].tolist() == ex.loss_mask


def test_prompt_response_row_is_rendered_like_a_rollout(tokenizer):
    template = load_template("qwen_r1")
    ex = encode_row({"prompt": "What is 1 + 1?", "response": "<think> 1 + 1 = 2 </think> \\boxed{2}"},
                    SFTDataConfig(), template, tokenizer, "x row 0")
    assert ex.prompt_ids == tokenizer.encode(template.render("What is 1 + 1?"), add_special_tokens=False)
    assert tokenizer.decode(ex.response_ids).endswith("\\boxed{2}<|im_end|>") and all(ex.loss_mask)


def test_too_long_rows_refused_naming_file_and_row(tokenizer, tmp_path):
    rows = [{"prompt": "hi", "response": "short"}, {"prompt": "hi", "response": "word " * 200},
            {"prompt": "hi", "response": "ok"}, {"prompt": "hi", "response": "more " * 300}]
    path = _write(tmp_path / "train.jsonl", rows)
    cfg = SFTDataConfig(train_path=path, template="qwen", seq_length=64)
    with pytest.raises(SFTDataError) as err:
        load_examples(path, cfg, tokenizer)
    msg = str(err.value)
    assert "2 row(s)" in msg and f"{path} row 1" in msg and f"{path} row 3" in msg and "row 0" not in msg
    assert "data.truncate=true" in msg and "data.seq_length=64" in msg


def test_truncate_cuts_at_the_end(tokenizer, tmp_path):
    rows = [{"prompt": "hi", "response": "short"}, {"prompt": "hi", "response": "word " * 200}]
    path = _write(tmp_path / "train.jsonl", rows)
    cfg = SFTDataConfig(train_path=path, template="qwen", seq_length=64, truncate=True)
    short, cut = load_examples(path, cfg, tokenizer)
    assert len(cut) == 64 and len(short) < 64
    full = encode_row(rows[1], cfg, load_template("qwen"), tokenizer, "")
    assert cut.response_ids == full.response_ids[:64 - len(full.prompt_ids)] and all(cut.loss_mask)
    # a prompt that leaves no room for a learned token is refused even with truncate
    long_prompt = _write(tmp_path / "p.jsonl", [{"prompt": "word " * 100, "response": "x"}])
    with pytest.raises(SFTDataError, match="p.jsonl row 0: the prompt alone"):
        load_examples(long_prompt, SFTDataConfig(template="qwen", seq_length=64, truncate=True), tokenizer)


def test_bad_rows_are_named(tokenizer, tmp_path):
    path = _write(tmp_path / "bad.jsonl", [{"prompt": "hi", "response": "a"}, {"question": "hi"}])
    with pytest.raises(SFTDataError, match=r"bad.jsonl row 1: no \['prompt', 'response'\]"):
        load_examples(path, SFTDataConfig(template="qwen"), tokenizer)
    path = _write(tmp_path / "noasst.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(SFTDataError, match="noasst.jsonl row 0: the conversation has no assistant turn"):
        load_examples(path, SFTDataConfig(template="qwen"), tokenizer)


def test_parquet_rows(tokenizer, tmp_path):
    import pandas as pd

    path = str(tmp_path / "train.parquet")
    pd.DataFrame([{"prompt": "hi", "response": "a"}, {"prompt": "yo", "response": "b"}]).to_parquet(path)
    assert len(load_examples(path, SFTDataConfig(template="qwen"), tokenizer)) == 2


def test_step_rows_cover_each_epoch_once_and_depend_on_seed_and_step_only():
    steps = [step_rows(10, 4, seed=7, step=s) for s in range(5)]  # 20 rows = exactly 2 epochs
    flat = [r for s in steps for r in s]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert step_rows(10, 4, seed=7, step=3) == steps[3] and step_rows(10, 4, seed=8, step=0) != steps[0]
