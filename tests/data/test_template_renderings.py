"""Every shipped template has its rendering pinned.

- Templates on Qwen chat markup are rendered against the Qwen2 tokenizer's own ``chat_template``
  (single turn with the template's system prompt and instructions, a system override, and a
  multi-turn conversation); their generation prompt must open the turn ``assistant_format`` writes,
  followed only by the declared forced start of the response.
- ``deepseek_r1_distill`` (its tokenizer is not available here) is pinned to the text of
  DeepSeek-R1-Distill-Qwen's chat template.
- ``qwen_r1`` renders MindSpeed-RL's prompt byte for byte on 20 MATH-500 problems, as does
  MindSpeed-RL's own ``templates.json`` read by our loader.
A new template without an entry here fails ``test_every_shipped_template_is_covered``.
"""
import json

import pytest

from tests.paths import FIXTURES
from mindspeed_rl.data.templates import load_template, load_templates
from mindspeed_rl.evaluation.datasets import PACKAGED_DATA_DIR, PRESETS

TOK_DIR = FIXTURES / "qwen2_tokenizer"
MINDSPEED_TEMPLATES = FIXTURES / "mindspeed_rl" / "configs" / "model" / "templates.json"

# name -> what the generation prompt adds after the assistant turn's opening (the response's forced start)
QWEN_MARKUP = {"qwen": "", "qwen_r1": "", "qwen_math_cot": "", "qwen_countdown": "Let me solve this step by step.\n<think>"}
OTHER_MARKUP = {"deepseek_r1_distill"}

# MindSpeed-RL's qwen_r1 (configs/model/templates.json) as the issue quotes it: system turn, user turn.
QWEN_R1_EXPECTED = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nA conversation between User and Assistant. The user asks a question, and the Assistant solves "
    "it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, "
    "i.e., <think> reasoning process here </think><answer> answer here </answer>. Put your final answer within "
    "\\boxed{}.\n{question}<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOK_DIR))


def test_every_shipped_template_is_covered():
    assert set(load_templates()) == set(QWEN_MARKUP) | OTHER_MARKUP


def _chat(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@pytest.mark.parametrize("name", sorted(QWEN_MARKUP))
def test_qwen_markup_templates_match_the_tokenizer_chat_template(name, tokenizer):
    t = load_template(name)
    forced = QWEN_MARKUP[name]
    question = "What is $\\frac{1}{2}+{x}$?"
    wrapped = t.user_prefix + question + t.user_suffix
    assert t.render(question) == _chat(tokenizer, [{"role": "system", "content": t.default_system},
                                                   {"role": "user", "content": wrapped}]) + forced
    assert t.render(question, system="Be brief.") == _chat(tokenizer, [{"role": "system", "content": "Be brief."},
                                                                      {"role": "user", "content": wrapped}]) + forced
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    first = dict(turns[0], content=t.user_prefix + "a" + t.user_suffix)
    assert t.render(turns) == _chat(tokenizer, [{"role": "system", "content": t.default_system}, first, *turns[1:]]) + forced


@pytest.mark.parametrize("name", sorted(QWEN_MARKUP) + sorted(OTHER_MARKUP))
def test_generation_prompt_opens_the_assistant_format(name):
    t = load_template(name)
    opening = t.assistant_format.split("{content}")[0]
    assert opening and t.generation_prompt.startswith(opening), (t.generation_prompt, opening)
    forced = t.generation_prompt[len(opening):]
    assert forced == QWEN_MARKUP.get(name, "<think>\n")
    # a finished exchange rendered as a prompt ends where the generation prompt takes over
    done = t.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}], add_generation_prompt=False)
    assert done.endswith(t.assistant_format.replace("{content}", "r"))
    for stop in t.stop_words:
        assert stop in t.assistant_format.split("{content}")[1] or stop == "<|endoftext|>"


def test_deepseek_r1_distill_text():
    # DeepSeek-R1-Distill-Qwen's chat_template: bos + system, <｜User｜>question, <｜Assistant｜><think>\n
    t = load_template("deepseek_r1_distill")
    assert t.render("2+2?") == ("<｜begin▁of▁sentence｜><｜User｜>2+2?\nPlease reason step by step, and put your final "
                                "answer within \\boxed{}.<｜Assistant｜><think>\n")
    assert t.render([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                     {"role": "user", "content": "c"}]).startswith(
        "<｜begin▁of▁sentence｜><｜User｜>a\nPlease reason step by step, and put your final answer within \\boxed{}."
        "<｜Assistant｜>b<｜end▁of▁sentence｜><｜User｜>c<｜Assistant｜>")


def _math500(n):
    path = PACKAGED_DATA_DIR / PRESETS["math500"].file
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["problem"] for _, line in zip(range(n), f)]


def test_qwen_r1_is_mindspeed_rl_text_byte_for_byte_on_math500():
    ours = load_template("qwen_r1")
    theirs = load_template("qwen_r1", MINDSPEED_TEMPLATES)  # MindSpeed-RL's file, as published
    problems = _math500(20)
    assert len(problems) == 20 and any("{" in p for p in problems)  # LaTeX braces are not placeholders
    for problem in problems:
        expected = QWEN_R1_EXPECTED.replace("{question}", problem)
        assert ours.render(problem).encode() == expected.encode()
        assert theirs.render(problem).encode() == expected.encode()
    assert "User: " not in ours.render("x")


def test_mindspeed_rl_templates_file_loads_beside_ours():
    theirs = load_templates(MINDSPEED_TEMPLATES)
    assert {"qwen", "qwen_r1", "qwen_math_r1", "qwen3", "default"} <= set(theirs)
    # MindSpeed-RL's qwen_math_r1 is our qwen_math_cot
    assert theirs["qwen_math_r1"].render("x") == load_template("qwen_math_cot").render("x")
    assert theirs["qwen"].render("x") == load_template("qwen").render("x")
    assert theirs["qwen_r1"].stop_words == ["<|im_end|>"]
    from mindspeed_rl.data.templates import TemplateError

    with pytest.raises(TemplateError, match="llama3.*bos_token.*needs the tokenizer"):
        load_template("llama3", MINDSPEED_TEMPLATES)
