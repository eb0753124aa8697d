"""Trainer pieces without Ray: atomic run checkpoints (an interrupted save leaves the last good
checkpoint intact), the experience batch (token ids straight from the rollout), metrics output."""

import pytest
import torch

from mindspeed_rl.engine.rollout import RolloutOutput
from mindspeed_rl.trainer.experience import build_experience, response_stats
from mindspeed_rl.trainer.metrics_logger import MetricsLogger, read_jsonl
from mindspeed_rl.trainer.run_checkpoint import latest_iteration, load_run_state, save_checkpoint


def _write_model(tmp, text):
    (tmp / "actor").mkdir()
    (tmp / "actor" / "weights.txt").write_text(text)


def test_interrupted_save_keeps_last_good_checkpoint(tmp_path):
    save_checkpoint(tmp_path, 2, {"sampler": {"epoch": 0}}, lambda d: _write_model(d, "two"))

    def interrupted(d):
        _write_model(d, "four (partial)")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 4, {"sampler": {"epoch": 1}}, interrupted)
    assert latest_iteration(tmp_path) == 2
    it, state, path = load_run_state(tmp_path)
    assert it == 2 and state["sampler"] == {"epoch": 0}
    assert (path / "actor" / "weights.txt").read_text() == "two"
    assert not (tmp_path / "iter_0000004").exists()  # nothing that looks finished
    # the next save cleans the stale temp directory and moves the tracker
    save_checkpoint(tmp_path, 4, {"sampler": {"epoch": 1}}, lambda d: _write_model(d, "four"))
    assert latest_iteration(tmp_path) == 4 and not list(tmp_path.glob("*.tmp"))


def test_tracker_naming_a_missing_checkpoint_is_an_error(tmp_path):
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("7")
    with pytest.raises(FileNotFoundError, match="iteration 7"):
        latest_iteration(tmp_path)


def test_experience_keeps_rollout_token_ids_and_masks():
    prompts = [[5, 6, 7], [8, 9]]
    outputs = [
        [RolloutOutput(0, [11, 12], [-0.5, -0.25], "stop"), RolloutOutput(0, [13], [-1.0], "length", 1)],
        [RolloutOutput(1, [14, 15, 16], [-0.1, -0.2, -0.3], "stop"), RolloutOutput(1, [17], [-2.0], "stop", 1)],
    ]
    exp = build_experience(prompts, outputs, pad_token_id=0)
    b = exp.batch
    assert exp.prompt_index == [0, 0, 1, 1]
    assert b["input_ids"].tolist() == [[5, 6, 7, 11, 12], [5, 6, 7, 13, 0], [8, 9, 14, 15, 16], [8, 9, 17, 0, 0]]
    assert b["attention_mask"].sum(-1).tolist() == [5, 4, 5, 3]
    assert b["response_mask"].tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]]
    torch.testing.assert_close(b["rollout_log_probs"][2], torch.tensor([-0.1, -0.2, -0.3]))
    stats = response_stats(exp, max_tokens=3)
    assert stats["response_length/max"] == 3 and stats["response_length/clip_ratio"] == 0.25
    assert stats["prompt_length/mean"] == 2.5


def test_metrics_logger_jsonl_resume_and_curves(tmp_path):
    log = MetricsLogger(tmp_path, use_tensorboard=False)
    for it in range(1, 5):
        log.log(it, 4, {"reward/mean": 0.1 * it, "reward/acc/mean": 0.05 * it, "response_length/mean": 10.0 + it,
                        "response_length/max": 20.0})
    log.close()
    resumed = MetricsLogger(tmp_path, resume=True, use_tensorboard=False)
    resumed.truncate_after(2)  # iterations 3-4 will be recomputed after resuming from 2
    resumed.log(3, 4, {"reward/mean": 0.99})
    png = resumed.plot_curves()
    resumed.close()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2, 3] and rows[-1]["reward/mean"] == 0.99
    assert png.exists() and png.stat().st_size > 1000
