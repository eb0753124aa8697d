"""Format rewards on format-labelled responses: every malformed one scores 0 (no false pass)."""
import pytest

from mindspeed_rl.rewards import get_reward

T, A = "Step 1: add.\nStep 2: check.", r"The answer is \boxed{12}"
GOOD = [
    f"<think>{T}</think><answer>{A}</answer>",
    f"<think>\n{T}\n</think>\n\n<answer>\n{A}\n</answer>\n",
    f"  <think>{T}</think> <answer>{A}</answer>",
]
# (response, why it is malformed)
BAD = [
    (f"<think>{T}<answer>{A}</answer>", "think never closed"),
    (f"<think>{T}\n<answer>{A}</answer></think>", "think closed after the answer"),
    (f"<think>{T}</think><answer>{A}", "answer never closed"),
    (f"<think>{T}</think>{A}</answer>", "answer never opened"),
    (f"{T}</think><answer>{A}</answer>", "think never opened"),
    (f"<answer>{A}</answer><think>{T}</think>", "answer before think"),
    (f"<answer>{A}</answer>", "no think"),
    (f"<think>{T}</think>", "no answer"),
    (f"<think>{T}</think><think>{T}</think><answer>{A}</answer>", "think duplicated"),
    (f"<think>{T}</think><answer>{A}</answer><answer>{A}</answer>", "answer duplicated"),
    (f"<think>{T}</think><answer>1</answer><think>{T}</think><answer>{A}</answer>", "two rounds"),
    (f"<think><think>{T}</think></think><answer>{A}</answer>", "nested think"),
    (f"<think>{T}</think><answer>{A}</answer> Hope this helps!", "text after </answer>"),
    (f"<think>{T}</think><answer>{A}</answer>\n<|im_start|>user", "chat markup after </answer>"),
    (f"Sure! <think>{T}</think><answer>{A}</answer>", "text before <think>"),
    (f"<think>{T}</think> and so <answer>{A}</answer>", "text between the blocks"),
    (f"<think>{T}</think><answer>{A}</answer></answer>", "stray closing tag"),
    (f"<think>{T}</think><answer><answer>{A}</answer>", "stray opening tag"),
    (f"<Think>{T}</Think><answer>{A}</answer>", "wrong tag case"),
    (f"<think>{T}</think><answer>{A}</answer><think>", "think opened again at the end"),
    (f"<think>{T}</think><answer>{A}<answer></answer>", "answer reopened inside"),
    (f"<think>{T}<think></think><answer>{A}</answer>", "think reopened inside"),
]
# strict_format also wants a non-empty think and a box in the answer
STRICT_ONLY_BAD = [
    (f"<think></think><answer>{A}</answer>", "empty think"),
    (f"<think>  \n </think><answer>{A}</answer>", "blank think"),
    (f"<think>{T}</think><answer>12</answer>", "no box in the answer"),
    (f"<think>{T}</think><answer>\\boxed{{12</answer>", "box never closed"),
]


@pytest.mark.parametrize("name", ["format", "strict_format"])
def test_well_formed_responses_pass(name):
    fn = get_reward(name)
    assert [fn(r) for r in GOOD] == [1.0] * len(GOOD)


@pytest.mark.parametrize("name", ["format", "strict_format"])
def test_no_malformed_response_passes(name):
    fn = get_reward(name)
    bad = BAD + (STRICT_ONLY_BAD if name == "strict_format" else [])
    false_passes = [why for r, why in bad if fn(r) != 0.0]
    assert false_passes == []


def test_base_acc_is_gated_by_the_same_rules():
    base = get_reward("base_acc")
    assert all(base(r, "12", {}) == 1.0 for r in GOOD)
    assert [why for r, why in BAD if base(r, "12", {}) != 0.0] == []
