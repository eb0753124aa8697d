"""Scorer edges: a missing gold, bad worker counts and weights, unwritable outputs and output file
permissions are refused or handled naming the input; one test each."""
import json
import os
import stat
import subprocess
import sys

import pytest

from tests.paths import ROOT
from mindspeed_rl.rewards import RewardScorer, get_reward, parse_weighted_names


def _cli(*args):
    return subprocess.run([sys.executable, "cli/score.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture
def small_input(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps({"r": "\\boxed{3}", "g": "3"}) + "\n" + json.dumps({"r": "\\boxed{None}", "g": None}) + "\n")
    return p


def test_gold_none_never_scores():
    acc = get_reward("acc")
    assert acc("\\boxed{None}", None, {}) == 0.0
    assert acc("None", None, {}) == 0.0
    assert acc("\\boxed{None}", "None", {}) == 1.0  # a real gold that is the word still works


def test_negative_workers_refused():
    with pytest.raises(ValueError, match="num_workers=-1"):
        RewardScorer(["acc"], num_workers=-1)


def test_cli_negative_workers_refused_before_work(small_input, tmp_path):
    res = _cli(small_input, "--response-field", "r", "--gold-field", "g", "--workers", "-1", "--output", tmp_path / "o.jsonl")
    assert res.returncode != 0 and "--workers -1: must be >= 0" in res.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_weight_that_is_not_a_number_is_named():
    with pytest.raises(ValueError, match="weight 'abc' is not a number"):
        parse_weighted_names(["acc:abc"])
    with pytest.raises(ValueError, match="weight '0.5x'"):
        parse_weighted_names(["format:0.5x"])
    assert parse_weighted_names(["pkg.mod:fn"]) == (["pkg.mod:fn"], [1.0])


def test_cli_weight_that_is_not_a_number(small_input, tmp_path):
    res = _cli(small_input, "--response-field", "r", "--gold-field", "g", "--reward", "acc:abc", "--output", tmp_path / "o.jsonl")
    assert res.returncode != 0 and "weight 'abc' is not a number" in res.stderr and "cannot be imported" not in res.stderr


def test_unwritable_output_found_before_scoring(small_input, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # a path under a regular file can never be created, whoever runs the test (root included)
    res = _cli(small_input, "--response-field", "r", "--gold-field", "g", "--workers", "0",
               "--output", blocker / "sub" / "o.jsonl")
    assert res.returncode != 0 and "cannot write there" in res.stderr
    assert "scored" not in res.stdout  # refused before any scoring


def test_output_has_normal_permissions(small_input, tmp_path):
    out = tmp_path / "o.jsonl"
    old = os.umask(0o022)
    try:
        res = _cli(small_input, "--response-field", "r", "--gold-field", "g", "--workers", "0", "--output", out)
    finally:
        os.umask(old)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [json.loads(l)["reward"] for l in out.read_text().splitlines()] == [1.0, 0.0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
