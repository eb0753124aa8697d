"""Evaluation inputs without a model: dataset presets and files, vote keys, configs, CLI import weight."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.evaluation.eval_testlib import AIME24_SLICE, GSM8K_SLICE, MATH500_SLICE

from mindspeed_rl.config.errors import ConfigError
from mindspeed_rl.data.readers import InputError
from mindspeed_rl.evaluation import EvalConfig, Judge, answer_key, check_eval_config, load_problems, majority_vote
from mindspeed_rl.evaluation.config import DatasetConfig, ScorerConfig
from mindspeed_rl.evaluation.records import ResumeError, SampleStore

ROOT = Path(__file__).resolve().parents[2]


def test_math500_preset_reads_subject_level_and_ids():
    ds = load_problems(DatasetConfig(name="math500", path=str(MATH500_SLICE), start=2, max_problems=3))
    assert [p.index for p in ds.problems] == [2, 3, 4]
    p = ds.problems[0]
    assert p.answer == "\\frac{14}{3}" and p.groups == {"subject": "Algebra", "level": 3}
    assert p.id.startswith("test/algebra/")
    assert ds.fingerprint != load_problems(DatasetConfig(name="math500", path=str(MATH500_SLICE), max_problems=3)).fingerprint


def test_aime_and_gsm8k_presets():
    aime = load_problems(DatasetConfig(name="aime24", path=str(AIME24_SLICE)))
    assert [p.answer for p in aime.problems] == ["204", "113", "371", "385"] and aime.problems[0].id == "60"
    assert aime.problems[0].groups == {}
    gsm = load_problems(DatasetConfig(name="gsm8k", path=str(GSM8K_SLICE)))
    assert len(gsm.problems) == 4 and "####" in gsm.problems[0].answer  # the scorer takes the final answer


def test_gsm8k_solution_gold_is_scored_on_its_final_answer():
    gsm = load_problems(DatasetConfig(name="gsm8k", path=str(GSM8K_SLICE), max_problems=1))
    final = gsm.problems[0].answer.rsplit("####", 1)[1].strip()
    with Judge(ScorerConfig(num_workers=0)) as judge:
        good, bad = judge.judge([f"so \\boxed{{{final}}}", "\\boxed{123456}"], [gsm.problems[0].answer] * 2)
    assert good.correct and not bad.correct and good.rewards == {"acc": 1.0}


def test_any_parquet_with_field_names(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in MATH500_SLICE.read_text(encoding="utf-8").splitlines()[:3]]
    table = pa.table({"question": [r["problem"] for r in rows], "meta": [{"gold": r["answer"]} for r in rows],
                      "topic": [r["subject"] for r in rows]})
    path = tmp_path / "mine.parquet"
    pq.write_table(table, path)
    ds = load_problems(DatasetConfig(name="mine", path=str(path), problem_key="question", answer_key="meta.gold",
                                     subject_key="topic"))
    assert [p.answer for p in ds.problems] == [r["answer"] for r in rows]
    assert ds.problems[1].groups == {"subject": "Intermediate Algebra"}
    with pytest.raises(InputError, match="dataset.problem_key"):
        load_problems(DatasetConfig(name="mine", path=str(path)))


def test_missing_answer_names_file_row_and_key(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n" + json.dumps({"problem": "2+2?"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl row 1: no text at dataset.answer_key='answer'"):
        load_problems(DatasetConfig(name="x", path=str(path), problem_key="problem", answer_key="answer"))


def test_presets_ship_with_the_package_and_a_data_dir_wins(monkeypatch, tmp_path):
    """MATH-500 / AIME24 / GSM8K load with no flag (package data, byte-identical to the sources);
    $MINDSPEED_RL_DATA_DIR, when set, is read instead; a preset whose file is absent says how to give one."""
    import hashlib

    from mindspeed_rl.evaluation import datasets as ds

    monkeypatch.delenv("MINDSPEED_RL_DATA_DIR", raising=False)
    sizes = {"math500": 500, "aime24": 30, "gsm8k": 1319}
    for name, rows in sizes.items():
        loaded = load_problems(DatasetConfig(name=name))
        assert len(loaded.problems) == rows and loaded.files[0].startswith(str(ds.PACKAGED_DATA_DIR))
    aime = load_problems(DatasetConfig(name="aime24")).problems
    assert aime[0].answer.isdigit() and any(p.answer.startswith("0") for p in aime)  # leading zeros kept
    shared = Path("/work/shared/data/math/math500_test.jsonl")
    if shared.is_file():  # the development copy this was taken from
        packaged = ds.PACKAGED_DATA_DIR / ds.PRESETS["math500"].file
        assert hashlib.sha256(packaged.read_bytes()).digest() == hashlib.sha256(shared.read_bytes()).digest()
    mine = tmp_path / "math"
    mine.mkdir()
    (mine / "aime24_qwen25math.jsonl").write_text(json.dumps({"id": 1, "problem": "1+1?", "answer": "2"}) + "\n")
    monkeypatch.setenv("MINDSPEED_RL_DATA_DIR", str(tmp_path))
    assert [p.answer for p in load_problems(DatasetConfig(name="aime24")).problems] == ["2"]
    monkeypatch.setattr(ds, "PACKAGED_DATA_DIR", tmp_path / "not-installed")
    monkeypatch.delenv("MINDSPEED_RL_DATA_DIR", raising=False)
    with pytest.raises(InputError, match="dataset.path="):
        load_problems(DatasetConfig(name="gsm8k"))
    monkeypatch.setenv("MINDSPEED_RL_DATA_DIR", str(ROOT / "nowhere"))
    with pytest.raises(InputError, match="no such file"):
        load_problems(DatasetConfig(name="aime24"))


def test_answer_keys_group_equal_values_for_majority_vote():
    assert answer_key("so \\boxed{0.5}") == answer_key("<answer>\\boxed{\\frac{1}{2}}</answer>") == answer_key(
        "The answer is 1/2.")
    assert answer_key("\\boxed{\\dfrac{\\pi}{2}}") == answer_key("\\boxed{\\frac{\\pi}{2}}")
    assert answer_key("\\boxed{3}") != answer_key("\\boxed{4}")
    assert answer_key("") is None
    keys = [answer_key(r) for r in ("\\boxed{4}", "\\boxed{1/2}", "\\boxed{0.5}", "nothing here")]
    assert majority_vote(keys, [True, False, False, False]) == (answer_key("\\boxed{0.5}"), False)


def test_config_cross_field_checks_name_every_key():
    cfg = EvalConfig(n=4, ks=[8], batch_size=0)
    cfg.sampling.temperature = 0.0
    with pytest.raises(ConfigError) as err:
        check_eval_config(cfg)
    assert set(err.value.keys) == {"ks", "batch_size", "n"}


def test_sample_store_rejects_damage_in_the_middle(tmp_path):
    store = SampleStore(str(tmp_path), {"a": 1})
    store.append([{"problem_index": 0, "sample_index": 0}, {"problem_index": 1, "sample_index": 0}])
    path = tmp_path / "samples.jsonl"
    lines = path.read_text().splitlines()
    path.write_text(lines[0][:5] + "\n" + lines[1] + "\n")
    with pytest.raises(ResumeError, match="line 1 is not JSON"):
        SampleStore(str(tmp_path), {"a": 1})
    with pytest.raises(ResumeError, match="resume=true"):
        SampleStore(str(tmp_path), {"a": 1}, resume=False)


def test_cli_help_and_config_errors_are_light_and_clear():
    code = ("import sys, runpy; sys.argv = ['evaluate.py', '--help']\n"
            "try:\n    runpy.run_path('cli/evaluate.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'vllm', 'megatron', 'ray', 'matplotlib') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "--config-name" in out.stdout and "sampling.max_tokens" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout[-500:] + out.stderr[-2000:]
    bad = subprocess.run([sys.executable, "cli/evaluate.py", "--config-name", "aime24", "sampling.temprature=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "did you mean 'sampling.temperature'" in bad.stderr


def test_hydra_configs_compose():
    from cli.evaluate import load_eval_config

    for name in ("default", "math500", "aime24", "gsm8k", "tiny_cpu"):
        cfg = load_eval_config(name, [])
        assert cfg.dataset.name in ("math500", "aime24", "gsm8k")
    cfg = load_eval_config("aime24", ["model=/m", "n=8", "sampling.seed=3", "dataset.max_problems=5"])
    assert (cfg.model, cfg.n, cfg.sampling.seed, cfg.dataset.max_problems, cfg.batch_size) == ("/m", 8, 3, 5, 30)


def test_model_source_detection_and_errors(tmp_path):
    from mindspeed_rl.evaluation.model_source import ModelSourceError, hf_model_dir, is_megatron_checkpoint

    with pytest.raises(ModelSourceError, match="no such directory"):
        with hf_model_dir(str(tmp_path / "missing")):
            pass
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "weights.bin").write_text("x")
    with pytest.raises(ModelSourceError, match="neither a HF model directory"):
        with hf_model_dir(str(tmp_path / "junk")):
            pass
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    with hf_model_dir(str(hf)) as m:
        assert m["source"] == "hf" and m["hf_dir"] == str(hf) and m["tokenizer"] == str(hf)
    mc = tmp_path / "mc"
    (mc / "iter_0000020").mkdir(parents=True)
    assert is_megatron_checkpoint(str(mc))
    from mindspeed_rl.models import CheckpointError

    with pytest.raises(CheckpointError, match="neither a converted Megatron checkpoint.*nor a GRPO run checkpoint"):
        with hf_model_dir(str(mc), log=lambda s: None):
            pass
    (mc / "convert_meta.json").write_text("{}")  # converted, but its hf_config/ is gone
    with pytest.raises(ModelSourceError, match="tokenizer="):
        with hf_model_dir(str(mc), log=lambda s: None):
            pass


def test_validation_configs_from_run_config_dicts():
    from mindspeed_rl.evaluation import validation_configs

    cfgs = validation_configs([{"dataset": {"name": "math500", "path": str(MATH500_SLICE), "max_problems": 4},
                                "n": 2, "sampling": {"max_tokens": 32}}])
    assert cfgs[0].n == 2 and cfgs[0].sampling.max_tokens == 32 and cfgs[0].dataset.max_problems == 4
    with pytest.raises(ConfigError, match=r"(?s)validation\[0\].*did you mean 'sampling.max_tokens'"):
        validation_configs([{"sampling": {"max_token": 3}}])


def test_cli_evaluates_a_shipped_preset_with_no_data_flag_and_refuses_a_missing_model(tmp_path):
    """`cli/evaluate.py --model M --dataset math500` as the README shows it: the packaged MATH-500
    is read (no dataset.path, no MINDSPEED_RL_DATA_DIR); a model path that does not exist is named."""
    from tests.evaluation.eval_testlib import save_tiny_qwen2

    env = {k: v for k, v in os.environ.items() if k != "MINDSPEED_RL_DATA_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    missing = tmp_path / "no-such-model"
    proc = subprocess.run([sys.executable, "cli/evaluate.py", "--model", str(missing), "--dataset", "math500"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and str(missing) in proc.stderr and "no such directory" in proc.stderr
    hf = save_tiny_qwen2(str(tmp_path / "hf"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "cli/evaluate.py", "--model", hf, "--dataset", "math500", "--max-problems", "2",
                           "--max-tokens", "4", "--output-dir", str(out), "scorer.num_workers=0", "chart=false"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    files = report["settings"]["dataset"]["files"]
    assert len(files) == 1 and files[0].endswith("mindspeed_rl/evaluation/data/math/math500_test.jsonl")
    assert report["generated_problems"] == 2
