"""cli/generate.py: the keep rule (all required rewards 1, shortest k), an existing output refused
unless --resume, an interrupted run resumed to exactly the uninterrupted one's rows, the summary's
kept fractions, parquet by suffix; and a small generate -> SFT run on what it wrote."""
import json
import os
import shutil
import sys

import pytest

from mindspeed_rl.sft.rejection import KeepRule, kept_samples
from tests.paths import ROOT
from tests.sft.sft_testlib import read_metrics, sft_config, tiny_hf_dir

sys.path.insert(0, str(ROOT / "cli"))
import generate  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    problems = root / "problems.jsonl"
    problems.write_text("".join(json.dumps({"problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                                for i in range(5)))
    return tiny_hf_dir(root), str(problems), root


def _argv(hf_dir, problems, out, *extra):
    # a random model's samples are never correct: require nothing so that rows are kept
    return ["--model", hf_dir, "--data", str(problems), "--output", str(out), "--n", "2", "--batch-size", "2",
            "--max-tokens", "12", "--template", "qwen", "--require", "", "--num-workers", "0", "--seed", "3", *extra]


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_keep_rule():
    samples = [{"sample_index": i, "response_tokens": t, "rewards": {"acc": a, "format": f}}
               for i, (t, a, f) in enumerate([(9, 1, 1), (3, 1, 0), (5, 1, 1), (5, 1, 1), (2, 0, 1)])]
    assert [s["sample_index"] for s in kept_samples(samples, KeepRule())] == [0, 2, 3]
    assert [s["sample_index"] for s in kept_samples(samples, KeepRule(keep_shortest=2))] == [2, 3]
    assert [s["sample_index"] for s in kept_samples(samples, KeepRule(require=("acc",), keep_shortest=1))] == [1]


def test_refuses_existing_output_and_resumes_exactly(setup, capsys):
    hf_dir, problems, root = setup
    full = root / "full.jsonl"
    assert generate.main(_argv(hf_dir, problems, full)) == 0
    rows = _lines(full)
    assert len(rows) == 10 and len({r["problem_id"] for r in rows}) == 5
    assert set(rows[0]) >= {"prompt", "response", "gold", "score", "problem_id"}
    summary = json.loads((root / "full.jsonl.summary.json").read_text())
    assert summary["problems"] == 5 and summary["kept"] == 10 and summary["kept_fraction"] == 1.0
    assert [p["kept_fraction"] for p in summary["per_problem"]] == [1.0] * 5
    # an existing output is refused without --resume, naming the path and the fix
    assert generate.main(_argv(hf_dir, problems, full)) == 2
    assert "--resume" in capsys.readouterr().err
    # interrupted in the third batch: batches 1-2 finished, half of batch 3's rows written, no progress line
    cut = root / "cut.jsonl"
    progress = (root / "full.jsonl.progress.jsonl").read_text().splitlines()
    (root / "cut.jsonl.progress.jsonl").write_text("\n".join(progress[:4]) + "\n")
    cut.write_text("".join(json.dumps(r) + "\n" for r in rows[:9]))
    shutil.copy(root / "full.jsonl.settings.json", root / "cut.jsonl.settings.json")
    assert generate.main(_argv(hf_dir, problems, cut, "--resume")) == 0
    assert _lines(cut) == rows
    assert "1 batches to go" in capsys.readouterr().out
    # resuming with other settings is refused, naming the setting
    assert generate.main(_argv(hf_dir, problems, cut, "--resume", "--n", "3")) == 2
    assert "n was 2, now 3" in capsys.readouterr().err


def test_parquet_output(setup):
    import pandas as pd

    hf_dir, problems, root = setup
    out = root / "out.parquet"
    assert generate.main(_argv(hf_dir, problems, out, "--max-problems", "2")) == 0
    assert len(pd.read_parquet(out)) == 4


@pytest.mark.dist
def test_generate_then_sft(setup):
    from mindspeed_rl.sft.trainer import train_sft_rank
    from mindspeed_rl.utils.rank_processes import run_distributed

    hf_dir, problems, root = setup
    out = root / "traces.jsonl"
    assert generate.main(_argv(hf_dir, problems, out)) == 0
    cfg = sft_config(hf_dir, str(out), str(root / "sft"), train_iters=4, global_batch_size=10, label_smoothing=0.0)
    run_distributed(train_sft_rank, 1, cfg, timeout=600)
    losses = [r["sft_loss"] for r in read_metrics(cfg.save)]
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0] - 0.5  # it learns its samples
    assert os.path.isfile(os.path.join(cfg.export_hf_dir, "model.safetensors"))
