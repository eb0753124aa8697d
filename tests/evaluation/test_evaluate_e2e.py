"""End to end on CPU: a tiny random Qwen2 (real Qwen2 tokenizer) on a MATH-500 slice.

HF directory vs Megatron checkpoint of the same weights, uninterrupted vs interrupted-and-resumed
runs: same seed, same samples, same numbers.
"""
import json
import os
import shutil

import pytest

from tests.evaluation.eval_testlib import MATH500_SLICE, CountingEngine, save_tiny_qwen2, LENGTH_MOD3, one_thread  # noqa: F401

from mindspeed_rl.evaluation import EvalConfig, ResumeError, Validator, evaluate, load_problems
from mindspeed_rl.evaluation.config import DatasetConfig, EvalSamplingConfig, ScorerConfig
from mindspeed_rl.evaluation.runner import batch_seed


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_model")
    hf = save_tiny_qwen2(str(root / "hf"))
    from mindspeed_rl.models.convert import hf_to_mcore

    hf_to_mcore(hf, str(root / "mcore"), quiet=True)
    return {"hf": hf, "mcore": str(root / "mcore")}


@pytest.fixture(scope="module")
def engine_and_tokenizer(model_dirs):
    from transformers import AutoTokenizer

    from mindspeed_rl.engine.rollout import build_rollout_engine

    engine = build_rollout_engine("hf", model_path=model_dirs["hf"], max_batch_size=16)
    yield engine, AutoTokenizer.from_pretrained(model_dirs["hf"])
    engine.shutdown()


def small_cfg(out_dir, **kw) -> EvalConfig:
    cfg = EvalConfig(
        model="tiny", n=2, batch_size=2, output_dir=str(out_dir), chart=False,
        dataset=DatasetConfig(name="math500", path=str(MATH500_SLICE), max_problems=6),
        sampling=EvalSamplingConfig(temperature=1.0, top_p=1.0, max_tokens=16, seed=7),
        scorer=ScorerConfig(functions=["acc", LENGTH_MOD3], correct_function=LENGTH_MOD3, num_workers=0))
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def read_samples(out_dir):
    with open(os.path.join(out_dir, "samples.jsonl"), encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    return sorted(recs, key=lambda r: (r["problem_index"], r["sample_index"]))


CLI_FLAGS = ["--dataset", "math500", "--data-path", str(MATH500_SLICE), "--max-problems", "6", "--n", "2",
             "--max-tokens", "16", "--temperature", "1.0", "--top-p", "1.0", "--batch-size", "4", "--seed", "3",
             "--dtype", "float32", "scorer.num_workers=0", f"scorer.functions=[acc,'{LENGTH_MOD3}']",
             f"scorer.correct_function={LENGTH_MOD3}"]


def test_cli_hf_directory_and_megatron_checkpoint_give_identical_results(model_dirs, tmp_path, capsys):
    from cli.evaluate import main

    assert main(["--model", model_dirs["hf"], "--output-dir", str(tmp_path / "hf"), *CLI_FLAGS]) == 0
    assert main(["--model", model_dirs["mcore"], "--output-dir", str(tmp_path / "mc"), *CLI_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "converting Megatron checkpoint" in out and "subject" in out and "pass@2" in out

    a, b = read_samples(tmp_path / "hf"), read_samples(tmp_path / "mc")
    assert len(a) == 12
    assert [r["response"] for r in a] == [r["response"] for r in b]
    assert len({r["response"] for r in a}) > 6  # real sampling, not one repeated string
    ra = json.loads((tmp_path / "hf" / "report.json").read_text())
    rb = json.loads((tmp_path / "mc" / "report.json").read_text())
    assert ra["metrics"] == rb["metrics"] and ra["breakdowns"] == rb["breakdowns"]
    assert 0 < ra["metrics"]["pass@1"] < 1  # length_mod3 makes the numbers informative
    # the settings sit beside the numbers
    s = rb["settings"]
    assert s["template"]["name"] == "qwen_r1" and "A conversation between User" in s["template"]["user_prefix"]
    assert s["sampling"] == {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "max_tokens": 16, "seed": 3}
    assert s["n"] == 2 and s["versions"]["mindspeed_rl"] and s["versions"]["math-verify"]
    assert s["model"]["source"] == "megatron" and s["model"]["iteration"] == 1
    assert ra["settings"]["model"]["source"] == "hf"
    assert set(ra["breakdowns"]) == {"level", "subject"}
    assert (tmp_path / "hf" / "report.png").stat().st_size > 1000
    # the per-sample file carries what a reader needs to audit a number
    rec = a[0]
    for key in ("id", "prompt", "response", "gold", "extracted", "answer_key", "correct", "rewards", "subject",
                "level", "finish_reason", "response_tokens", "seed"):
        assert key in rec
    assert rec["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.")


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_without_regenerating_finished_problems(engine_and_tokenizer, tmp_path):
    engine, tok = engine_and_tokenizer
    full = evaluate(CountingEngine(engine), tok, small_cfg(tmp_path / "full"), log=lambda s: None)

    def stop_after_first_batch(number, records):
        raise Interrupt

    first = CountingEngine(engine)
    with pytest.raises(Interrupt):
        evaluate(first, tok, small_cfg(tmp_path / "cut"), on_batch=stop_after_first_batch, log=lambda s: None)
    assert first.prompts_generated == 2
    assert len(read_samples(tmp_path / "cut")) == 4  # the finished batch is on disk

    rest = CountingEngine(engine)
    resumed = evaluate(rest, tok, small_cfg(tmp_path / "cut"), log=lambda s: None)
    assert rest.prompts_generated == 4 and len(rest.calls) == 2  # only problems 2..5
    problems = load_problems(small_cfg(tmp_path).dataset).problems
    first_prompt_ids = tok.encode(problems[0].problem, add_special_tokens=False)
    assert all(first_prompt_ids != p for call in rest.calls for p in call)
    assert resumed.resumed_problems == 2 and resumed.generated_problems == 4
    assert resumed.metrics == full.metrics and resumed.breakdowns == full.breakdowns
    assert read_samples(tmp_path / "cut") == read_samples(tmp_path / "full")

    # a rerun of a finished run generates nothing and reports the same numbers
    again = CountingEngine(engine)
    assert evaluate(again, tok, small_cfg(tmp_path / "cut"), log=lambda s: None).metrics == full.metrics
    assert again.calls == []


def test_truncated_sample_file_regenerates_only_the_unfinished_batches(engine_and_tokenizer, tmp_path):
    engine, tok = engine_and_tokenizer
    evaluate(engine, tok, small_cfg(tmp_path / "full"), log=lambda s: None)
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    path = tmp_path / "cut" / "samples.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # keep problems 0-1 (batch 0) and one sample of problem 2, then half a line (a kill mid-write)
    path.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2], encoding="utf-8")
    counting = CountingEngine(engine)
    logs = []
    report = evaluate(counting, tok, small_cfg(tmp_path / "cut"), log=logs.append)
    assert counting.prompts_generated == 4  # batches 1 and 2, problem 2's batch regenerated whole
    assert any("2 problems done" in line for line in logs)
    assert read_samples(tmp_path / "cut") == read_samples(tmp_path / "full")
    assert report.metrics == json.loads((tmp_path / "full" / "report.json").read_text())["metrics"]


def test_resume_refuses_samples_made_with_other_settings(engine_and_tokenizer, tmp_path):
    engine, tok = engine_and_tokenizer
    cfg = small_cfg(tmp_path / "run")
    cfg.dataset.max_problems = 2
    evaluate(engine, tok, cfg, log=lambda s: None)
    other = small_cfg(tmp_path / "run", n=3)
    other.dataset.max_problems = 2
    with pytest.raises(ResumeError, match=r"n: 2 -> 3"):
        evaluate(engine, tok, other, log=lambda s: None)
    other.overwrite = True
    assert evaluate(engine, tok, other, log=lambda s: None,
                    model_info={"path": "tiny", "weights": {"model.safetensors": [10, 1]}}).settings["n"] == 3
    assert len(read_samples(tmp_path / "run")) == 6
    other.overwrite = False  # weights rewritten in place under the same path: refuse to mix
    with pytest.raises(ResumeError, match=r"model.weights.model.safetensors: \[10, 1\] -> \[10, 2\]"):
        evaluate(engine, tok, other, log=lambda s: None,
                 model_info={"path": "tiny", "weights": {"model.safetensors": [10, 2]}})


def test_seed_changes_samples_and_batch_seeds_differ(engine_and_tokenizer, tmp_path):
    engine, tok = engine_and_tokenizer
    cfg_a = small_cfg(tmp_path / "a")
    cfg_b = small_cfg(tmp_path / "b")
    cfg_b.sampling.seed = 8
    for cfg in (cfg_a, cfg_b):
        cfg.dataset.max_problems = 2
        evaluate(engine, tok, cfg, log=lambda s: None)
    assert [r["response"] for r in read_samples(tmp_path / "a")] != [r["response"] for r in read_samples(tmp_path / "b")]
    assert len({batch_seed(7, i) for i in range(1000)}) == 1000
    assert batch_seed(7, 3) == batch_seed(7, 3) != batch_seed(8, 3)


def test_validator_gives_flat_metrics_equal_to_evaluate(engine_and_tokenizer, tmp_path):
    engine, tok = engine_and_tokenizer
    cfg = small_cfg(tmp_path / "eval")
    report = evaluate(engine, tok, cfg, log=lambda s: None)
    with Validator([small_cfg(None)], tok, samples_dir=str(tmp_path / "val"), log=lambda s: None) as validator:
        metrics = validator(engine, step=10)
    assert metrics["val/math500/pass@1"] == report.metrics["pass@1"]
    assert metrics["val/math500/maj@2"] == report.metrics["maj@2"]
    assert metrics["val/math500/level/2/pass@1"] == report.breakdowns["level"]["2"]["pass@1"]
    assert all(isinstance(v, float) for v in metrics.values())
    assert "val/math500/truncated_fraction" in metrics
    lines = (tmp_path / "val" / "step_10" / "math500.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12


@pytest.mark.parametrize("forced", ["1", "0"])
def test_validator_progress_bar_on_stderr_only_and_no_console_line(engine_and_tokenizer, tmp_path, monkeypatch,
                                                                    capsys, forced):
    engine, tok = engine_and_tokenizer
    monkeypatch.setenv("MINDSPEED_RL_PROGRESS", forced)
    with Validator([small_cfg(None)], tok, log=None) as validator:
        metrics = validator(engine, step=3)
    out, err = capsys.readouterr()
    assert "val/math500/pass@1" in metrics
    assert out == ""  # the trainer's iteration line carries pass@1; the validator prints nothing itself
    assert ("validation math500" in err) == (forced == "1")
    if forced == "1":
        assert "/6" in err and "problem" in err  # a bar over the 6 problems
