"""Damaged input files, a full disk, killed runs' temp files, unwritable
outputs and malformed JSON are reported naming the file and line, and never leave litter."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mindspeed_rl.data import PromptDataset
from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
from mindspeed_rl.data.readers import InputError

from tests.reliability.world import dead_pid, write_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tok_dir(tiny_tokenizer):
    return str(tiny_tokenizer)


def run(tmp_path, input_path, tok_dir, **kw):
    cfg = PreprocessConfig(input=str(input_path), handler="flat", map_keys={"prompt": "problem", "response": "answer"},
                           tokenizer_name_or_path=tok_dir, output_prefix=str(tmp_path / "out" / "ds"), progress=False,
                           **kw)
    return preprocess(cfg, log=lambda *_: None)


def test_non_utf8_row_is_rejected_with_its_line_number(tok_dir, tmp_path):
    src = tmp_path / "rows.jsonl"
    write_rows(src, n=6, bad_line=4)
    meta = run(tmp_path, src, tok_dir, max_reject_fraction=0.5)
    assert meta["counts"]["rows_written"] == 5 and meta["counts"]["rows_rejected"] == 1
    (reject,) = [json.loads(line) for line in open(meta["rejects_file"], encoding="utf-8")]
    assert reject["row_in_file"] == 3 and "line 4: not UTF-8 (byte 0xe9" in reject["detail"]
    assert len(PromptDataset(str(tmp_path / "out" / "ds"))) == 5


def test_non_utf8_json_list_is_refused_naming_the_line(tok_dir, tmp_path):
    src = tmp_path / "rows.json"
    src.write_bytes(b'[\n{"problem": "1+1?", "answer": "2"},\n{"problem": "\xff", "answer": "3"}\n]\n')
    with pytest.raises(InputError, match=r"rows\.json:3: not UTF-8 \(byte 0xff\)"):
        run(tmp_path, src, tok_dir)


def test_empty_input_is_reported_as_empty_not_as_a_missing_column(tok_dir, tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text("\n")
    with pytest.raises(InputError, match=r"empty\.jsonl is empty"):
        run(tmp_path, src, tok_dir)


def test_disk_full_cleanup_keeps_the_original_error_and_leaves_no_temp_file(tok_dir, tmp_path, monkeypatch):
    """/dev/full fails every write with ENOSPC, as a full disk does; closing the writers after the
    failure flushes their buffers and fails again."""
    from mindspeed_rl.data import indexed

    real_open = open

    def full_disk_open(path, mode="r", *a, **kw):
        if isinstance(path, str) and ".tmp" in path and path.endswith(".bin") and "w" in mode:
            f = real_open(path, mode, *a, **kw)  # the temp file exists, as on a real disk
            f.close()
            return real_open("/dev/full", mode, *a, **kw)
        return real_open(path, mode, *a, **kw)

    def failing_add_many(self, values, lengths):
        self.data_file.write(b"\0" * 100)  # buffered: fails later, when the file is closed
        raise OSError(28, "No space left on device (while writing rows)")

    monkeypatch.setattr(indexed, "open", full_disk_open, raising=False)
    monkeypatch.setattr(indexed.IndexedFileWriter, "add_many", failing_add_many)
    src = tmp_path / "rows.jsonl"
    write_rows(src)
    with pytest.raises(OSError, match="while writing rows"):
        run(tmp_path, src, tok_dir)
    assert os.listdir(tmp_path / "out") == []


def test_stale_temp_files_of_a_killed_preprocess_are_removed(tok_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    pid = dead_pid()
    stale = [out / f"ds.tmp{pid}_prompt.bin", out / f"ds.tmp{pid}_label.idx", out / f"ds_meta.json.tmp{pid}"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    live = out / f"ds.tmp{os.getppid()}_prompt.bin"  # a running writer's file is left alone
    live.write_bytes(b"x")
    src = tmp_path / "rows.jsonl"
    write_rows(src)
    logs = []
    cfg = PreprocessConfig(input=str(src), handler="flat", map_keys={"prompt": "problem", "response": "answer"},
                           tokenizer_name_or_path=tok_dir, output_prefix=str(out / "ds"), progress=False)
    preprocess(cfg, log=logs.append)
    assert not any(p.exists() for p in stale) and live.exists()
    assert any("left by a killed run" in m and f"tmp{pid}" in m for m in logs)


def test_unwritable_output_is_refused_before_work(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    src = tmp_path / "rows.jsonl"
    write_rows(src)
    cfg = PreprocessConfig(input=str(src), handler="flat", map_keys={"prompt": "problem", "response": "answer"},
                           tokenizer_name_or_path="/nonexistent/tokenizer",  # never reached
                           output_prefix=str(blocker / "sub" / "ds"), progress=False)
    with pytest.raises(InputError, match="output_prefix=.*cannot be created"):
        preprocess(cfg, log=lambda *_: None)


def test_score_refuses_non_utf8_and_empty_input_naming_the_line(tmp_path):
    bad = tmp_path / "responses.jsonl"
    bad.write_bytes(b'{"response": "\\\\boxed{2}", "answer": "2"}\n{"response": "\xc3\x28", "answer": "3"}\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [sys.executable, str(REPO / "cli" / "score.py"), "--response-field", "response", "--gold-field", "answer",
            "--output", str(tmp_path / "scored.jsonl"), "--workers", "0"]
    proc = subprocess.run(args[:2] + [str(bad)] + args[2:], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and f"{bad}:2: not UTF-8 (byte 0xc3" in proc.stderr, proc.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = subprocess.run(args[:2] + [str(empty)] + args[2:], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "is empty" in proc.stderr, proc.stderr
    assert not (tmp_path / "scored.jsonl").exists()


def test_evaluate_reader_names_the_non_utf8_line_and_the_empty_file(tmp_path):
    from mindspeed_rl.evaluation.datasets import DatasetConfig, load_problems

    bad = tmp_path / "problems.jsonl"
    write_rows(bad, n=3, bad_line=2)
    with pytest.raises(InputError, match=r"problems\.jsonl row 1: line 2: not UTF-8"):
        load_problems(DatasetConfig(name="mine", path=str(bad), problem_key="problem", answer_key="answer"))
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match=r"none\.jsonl is empty"):
        load_problems(DatasetConfig(name="mine", path=str(empty), problem_key="problem", answer_key="answer"))


def test_malformed_config_json_names_the_file(tmp_path):
    from mindspeed_rl.models import CheckpointError, get_bridge
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint

    hf = tmp_path / "hf"
    write_random_hf_checkpoint(str(hf), tiny_qwen2_config(), torch.float32)
    text = (hf / "config.json").read_text()
    (hf / "config.json").write_text(text.replace('"hidden_size"', "hidden_size", 1))
    with pytest.raises(CheckpointError, match=r"hf/config\.json:\d+:\d+: the model config is not valid JSON"):
        get_bridge(str(hf))


def test_killed_conversion_temp_dir_is_removed_by_the_next_conversion(tmp_path):
    from mindspeed_rl.models.convert import hf_to_mcore
    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint

    hf = tmp_path / "hf"
    write_random_hf_checkpoint(str(hf), tiny_qwen2_config(), torch.float32)
    stale = tmp_path / f".mg.tmp-{dead_pid()}"
    (stale / "iter_0000001").mkdir(parents=True)
    (stale / "iter_0000001" / "model_optim_rng.pt").write_bytes(b"x" * 4096)
    other = tmp_path / f".other.tmp-{dead_pid()}"  # another target's: not this conversion's to judge
    other.mkdir()
    hf_to_mcore(str(hf), str(tmp_path / "mg"), quiet=True)
    assert not stale.exists() and other.exists() and (tmp_path / "mg").is_dir()


def test_unwritable_conversion_target_is_refused_before_work(tmp_path):
    from mindspeed_rl.models import CheckpointError
    from mindspeed_rl.models.convert import hf_to_mcore

    from mindspeed_rl.models.random_checkpoint import tiny_qwen2_config, write_random_hf_checkpoint

    hf = tmp_path / "hf"
    write_random_hf_checkpoint(str(hf), tiny_qwen2_config(), torch.float32)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="output directory=.*is not a directory"):
        hf_to_mcore(str(hf), str(blocker / "mg"), quiet=True)


def test_evaluate_refuses_an_unwritable_output_dir_before_loading_the_model(tmp_path):
    problems = tmp_path / "problems.jsonl"
    write_rows(problems, n=2)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = subprocess.run(
        [sys.executable, str(REPO / "cli" / "evaluate.py"), "--model", str(tmp_path / "no_model_here"),
         "--dataset", str(problems), "--output-dir", str(blocker / "eval"),
         "dataset.problem_key=problem", "dataset.answer_key=answer"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 2 and "output_dir=" in proc.stderr and "cannot be created (Not a directory)" in proc.stderr, proc.stderr
