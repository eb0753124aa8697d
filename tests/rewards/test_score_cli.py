import json
import subprocess
import sys

from tests.paths import ROOT


def test_rewards_package_imports_no_torch():
    code = "import sys, mindspeed_rl.rewards as r; r.get_reward('acc'); print('torch' in sys.modules, 'megatron' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_cli_help_and_scoring(tmp_path):
    assert subprocess.run([sys.executable, "cli/score.py", "--help"], cwd=ROOT, capture_output=True).returncode == 0
    rows = [{"resp": "<think>a</think><answer>\\boxed{12.5}</answer>", "gold": "12.5", "id": 1},
            {"resp": "<answer>12.5</answer>", "gold": "12.5", "id": 2},
            {"resp": "it is 7", "gold": "8", "id": 3}]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = subprocess.run([sys.executable, "cli/score.py", str(inp), "--response-field", "resp", "--gold-field", "gold",
                          "--reward", "acc", "--reward", "strict_format:0.5", "--workers", "0", "--output", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["id"] for r in got] == [1, 2, 3]
    assert [r["reward"] for r in got] == [1.5, 1.0, 0.0]
    assert [r["reward_acc"] for r in got] == [1.0, 1.0, 0.0]
    assert "accuracy: 2/3" in res.stdout
    bad = subprocess.run([sys.executable, "cli/score.py", str(inp), "--response-field", "nope", "--gold-field", "gold",
                          "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "in.jsonl:1: no field 'nope'" in bad.stderr
