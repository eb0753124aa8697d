import json
import os

import pyarrow.parquet as pq
import pytest

from tests.paths import FIXTURES
from mindspeed_rl.data import PromptDataset, load_template
from mindspeed_rl.data.preprocess import PreprocessConfig, PreprocessError, preprocess
from mindspeed_rl.data.readers import InputError
from mindspeed_rl.data.handlers import HandlerError

TOK_DIR = str(FIXTURES / "qwen2_tokenizer")
DATA = FIXTURES / "data"
IM_START = 151644


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOK_DIR)


def run(tmp_path, **kw):
    cfg = PreprocessConfig(tokenizer_name_or_path=TOK_DIR, output_prefix=str(tmp_path / "out" / "ds"),
                           progress=False, **kw)
    return preprocess(cfg, log=lambda *_: None)


def check_every_row(prefix, tok, messages, answers, template="qwen_r1"):
    ds = PromptDataset(prefix)
    t = load_template(template)
    gen_ids = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
    assert len(ds) == len(answers)
    for i, item in enumerate(ds):
        text = tok.decode(item.prompt_ids.tolist(), skip_special_tokens=False)
        assert text == t.render(messages[i])
        assert item.prompt_ids[0] == IM_START and text.startswith("<|im_start|>system")
        assert item.prompt_ids[-len(gen_ids):].tolist() == gen_ids and text.endswith("<|im_start|>assistant\n")
        # the ids are what the reference tokenizer gives for that text
        assert item.prompt_ids.tolist() == tok.encode(text, add_special_tokens=False)
        assert item.label == answers[i]
        assert item.index == i
    return ds


def test_deepscaler_chat_parquet(tmp_path, tok):
    meta = run(tmp_path, input=str(DATA / "deepscaler_sample40.parquet"))
    rows = pq.read_table(DATA / "deepscaler_sample40.parquet").to_pylist()
    ds = check_every_row(str(tmp_path / "out" / "ds"), tok, [r["prompt"] for r in rows],
                         [r["reward_model"]["ground_truth"] for r in rows])
    assert meta["counts"]["rows_written"] == 40 and meta["rejects_by_reason"] == {}
    assert ds.stop_words == ["<|im_end|>", "<|endoftext|>"]
    assert len(meta["config_hash"]) == 64 and meta["tokenizer"]["special_tokens"]["<|im_start|>"] == IM_START
    assert sorted(os.listdir(tmp_path / "out")) == ["ds_label.bin", "ds_label.idx", "ds_meta.json",
                                                     "ds_prompt.bin", "ds_prompt.idx"]


def test_math500_flat_jsonl(tmp_path, tok):
    run(tmp_path, input=str(DATA / "math500_sample30.jsonl"), handler="flat",
        map_keys={"prompt": "problem", "response": "answer"})
    rows = [json.loads(line) for line in open(DATA / "math500_sample30.jsonl")]
    check_every_row(str(tmp_path / "out" / "ds"), tok, [r["problem"] for r in rows], [r["answer"] for r in rows])


def test_flat_deepscaler_json_through_chat_handler_map_keys(tmp_path, tok):
    run(tmp_path, input=str(DATA / "deepscaler_flat20.json"), map_keys={"prompt": "problem", "response": "answer"})
    rows = json.load(open(DATA / "deepscaler_flat20.json"))
    check_every_row(str(tmp_path / "out" / "ds"), tok, [r["problem"] for r in rows], [r["answer"] for r in rows])


def test_gsm8k_with_two_workers_and_qwen_template(tmp_path, tok):
    run(tmp_path, input=str(DATA / "gsm8k_sample20.jsonl"), handler="gsm8k", template="qwen", workers=2, chunk_size=3)
    rows = [json.loads(line) for line in open(DATA / "gsm8k_sample20.jsonl")]
    check_every_row(str(tmp_path / "out" / "ds"), tok, [r["question"] for r in rows],
                    [r["answer"].split("####")[-1].strip() for r in rows], template="qwen")


def test_glob_and_datasets_dir_inputs(tmp_path, tok):
    import datasets

    src = [json.loads(line) for line in open(DATA / "math500_sample30.jsonl")]
    for k in range(3):
        with open(tmp_path / f"part{k}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in src[k * 10:(k + 1) * 10])
    meta = run(tmp_path, input=str(tmp_path / "part*.jsonl"), handler="flat")
    assert meta["counts"]["rows_written"] == 30 and len(meta["source"]["files"]) == 3
    assert [PromptDataset(str(tmp_path / "out" / "ds"))[i].label for i in range(30)] == [r["answer"] for r in src]
    datasets.Dataset.from_list(src).save_to_disk(str(tmp_path / "hf"))
    meta = run(tmp_path, input=str(tmp_path / "hf"), handler="flat")
    assert PromptDataset(str(tmp_path / "out" / "ds"))[29].label == src[29]["answer"]


def _bad_rows(tmp_path):
    good = [{"problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(16)]
    lines = [json.dumps(r) for r in good]
    lines += [
        json.dumps({"problem": "", "answer": "1"}),  # 16 empty_prompt
        json.dumps({"problem": ["x"], "answer": "1"}),  # 17 non_string_prompt
        json.dumps({"problem": "q"}),  # 18 missing_answer
        json.dumps({"problem": "long " * 500, "answer": "1"}),  # 19 prompt_too_long
        "{not json",  # 20 invalid_row
        json.dumps({"problem": "inject <|im_end|> here", "answer": "1"}),  # 21 special_token_in_text
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rejects_over_fraction_fail_and_publish_nothing(tmp_path):
    path = _bad_rows(tmp_path)
    with pytest.raises(PreprocessError, match=r"(?s)6 of 22 rows rejected.*prompt_too_long: 1"):
        run(tmp_path, input=str(path), handler="flat", max_prompt_length=256)
    out = sorted(os.listdir(tmp_path / "out"))
    assert out == ["ds_rejects.jsonl"], out  # no dataset, no temp files; the rejects list is kept
    rejects = [json.loads(line) for line in open(tmp_path / "out" / "ds_rejects.jsonl")]
    assert [(r["index"], r["reason"]) for r in rejects] == [
        (16, "empty_prompt"), (17, "non_string_prompt"), (18, "missing_answer"), (19, "prompt_too_long"),
        (20, "invalid_row"), (21, "special_token_in_text")]


def test_rejects_under_fraction_are_counted(tmp_path):
    path = _bad_rows(tmp_path)
    meta = run(tmp_path, input=str(path), handler="flat", max_prompt_length=256, max_reject_fraction=0.5)
    assert meta["counts"]["rows_read"] == 22 and meta["counts"]["rows_written"] == 16
    assert meta["rejects_by_reason"] == {"empty_prompt": 1, "non_string_prompt": 1, "missing_answer": 1,
                                         "prompt_too_long": 1, "invalid_row": 1, "special_token_in_text": 1}
    ds = PromptDataset(str(tmp_path / "out" / "ds"))
    assert [ds[i].label for i in range(16)] == [str(i + 1) for i in range(16)]


def test_bad_config_fails_before_work(tmp_path):
    with pytest.raises(HandlerError, match=r"map_keys.response='final_answer'.*columns are"):
        run(tmp_path, input=str(DATA / "math500_sample30.jsonl"), handler="flat", map_keys={"response": "final_answer"})
    with pytest.raises(InputError, match="missing.parquet.*no such file"):
        run(tmp_path, input=str(tmp_path / "missing.parquet"))
    with pytest.raises(InputError, match="deepseek_r1_distill"):
        run(tmp_path, input=str(DATA / "deepscaler_sample40.parquet"), template="deepseek_r1_distill")
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_incomplete_dataset_is_not_readable(tmp_path):
    run(tmp_path, input=str(DATA / "gsm8k_sample20.jsonl"), handler="gsm8k")
    os.remove(tmp_path / "out" / "ds_meta.json")
    with pytest.raises(Exception, match="not a complete preprocessed dataset"):
        PromptDataset(str(tmp_path / "out" / "ds"))
