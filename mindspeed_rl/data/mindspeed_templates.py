"""Templates in MindSpeed-RL's ``configs/model/templates.json`` format (LLaMA-Factory's): a JSON list
of ``{"name", "format_user": {"slots": [...]}, "format_system", "format_assistant",
"format_separator", "format_prefix", "default_system", "stop_words", ...}`` with ``{{content}}``.

Converted to ``ChatTemplate`` so that ``render`` gives MindSpeed-RL's prompt text: its user slot
already opens the assistant turn, so the generation prompt is empty. The separator goes before
every user turn but the first, as LLaMA-Factory places it; here it ends each assistant turn, which
is the same text whenever a user turn follows. A slot that names a token (``["bos_token"]``) needs
the tokenizer and is not plain text: such a template is listed with that reason and refused when
selected, never rendered without its token.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

PLACEHOLDER = "{content}"
_THEIRS = "{{content}}"
# MindSpeed-RL keys that only matter to its tool-calling / multi-modal paths or its tokenizer patching.
_NOT_PROMPT_TEXT = {"format_observation", "format_function", "format_tools", "replace_eos", "efficient_eos",
                    "template_class", "tool_format", "thought_words", "mm_plugin", "stop_words", "name",
                    "default_system", "format_user", "format_system", "format_assistant", "format_separator",
                    "format_prefix"}


def is_mindspeed_format(raw: Any) -> bool:
    return isinstance(raw, list) and all(isinstance(t, dict) and "name" in t for t in raw)


def _slots(spec: dict, key: str, default: str) -> str:
    """The slot list of ``key`` as one string; a token-name slot (a list) raises ValueError."""
    fmt = spec.get(key)
    if fmt is None:
        return default
    text = []
    for slot in fmt.get("slots", []):
        if not isinstance(slot, str):
            raise ValueError(f"{key} has the token slot {slot!r}, which needs the tokenizer; write the token's text "
                             "into the slot instead")
        text.append(slot)
    return "".join(text)


def convert(raw: list, source: str) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, str]]:
    """(our template specs by name, reasons by name for the templates that cannot be plain text)."""
    specs, refused = {}, {}
    for spec in raw:
        name = spec["name"]
        try:
            user = _slots(spec, "format_user", _THEIRS)
            system = _slots(spec, "format_system", _THEIRS)
            assistant = _slots(spec, "format_assistant", _THEIRS)
            separator = _slots(spec, "format_separator", "")
            prefix = _slots(spec, "format_prefix", "")
        except ValueError as exc:
            refused[name] = str(exc)
            continue
        for key, text in (("format_user", user), ("format_system", system), ("format_assistant", assistant)):
            if _THEIRS not in text:
                refused[name] = f"{key} has no {_THEIRS}"
                break
        else:
            default_system = spec.get("default_system") or None
            specs[name] = {
                "description": f"MindSpeed-RL template '{name}' ({source})",
                "system_format": prefix + system.replace(_THEIRS, PLACEHOLDER),
                "user_format": user.replace(_THEIRS, PLACEHOLDER),
                "assistant_format": assistant.replace(_THEIRS, PLACEHOLDER) + separator,
                "generation_prompt": "",
                "default_system": default_system if default_system is not None else ("" if prefix else None),
                "stop_words": list(spec.get("stop_words", [])),
            }
    return specs, refused
