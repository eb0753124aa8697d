"""Dataset handlers: turn one raw row into chat messages and a ground-truth label.

A handler knows a dataset *layout*; ``map_keys`` says which columns hold the prompt, an optional
query appended to it, the response (ground truth) and an optional per-row system prompt. Keys
may be dotted paths into nested structs (``reward_model.ground_truth``).

Register your own with ``@register_handler("name")`` in a module you name in the preprocessor's
``handler_module``; it is imported before the handler is looked up.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Type

MAP_KEY_NAMES = ("prompt", "query", "response", "system")
# reject reasons speak of the answer, not of the map_keys name that holds it
_NOUN = {"response": "answer"}


class RowRejected(Exception):
    """A row cannot be used; ``reason`` is a short key counted in the summary."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class HandlerError(ValueError):
    """A handler name or map_keys entry is wrong; raised before any row is processed."""


@dataclass
class Sample:
    messages: List[Dict[str, str]]
    label: str


_MISSING = object()


def get_path(row: Mapping[str, Any], path: str) -> Any:
    """``row['a']['b']`` for ``path='a.b'``; a top-level key containing dots wins if present."""
    if path in row:
        return row[path]
    cur: Any = row
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


class Handler:
    """Base handler. Subclasses set ``default_map_keys`` and implement ``messages``."""

    name = "base"
    default_map_keys: Dict[str, Optional[str]] = {}
    required_keys: Sequence[str] = ("prompt", "response")

    def __init__(self, map_keys: Optional[Mapping[str, Optional[str]]] = None):
        unknown = set(map_keys or {}) - set(MAP_KEY_NAMES)
        if unknown:
            raise HandlerError(
                f"map_keys has unknown entries {sorted(unknown)}; allowed: {list(MAP_KEY_NAMES)}"
            )
        self.map_keys: Dict[str, Optional[str]] = {**self.default_map_keys, **dict(map_keys or {})}
        for key in self.required_keys:
            if not self.map_keys.get(key):
                raise HandlerError(f"handler {self.name!r} needs map_keys.{key} (the column holding the {key})")

    def check_columns(self, columns: Iterable[str], source: str) -> None:
        """Fail at once when a mapped column is absent from the input."""
        cols = list(columns)
        for key, path in self.map_keys.items():
            if not path:
                continue
            top = path if path in cols else path.split(".")[0]
            if top not in cols:
                raise HandlerError(
                    f"map_keys.{key}={path!r}: column {top!r} is not in {source}; its columns are {cols}. "
                    f"Fix: map_keys.{key}=<one of those columns>"
                )

    def needed_columns(self, columns: Iterable[str]) -> List[str]:
        """The top-level columns the mapped keys read (the reader loads only these)."""
        cols = set(columns)
        need = []
        for path in self.map_keys.values():
            if path:
                top = path if path in cols else path.split(".")[0]
                if top not in need:
                    need.append(top)
        return need

    # -- per row -------------------------------------------------------------------------------
    def field(self, row: Mapping[str, Any], key: str, required: bool = True) -> Any:
        path = self.map_keys.get(key)
        if not path:
            return None
        value = get_path(row, path)
        if value is _MISSING or value is None:
            if required:
                raise RowRejected(f"missing_{_NOUN.get(key, key)}", f"no value at {path!r}")
            return None
        return value

    def text_field(self, row: Mapping[str, Any], key: str, required: bool = True) -> Optional[str]:
        value = self.field(row, key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise RowRejected(f"non_string_{_NOUN.get(key, key)}", f"{self.map_keys[key]!r} is {type(value).__name__}")
        if required and not value.strip():
            raise RowRejected(f"empty_{_NOUN.get(key, key)}", f"{self.map_keys[key]!r} is empty")
        return value

    def label(self, row: Mapping[str, Any]) -> str:
        return self.text_field(row, "response")

    def messages(self, row: Mapping[str, Any]) -> List[Dict[str, str]]:
        raise NotImplementedError

    def __call__(self, row: Mapping[str, Any]) -> Sample:
        messages = self.messages(row)
        system = self.text_field(row, "system", required=False)
        if system is not None and not (messages and messages[0]["role"] == "system"):
            messages = [{"role": "system", "content": system}] + messages
        return Sample(messages=messages, label=self.label(row))


_REGISTRY: Dict[str, Type[Handler]] = {}


def register_handler(name: str) -> Callable[[Type[Handler]], Type[Handler]]:
    def deco(cls: Type[Handler]) -> Type[Handler]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise HandlerError(f"handler {name!r} is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_handlers() -> List[str]:
    return sorted(_REGISTRY)


def get_handler(name: str, map_keys=None, module: Optional[str] = None) -> Handler:
    """Instantiate handler ``name``; ``module`` (dotted) is imported first to register custom ones."""
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise HandlerError(f"handler_module={module!r} cannot be imported: {exc}") from exc
    if name not in _REGISTRY:
        raise HandlerError(f"unknown handler {name!r}; available: {available_handlers()}")
    return _REGISTRY[name](map_keys)


@register_handler("flat")
class FlatHandler(Handler):
    """One string column is the prompt (plus an optional query appended on a new line)."""

    default_map_keys = {"prompt": "problem", "query": None, "response": "answer", "system": None}

    def messages(self, row):
        prompt = self.text_field(row, "prompt")
        query = self.text_field(row, "query", required=False)
        if query:
            prompt = f"{prompt}\n{query}"
        return [{"role": "user", "content": prompt}]


@register_handler("chat")
class ChatHandler(Handler):
    """verl's layout: ``prompt`` is a list of ``{role, content}`` messages and the ground truth
    sits in ``reward_model.ground_truth``. A plain string prompt is accepted too (one user turn),
    so flat ``problem``/``answer`` files work by changing only ``map_keys``."""

    default_map_keys = {"prompt": "prompt", "query": None, "response": "reward_model.ground_truth", "system": None}

    def messages(self, row):
        value = self.field(row, "prompt")
        if isinstance(value, str):
            if not value.strip():
                raise RowRejected("empty_prompt", f"{self.map_keys['prompt']!r} is empty")
            return [{"role": "user", "content": value}]
        if not isinstance(value, (list, tuple)) or not value:
            raise RowRejected("bad_messages", f"{self.map_keys['prompt']!r} is {type(value).__name__}, not a message list")
        out = []
        for i, msg in enumerate(value):
            if not isinstance(msg, Mapping) or not isinstance(msg.get("content"), str) or msg.get("role") not in (
                "system", "user", "assistant"
            ) or (msg["role"] == "system" and i != 0):
                raise RowRejected("bad_messages", f"message {i} is not a valid {{role, content}} entry")
            out.append({"role": msg["role"], "content": msg["content"]})
        if not any(m["role"] == "user" and m["content"].strip() for m in out):
            raise RowRejected("empty_prompt", "no non-empty user message")
        return out


_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.S)


@register_handler("gsm8k")
class GSM8KHandler(FlatHandler):
    """GSM8K: the label is what follows ``####`` in the worked solution (kept verbatim, e.g. ``1,600``)."""

    default_map_keys = {"prompt": "question", "query": None, "response": "answer", "system": None}

    def label(self, row):
        solution = self.text_field(row, "response")
        m = _GSM8K_ANSWER.search(solution)
        if not m or not m.group(1).strip():
            raise RowRejected("missing_answer", "no '#### <answer>' line in the solution")
        return m.group(1).strip()


@register_handler("countdown")
class CountdownHandler(Handler):
    """Countdown (Mini-R1 / TinyZero layout: ``nums`` list and integer ``target``). The user turn is
    Mini-R1's "Using the numbers [..], create an equation that equals T." (its instructions come
    from the ``qwen_countdown`` template); the label is the JSON the ``countdown`` reward reads."""

    default_map_keys = {"prompt": "nums", "query": None, "response": "target", "system": None}

    def _problem(self, row):
        import json

        nums, target = self.field(row, "prompt"), self.field(row, "response")
        if not isinstance(nums, (list, tuple)) or not nums or not all(isinstance(x, int) and not isinstance(x, bool) for x in nums):
            raise RowRejected("bad_numbers", f"{self.map_keys['prompt']!r} must be a non-empty list of integers, got {nums!r}")
        if isinstance(target, bool) or not isinstance(target, (int, str)) or not str(target).strip().lstrip("-").isdigit():
            raise RowRejected("bad_target", f"{self.map_keys['response']!r} must be an integer, got {target!r}")
        return list(nums), int(target), json

    def messages(self, row):
        nums, target, _ = self._problem(row)
        return [{"role": "user", "content": f"Using the numbers {nums}, create an equation that equals {target}."}]

    def label(self, row):
        nums, target, json = self._problem(row)
        return json.dumps({"target": target, "numbers": nums})
