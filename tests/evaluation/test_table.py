"""The recipe's table in one command: on the tiny CPU model with small fixture files for
MATH-500, AIME24 and GPQA Diamond, every cell equals the per-benchmark CLI's number; the table
resumes, skips a benchmark without data, and plots several checkpoints against iteration."""
import csv
import json
from pathlib import Path

import pytest
import yaml

from cli.evaluate import main
from tests.evaluation.eval_testlib import AIME24_SLICE, FIXTURES, MATH500_SLICE, save_tiny_qwen2, LENGTH_MOD3, one_thread  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]

GPQA = FIXTURES / "evaluation" / "gpqa_synthetic6.csv"
DATA = [f"math500.dataset.path={MATH500_SLICE}", f"aime24.dataset.path={AIME24_SLICE}",
        f"gpqa_diamond.dataset.path={GPQA}"]
# CPU-sized settings for every benchmark; a scorer a random model passes a third of the time so
# that equal numbers mean equal samples, not zeros everywhere
# (key=value, not flags: on a per-benchmark command line explicit overrides win over flags, in a
# table command-line settings win over the recipe's; in key=value form both read the same)
COMMON = ["dataset.max_problems=3", "sampling.max_tokens=12", "engine.dtype=float32", "scorer.num_workers=0", "chart=false",
          f"scorer.functions=[acc,'{LENGTH_MOD3}']", f"scorer.correct_function={LENGTH_MOD3}"]
PER_BENCH = ["aime24.n=2", "gpqa_diamond.n=3", "aime24.batch_size=2"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("table_models")
    return [save_tiny_qwen2(str(root / "base"), seed=0), save_tiny_qwen2(str(root / "other"), seed=1)]


def _spec():
    from mindspeed_rl.evaluation.table import parse_table_spec

    return parse_table_spec(yaml.safe_load(open(ROOT / "configs" / "eval" / "r1zero_table.yaml")), "r1zero_table")


def _report(d):
    return json.loads((Path(d) / "report.json").read_text())


def test_table_cells_equal_the_per_benchmark_cli(models, tmp_path, capsys):
    out = tmp_path / "table"
    assert main(["--config-name", "r1zero_table", "--model", models[0], "--output-dir", str(out),
                 *COMMON, *DATA, *PER_BENCH]) == 0
    printed = capsys.readouterr().out
    assert "61.5" in printed and "85.7" in printed and "48.1" in printed  # the published rows beside ours
    rows = list(csv.DictReader(open(out / "table.csv")))
    measured = [r for r in rows if r["source"] == "measured"]
    assert len(measured) == 1 and [r["model"] for r in rows if r["source"] == "published"] == [
        "Qwen2.5-32B base", "Qwen2.5-32B R1-Zero, 1000 iterations"]
    assert (out / "table.png").stat().st_size > 1000
    assert [r["aime24_metric"] for r in rows if r["source"] == "published"] == ["avg@24", "avg@24"]

    # the same cells, one benchmark at a time, through the per-benchmark CLI
    spec = _spec()
    data = {"math500": f"dataset.path={MATH500_SLICE}", "aime24": f"dataset.path={AIME24_SLICE}",
            "gpqa_diamond": f"dataset.path={GPQA}"}
    count = {"math500": 3, "aime24": 6, "gpqa_diamond": 9}
    own = {"aime24": ["n=2", "batch_size=2"], "gpqa_diamond": ["n=3"], "math500": []}
    metrics = {"math500": "pass@1", "aime24": "avg@2", "gpqa_diamond": "avg@3"}
    nonzero = 0
    for b in spec.benchmarks:
        single = tmp_path / f"single_{b.id}"
        assert main(["--config-name", b.config, "--model", models[0], "--output-dir", str(single),
                     *b.overrides, *COMMON, data[b.id], *own[b.id]]) == 0
        mine, theirs = _report(out / "base" / b.id), _report(single)
        assert mine["metrics"] == theirs["metrics"], b.id
        assert mine["breakdowns"] == theirs["breakdowns"], b.id
        samples = [[json.loads(x)["response"] for x in open(Path(d) / "samples.jsonl")] for d in (out / "base" / b.id, single)]
        assert samples[0] == samples[1] and len(samples[0]) == count[b.id]
        assert float(measured[0][b.id]) == pytest.approx(100 * theirs["metrics"][metrics[b.id]], abs=1e-4)
        assert measured[0][f"{b.id}_metric"] == metrics[b.id]
        nonzero += theirs["metrics"]["pass@1"] > 0
    assert nonzero >= 2  # the comparison is between informative numbers
    gpqa = [json.loads(x) for x in open(out / "base" / "gpqa_diamond" / "samples.jsonl")]
    assert all(r["gold"] in "ABCD" for r in gpqa)
    assert _report(out / "base" / "gpqa_diamond")["settings"]["scorer"]["functions"][1] == LENGTH_MOD3

    # resumable: a rerun generates nothing and gives the same table
    assert main(["--config-name", "r1zero_table", "--model", models[0], "--output-dir", str(out),
                 *COMMON, *DATA, *PER_BENCH]) == 0
    assert all(_report(out / "base" / b.id)["generated_problems"] == 0 for b in spec.benchmarks)
    assert list(csv.DictReader(open(out / "table.csv"))) == rows


def test_missing_data_is_skipped_and_several_models_plot_against_iteration(models, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MINDSPEED_RL_DATA_DIR", raising=False)
    out = tmp_path / "table"
    # no GPQA file, an AIME24 path that does not exist
    assert main(["--config-name", "r1zero_table", "--models", *models, f"math500.dataset.path={MATH500_SLICE}",
                 f"aime24.dataset.path={tmp_path / 'absent.jsonl'}", "--output-dir", str(out), *COMMON]) == 0
    printed = capsys.readouterr().out
    assert "skipping GPQA Diamond for base:" in printed and "Idavidrein/gpqa" in printed
    assert "skipping AIME24 for base:" in printed and "absent.jsonl: no such file" in printed
    rows = [r for r in csv.DictReader(open(out / "table.csv")) if r["source"] == "measured"]
    assert [r["model"] for r in rows] == ["base", "other"]
    assert all(r["math500"] != "" and r["aime24"] == "" and r["gpqa_diamond"] == "" for r in rows)
    assert "skipped" in printed and (out / "table.png").is_file()


def test_run_checkpoints_are_labelled_by_iteration(tmp_path):
    import torch

    from mindspeed_rl.evaluation.table import model_identity
    from tests.convert.run_ckpt_lib import add_run_iteration
    from tests.convert.test_roundtrip import make_hf

    hf = make_hf(str(tmp_path), dtype=torch.float32)
    save = tmp_path / "ckpt"
    add_run_iteration(hf, save, 30)
    add_run_iteration(hf, save, 60)
    assert model_identity(str(save / "iter_0000030")) == ("ckpt@iter30", 30)
    assert model_identity(str(save)) == ("ckpt@iter60", 60)
    assert model_identity(hf) == ("hf", 0)


def test_table_refusals(models, tmp_path):
    from mindspeed_rl.config.errors import ConfigError
    from mindspeed_rl.evaluation.table import parse_table_spec, split_overrides

    with pytest.raises(ConfigError, match="--models.*no model given"):
        main(["--config-name", "r1zero_table"])
    with pytest.raises(ConfigError, match="--data-path.*math500.dataset.path"):
        main(["--config-name", "r1zero_table", "--model", models[0], "--data-path", "x.jsonl"])
    with pytest.raises(ConfigError, match="--models.*only table configs"):
        main(["--config-name", "math500", "--models", models[0], models[1]])
    with pytest.raises(ConfigError, match=r"table.published\[0\].*unknown benchmarks \['mmlu'\]"):
        parse_table_spec({"table": {"benchmarks": [{"id": "a", "config": "math500", "label": "A", "metric": "pass@1"}],
                                    "published": [{"label": "x", "values": {"mmlu": 1}}]}}, "t")
    common, own = split_overrides(["n=2", "aime24.n=4", "++aime24.sampling.seed=3", "sampling.seed=1"], ["aime24", "math500"])
    assert common == ["n=2", "sampling.seed=1"] and own == {"aime24": ["n=4", "++sampling.seed=3"], "math500": []}
