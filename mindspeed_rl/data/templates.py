"""Chat templates loaded from data (``configs/model/templates.json``).

A template is plain strings: one format per role with the literal placeholder ``{content}``, a
generation prompt that opens the assistant turn, an optional default system prompt, a prefix and
suffix for the first user turn (the R1-Zero instruction lives there) and the stop words a rollout
engine should stop on. Only ``{content}`` is substituted, so LaTeX braces in prompts are safe.

The trainer and the evaluator reuse this module: ``load_template(name).render(prompt)`` gives
exactly the text the preprocessor tokenised.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .mindspeed_templates import convert, is_mindspeed_format

PLACEHOLDER = "{content}"
# Shipped templates; MINDSPEED_RL_TEMPLATES points somewhere else without touching configs.
DEFAULT_TEMPLATES_PATH = Path(__file__).resolve().parents[2] / "configs" / "model" / "templates.json"
_ROLES = ("system", "user", "assistant")

Messages = Sequence[Mapping[str, Any]]


class TemplateError(ValueError):
    """A template file or name is wrong; the message names the file/template and the fix."""


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    system_format: str
    user_format: str
    assistant_format: str
    generation_prompt: str
    default_system: Optional[str] = None
    user_prefix: str = ""
    user_suffix: str = ""
    special_tokens: List[str] = field(default_factory=list)
    stop_words: List[str] = field(default_factory=list)
    description: str = ""

    def render(
        self,
        messages: Union[str, Messages],
        system: Optional[str] = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """Render a prompt string or a list of ``{"role", "content"}`` messages.

        The system turn is, in order of precedence: a ``system`` message in ``messages``, the
        ``system`` argument, the template's ``default_system``; it is omitted when all are None.
        ``user_prefix``/``user_suffix`` wrap the first user turn only.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        turns = list(messages)
        if turns and turns[0].get("role") == "system":
            system = turns[0].get("content")
            turns = turns[1:]
        elif system is None:
            system = self.default_system
        parts = []
        if system is not None:
            parts.append(self.system_format.replace(PLACEHOLDER, system))
        first_user = True
        for i, turn in enumerate(turns):
            role, content = turn.get("role"), turn.get("content")
            if role not in ("user", "assistant"):
                raise TemplateError(
                    f"template {self.name!r}: message {i} has role {role!r}; expected 'user' or "
                    "'assistant' (a 'system' message may only come first)"
                )
            if not isinstance(content, str):
                raise TemplateError(f"template {self.name!r}: message {i} content is {type(content).__name__}, not str")
            if role == "user":
                if first_user:
                    content = self.user_prefix + content + self.user_suffix
                    first_user = False
                parts.append(self.user_format.replace(PLACEHOLDER, content))
            else:
                parts.append(self.assistant_format.replace(PLACEHOLDER, content))
        if add_generation_prompt:
            parts.append(self.generation_prompt)
        return "".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def stop_token_ids(template: ChatTemplate, tokenizer) -> List[int]:
    """EOS and every template stop word that is a single token of ``tokenizer``: the ids a rollout
    engine stops on (it stops on ids, not on text)."""
    ids = []
    for word in template.stop_words:
        tok = tokenizer.encode(word, add_special_tokens=False)
        if len(tok) == 1:
            ids.append(int(tok[0]))
    eos = getattr(tokenizer, "eos_token_id", None)
    for e in (eos if isinstance(eos, (list, tuple)) else [eos]):
        if e is not None:
            ids.append(int(e))
    return sorted(set(ids))


def _templates_path(path: Optional[Union[str, Path]]) -> Path:
    if path is None:
        path = os.environ.get("MINDSPEED_RL_TEMPLATES") or DEFAULT_TEMPLATES_PATH
    return Path(path)


def load_templates(path: Optional[Union[str, Path]] = None) -> Dict[str, ChatTemplate]:
    """All templates in a templates JSON file (keys starting with ``_`` are comments); a file in
    MindSpeed-RL's format (a list) is converted (``mindspeed_templates``)."""
    return _load(path)[0]


def _load(path: Optional[Union[str, Path]]) -> tuple[Dict[str, ChatTemplate], Dict[str, str]]:
    p = _templates_path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(f"templates file {p} not found; pass templates_path=<file> or set MINDSPEED_RL_TEMPLATES") from None
    except json.JSONDecodeError as exc:
        raise TemplateError(f"templates file {p} is not valid JSON: {exc}") from None
    refused: Dict[str, str] = {}
    if is_mindspeed_format(raw):
        raw, refused = convert(raw, str(p))
    elif not isinstance(raw, dict):
        raise TemplateError(f"{p}: expected a JSON object of templates by name (or MindSpeed-RL's list of templates)")
    known = {f for f in ChatTemplate.__dataclass_fields__ if f != "name"}
    required = {f"{r}_format" for r in _ROLES} | {"generation_prompt"}
    out = {}
    for name, spec in raw.items():
        if name.startswith("_"):
            continue
        if not isinstance(spec, dict):
            raise TemplateError(f"{p}: template {name!r} must be a JSON object")
        unknown = set(spec) - known
        missing = required - set(spec)
        if unknown or missing:
            raise TemplateError(
                f"{p}: template {name!r}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
                f"allowed keys: {sorted(known)}"
            )
        for key in required:
            if key.endswith("_format") and PLACEHOLDER not in spec[key]:
                raise TemplateError(f"{p}: template {name!r}: {key} must contain {PLACEHOLDER}")
        out[name] = ChatTemplate(name=name, **spec)
    return out, refused


def load_template(name: str, path: Optional[Union[str, Path]] = None) -> ChatTemplate:
    """The template called ``name``; an unknown name lists the available ones."""
    templates, refused = _load(path)
    if name in refused:
        raise TemplateError(f"template {name!r} in {_templates_path(path)} cannot be used as text: {refused[name]}")
    if name not in templates:
        raise TemplateError(
            f"unknown template {name!r} in {_templates_path(path)}; available: {sorted(templates)}. "
            "Add one by editing that JSON file."
        )
    return templates[name]
