"""The GPQA Diamond preset: deterministic, unbiased choice shuffle; the user's file only; clear refusals."""
import collections
import csv

import pytest

from tests.evaluation.eval_testlib import FIXTURES
from mindspeed_rl.config.errors import ConfigError
from mindspeed_rl.data.readers import InputError
from mindspeed_rl.evaluation.choice_datasets import GPQA_COLUMNS, LETTERS, format_question, shuffle_choices
from mindspeed_rl.evaluation.config import DatasetConfig
from mindspeed_rl.evaluation.datasets import DataMissingError, load_problems

GPQA = FIXTURES / "evaluation" / "gpqa_synthetic6.csv"


def test_shuffle_is_deterministic_and_keeps_the_correct_answer():
    wrong = ["w1", "w2", "w3"]
    for key in ("rec1", "rec2", "17"):
        a, la = shuffle_choices("right", wrong, seed=0, key=key)
        b, lb = shuffle_choices("right", wrong, seed=0, key=key)
        assert (a, la) == (b, lb)
        assert sorted(a) == sorted(["right", *wrong]) and a[LETTERS.index(la)] == "right"
    orders = {tuple(shuffle_choices("right", wrong, seed=s, key="rec1")[0]) for s in range(40)}
    assert len(orders) > 10  # the seed matters


def test_shuffle_is_unbiased_over_many_problems():
    n = 8000
    counts = collections.Counter(shuffle_choices("c", ["x", "y", "z"], seed=0, key=f"q{i}")[1] for i in range(n))
    assert set(counts) == set(LETTERS)
    expected = n / 4
    chi2 = sum((counts[x] - expected) ** 2 / expected for x in LETTERS)
    assert chi2 < 16.27, counts  # chi-square, 3 degrees of freedom, p = 0.001
    assert all(abs(counts[x] / n - 0.25) < 0.02 for x in LETTERS), counts
    # every wrong answer also lands everywhere: the whole permutation is shuffled, not just the gold
    pos = collections.Counter(shuffle_choices("c", ["x", "y", "z"], seed=0, key=f"q{i}")[0].index("x") for i in range(n))
    assert all(abs(pos[p] / n - 0.25) < 0.02 for p in range(4)), pos


def test_preset_reads_the_users_file(tmp_path):
    cfg = DatasetConfig(name="gpqa_diamond", path=str(GPQA))
    ds = load_problems(cfg)
    assert len(ds.problems) == 6 and ds.problems[0].id == "syn-001"
    with open(GPQA, newline="") as f:
        rows = list(csv.DictReader(f))
    for p, row in zip(ds.problems, rows):
        assert p.answer in LETTERS and p.groups["subject"] == row["High-level domain"]
        # the gold letter's line holds the correct answer; every choice is listed once
        assert f"\n{p.answer}) {row['Correct Answer']}\n" in p.problem + "\n"
        assert p.problem.startswith(row["Question"]) and p.problem.count("\nA) ") == 1
        assert "Answer with the letter" in p.problem
    # same file, same seed: same problems; another seed: another order somewhere
    assert load_problems(cfg).fingerprint == ds.fingerprint
    other = load_problems(DatasetConfig(name="gpqa_diamond", path=str(GPQA), choice_seed=1))
    assert other.fingerprint != ds.fingerprint
    # file order does not change a problem's choices (keyed on the record id)
    rev = tmp_path / "rev.csv"
    with open(rev, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(reversed(rows))
    by_id = {p.id: (p.problem, p.answer) for p in load_problems(DatasetConfig(name="gpqa_diamond", path=str(rev))).problems}
    assert all(by_id[p.id] == (p.problem, p.answer) for p in ds.problems)
    sliced = load_problems(DatasetConfig(name="gpqa_diamond", path=str(GPQA), start=2, max_problems=3))
    assert [p.id for p in sliced.problems] == ["syn-003", "syn-004", "syn-005"]


def test_missing_file_says_where_the_data_comes_from(tmp_path, monkeypatch):
    monkeypatch.delenv("MINDSPEED_RL_DATA_DIR", raising=False)
    for cfg in (DatasetConfig(name="gpqa_diamond"), DatasetConfig(name="gpqa_diamond", path=str(tmp_path / "nope.csv"))):
        with pytest.raises(DataMissingError) as info:
            load_problems(cfg)
        msg = str(info.value)
        assert "huggingface.co/datasets/Idavidrein/gpqa" in msg and "gated" in msg
        assert all(c in msg for c in GPQA_COLUMNS)
    monkeypatch.setenv("MINDSPEED_RL_DATA_DIR", str(tmp_path))
    with pytest.raises(DataMissingError, match="gpqa/gpqa_diamond.csv not found"):
        load_problems(DatasetConfig(name="gpqa_diamond"))


def test_bad_files_are_refused_by_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Question,Correct Answer\nq,a\n")
    with pytest.raises(InputError, match=r"bad.csv row 2: columns \['Incorrect Answer 1'"):
        load_problems(DatasetConfig(name="gpqa_diamond", path=str(bad)))
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(GPQA_COLUMNS) + "\nq,a,b,,d\n")
    with pytest.raises(InputError, match=r"empty.csv row 2: empty \['Incorrect Answer 2'\]"):
        load_problems(DatasetConfig(name="gpqa_diamond", path=str(empty)))


def test_jsonl_files_work_too(tmp_path):
    import json

    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(dict(zip(GPQA_COLUMNS, ["q?", "yes", "no", "maybe", "never"]))) + "\n")
    (p,) = load_problems(DatasetConfig(name="gpqa_diamond", path=str(path))).problems
    assert f"{p.answer}) yes" in p.problem and p.id == "0"


def test_choice_preset_needs_choice_judging():
    from cli.evaluate import load_eval_config

    with pytest.raises(ConfigError, match="scorer.answer_format.*--config-name gpqa_diamond"):
        load_eval_config("default", ["model=/m", "dataset.name=gpqa_diamond"])
    cfg = load_eval_config("gpqa_diamond", ["model=/m"])
    assert cfg.n == 4 and cfg.scorer.answer_format == "choice" and cfg.dataset.name == "gpqa_diamond"


def test_prompt_template_lists_the_choices_in_order():
    text = format_question("  Q?  ", ["one", "two", "three", "four"])
    assert text == "Q?\n\nA) one\nB) two\nC) three\nD) four\n\nAnswer with the letter of the correct choice (A, B, C or D)."
