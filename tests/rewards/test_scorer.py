import threading
import time

import pytest

from mindspeed_rl.rewards import RewardScorer, parse_weighted_names

GOOD = "<think>\nwork\n</think>\n<answer>\\boxed{12.5}</answer>"


def test_parse_weighted_names():
    assert parse_weighted_names(["acc", "format:0.5", "pkg.mod:fn", "pkg.mod:fn:2"]) == (
        ["acc", "format", "pkg.mod:fn", "pkg.mod:fn"], [1.0, 0.5, 1.0, 2.0])


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="verifier_weight"):
        RewardScorer(["acc", "format"], [1.0], num_workers=0)
    with pytest.raises(KeyError, match="unknown reward"):
        RewardScorer(["accuracy"], num_workers=0)


def test_inprocess_weighted_total_and_metrics():
    s = RewardScorer(["acc", "strict_format"], [1.0, 0.5], num_workers=0)
    totals, per_fn, m = s.score([GOOD, "<answer>12.5</answer>", "I have no idea how to solve this problem"], ["12.5", "12.5", "3"])
    assert per_fn["acc"] == [1.0, 1.0, 0.0]
    assert per_fn["strict_format"] == [1.0, 0.0, 0.0]
    assert totals == [1.5, 1.0, 0.0]
    assert m["extraction_failures"] == 1 and m["timeouts"] == 0 and m["samples"] == 3


def test_user_function_by_registry_in_workers():
    from tests.rewards import custom_reward  # noqa: F401  registers "length_le_10"

    with RewardScorer(["length_le_10", "tests.rewards.custom_reward:short_answer"], num_workers=1,
                      timeout_s=30) as s:
        totals, per_fn, _ = s.score(["short", "a much longer response"], ["", ""])
    assert totals == [2.0, 0.0]


@pytest.mark.dist
def test_pathological_inputs_time_out_from_a_worker_thread():
    timeout_s = 2.0
    responses = [GOOD, "\\boxed{9^{9^{9^{9}}}}", "\\boxed{" + "(1+" * 20000 + "1" + ")" * 20000 + "}",
                 "x" * 100_000 + " \\boxed{" + "+".join(["x^{2}"] * 8000) + "}", "<answer>12.5</answer>"] * 2
    golds = ["12.5", "3", "3", "3", "12.5"] * 2
    out = {}

    def run():
        with RewardScorer(["acc", "format"], num_workers=2, timeout_s=timeout_s, timeout_score=-1.0) as s:
            s.wait_ready()
            t = time.perf_counter()
            out["res"] = s.score(responses, golds)
            out["secs"] = time.perf_counter() - t
            # the pool still works after killing workers
            out["again"] = s.score([GOOD], ["12.5"])

    th = threading.Thread(target=run)
    th.start()
    th.join(timeout=120)
    assert not th.is_alive(), "scoring hung"
    totals, per_fn, m = out["res"]
    assert per_fn["acc"][0] == 1.0 and per_fn["acc"][4] == 1.0
    assert per_fn["acc"][5] == 1.0 and per_fn["acc"][9] == 1.0
    for i in range(len(responses)):
        if per_fn["acc"][i] == -1.0:
            assert per_fn["format"][i] == -1.0  # a timed-out sample gets timeout_score everywhere
    assert m["timeouts"] >= 1
    # every timed-out sample costs at most one timeout per worker lane, plus start-up slack
    assert out["secs"] < timeout_s * (m["timeouts"] / 2 + 1) + 10, (out["secs"], m)
    assert out["again"][1]["acc"] == [1.0] and out["again"][2]["timeouts"] == 0
