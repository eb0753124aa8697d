import json

import pytest

from tests.paths import FIXTURES
from mindspeed_rl.data.handlers import HandlerError, RowRejected, get_handler, register_handler, FlatHandler
from mindspeed_rl.data.templates import TemplateError, load_template, load_templates

TOK_DIR = FIXTURES / "qwen2_tokenizer"


def test_shipped_templates_load_and_have_stop_words():
    templates = load_templates()
    for name in ("qwen_r1", "qwen", "deepseek_r1_distill"):
        assert templates[name].stop_words, name


def test_qwen_template_matches_tokenizer_chat_template():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TOK_DIR))
    qwen = load_template("qwen")
    for messages in (
        [{"role": "user", "content": "What is $\\frac{1}{2}+{x}$?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
    ):
        ref = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert qwen.render(messages) == ref


def test_qwen_r1_layout():
    t = load_template("qwen_r1")
    text = t.render("Solve {x}.")
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("Solve {x}.<|im_end|>\n<|im_start|>assistant\n")
    for needle in ("<think> </think>", "<answer> </answer>", "\\boxed{}"):
        assert needle in text
    assert t.render("q", system="S").startswith("<|im_start|>system\nS<|im_end|>")
    assert "<|im_end|>" in t.stop_words


def test_unknown_template_lists_available(tmp_path):
    with pytest.raises(TemplateError, match="available: .*qwen_r1"):
        load_template("nope")
    custom = tmp_path / "t.json"
    custom.write_text(json.dumps({"mine": {"system_format": "S:{content}\n", "user_format": "U:{content}\n",
                                           "assistant_format": "A:{content}\n", "generation_prompt": "A:",
                                           "stop_words": ["\n"]}}))
    assert load_template("mine", custom).render("hi", system="s") == "S:s\nU:hi\nA:"
    custom.write_text(json.dumps({"bad": {"user_format": "no placeholder"}}))
    with pytest.raises(TemplateError, match="missing keys"):
        load_templates(custom)


def test_map_keys_missing_column_names_key_and_columns():
    h = get_handler("flat", {"prompt": "question", "response": "solution"})
    with pytest.raises(HandlerError, match=r"map_keys.prompt='question'.*columns are \['problem', 'answer'\]"):
        h.check_columns(["problem", "answer"], "x.jsonl")


def test_unknown_handler_lists_available():
    with pytest.raises(HandlerError, match=r"available: \['chat', 'countdown', 'flat', 'gsm8k'"):
        get_handler("alpacaa")


def test_handlers_rows():
    chat = get_handler("chat")
    s = chat({"prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": "7"}})
    assert s.messages == [{"role": "user", "content": "q"}] and s.label == "7"
    flat_via_chat = get_handler("chat", {"prompt": "problem", "response": "answer"})
    assert flat_via_chat({"problem": "p", "answer": "1"}).messages[0]["content"] == "p"
    flat = get_handler("flat", {"query": "input", "system": "sys"})
    s = flat({"problem": "p", "input": "extra", "answer": "a", "sys": "S"})
    assert s.messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "p\nextra"}]
    g = get_handler("gsm8k")
    assert g({"question": "q", "answer": "work\n#### 1,600"}).label == "1,600"
    cases = [
        (flat, {"problem": "", "answer": "1"}, "empty_prompt"),
        (flat, {"problem": 3, "answer": "1"}, "non_string_prompt"),
        (flat, {"problem": "p"}, "missing_answer"),
        (flat, {"problem": "p", "answer": 5}, "non_string_answer"),
        (g, {"question": "q", "answer": "no marker"}, "missing_answer"),
        (chat, {"prompt": [{"role": "bot", "content": "x"}], "reward_model": {"ground_truth": "1"}}, "bad_messages"),
        (chat, {"prompt": "p", "reward_model": {}}, "missing_answer"),
    ]
    for handler, row, reason in cases:
        with pytest.raises(RowRejected) as exc:
            handler(row)
        assert exc.value.reason == reason, (row, exc.value.reason)


def test_register_custom_handler():
    @register_handler("test_upper")
    class Upper(FlatHandler):
        def label(self, row):
            return super().label(row).upper()

    assert get_handler("test_upper")({"problem": "p", "answer": "x"}).label == "X"
