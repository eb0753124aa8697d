"""Read a MindSpeed-RL dataset YAML (``configs/datasets/deepscaler.yaml``) as it is published.

Its keys become the preprocessor's (``handler_name`` -> ``handler``, ``prompt_type`` -> ``template``;
``map_keys`` entries set to ``""`` mean "no such column", which is ``null`` here); keys this
preprocessor does not need are reported with the reason. ``translate`` returns one note per key.
"""
from __future__ import annotations

from mindspeed_rl.config.errors import ConfigError, Problem

# MindSpeed-RL's instruction handlers (LLaMA-Factory alpaca layout: prompt [+ "\n" + query], response,
# optional system column) are our flat handler; its pairwise / process-reward handlers are not RL prompts.
HANDLERS = {"R1AlpacaStyleInstructionHandler": "flat", "Math17kAlpacaStyleInstructionHandler": "flat",
            "AlpacaStyleInstructionHandler": "flat"}
IGNORED = {
    "tokenizer_type": "tokenizers are HF fast tokenizers (tokenizer_name_or_path)",
    "log_interval": "a progress bar shows the rows done (progress=true)",
    "prompt_type_path": "templates_path names the templates file",
    "seq_length": "prompts longer than max_prompt_length are rejected and counted",
}


def is_mindspeed_dataset_config(data: dict) -> bool:
    return "handler_name" in data or "prompt_type" in data


def translate(data: dict) -> list[str]:
    """Rewrite MindSpeed-RL dataset keys in ``data`` in place; return the notes."""
    notes, problems = [], []
    if "handler_name" in data:
        name = data.pop("handler_name")
        if name in HANDLERS:
            data["handler"] = HANDLERS[name]
            notes.append(f"handler_name={name} is renamed: now handler={HANDLERS[name]} (prompt [+ query], response, system)")
        else:
            problems.append(Problem("handler_name", name, "not a prompt-dataset handler here",
                                    f"use handler: flat / chat / gsm8k / countdown (MindSpeed-RL's {sorted(HANDLERS)} are flat)"))
    if "prompt_type" in data:
        data["template"] = data.pop("prompt_type")
        notes.append(f"prompt_type is renamed: now template={data['template']}")
    if isinstance(data.get("map_keys"), dict):
        emptied = [k for k, v in data["map_keys"].items() if v == ""]
        for key in emptied:
            data["map_keys"][key] = None
    extra = data.pop("dataset_additional_keys", None)
    if extra is not None:
        others = [k for k in extra if k != "labels"]
        if others:
            problems.append(Problem("dataset_additional_keys", extra, f"columns {others} are not carried into the dataset",
                                    "fold them into the prompt or answer with a handler (register_handler), or drop them"))
        else:
            notes.append("dataset_additional_keys=['labels'] is not needed: the answer (map_keys.response) is always "
                         "stored as the label")
    for key, why in IGNORED.items():
        if key in data:
            data.pop(key)
            notes.append(f"{key} is not needed here and is ignored: {why}")
    if problems:
        raise ConfigError(problems, "MindSpeed-RL dataset config")
    return notes
