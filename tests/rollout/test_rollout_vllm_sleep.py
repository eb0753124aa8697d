"""Sleep-mode bookkeeping of the vLLM backend, against tests/rollout/fake_vllm.py: real vLLM has no
sleep mode on CPU (the engine takes its plain no-sleep path there, tested in test_rollout_vllm.py),
so the calls a GPU/NPU engine makes (levels, tagged wake-up, no double wake-up, level 2 discarding
the weights) are checked on a recording stand-in."""
import pytest
import torch

from tests.rollout.fake_vllm import FakeLLM
from mindspeed_rl.engine.rollout import SamplingParams
from mindspeed_rl.engine.rollout.hf_engine import HFRolloutEngine
from mindspeed_rl.engine.rollout.vllm_engine import VLLMRolloutEngine
from tests.rollout.rollout_testlib import tiny_qwen2

pytest.importorskip("vllm")
PROMPTS = [[1, 2, 3], [4, 5, 6, 7]]


def test_sleep_levels_and_tagged_wake_up():
    llm = FakeLLM(HFRolloutEngine(model=tiny_qwen2(seed=0)))
    eng = VLLMRolloutEngine(llm=llm, sleep_level=2, enable_sleep_mode=True)
    sp = SamplingParams(temperature=0.0, max_tokens=2)
    eng.sleep()
    eng.sleep()  # already asleep: no second call
    assert llm.sleep_calls == [2] and eng.is_sleeping
    with pytest.raises(RuntimeError, match="asleep"):
        eng.generate(PROMPTS, sp)
    with pytest.raises(RuntimeError, match="wake_up"):
        eng.update_weights([("model.norm.weight", torch.ones(32))])
    eng.wake_up(tags=["weights"])
    eng.wake_up(tags=["kv_cache"])
    eng.wake_up()  # already awake: no second wake-up (it would map memory twice)
    assert llm.wake_calls == [["weights"], ["kv_cache"]]
    with pytest.raises(RuntimeError, match="sleep\\(level=2\\)"):  # weights were discarded: no stale generation
        eng.generate(PROMPTS, sp)
    eng.update_weights(tiny_qwen2(seed=0).state_dict().items())
    assert llm.prefix_resets == 1
    eng.generate(PROMPTS, sp)
    with pytest.raises(ValueError, match="tags"):
        eng.wake_up(tags=["bogus"])
    eng.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        eng.generate(PROMPTS, sp)


def test_without_sleep_mode_nothing_is_called_but_state_is_kept():
    llm = FakeLLM(HFRolloutEngine(model=tiny_qwen2(seed=0)))
    eng = VLLMRolloutEngine(llm=llm, enable_sleep_mode=False)
    eng.sleep()
    with pytest.raises(RuntimeError, match="asleep"):
        eng.generate(PROMPTS, SamplingParams(max_tokens=2))
    eng.wake_up()
    assert llm.sleep_calls == [] and llm.wake_calls == []
    assert eng.generate(PROMPTS, SamplingParams(max_tokens=2))[1][0].prompt_index == 1
