"""Dict -> dataclass conversion with unknown-key (did-you-mean) and type checks.

Used for every config in the suite, so that a typo such as ``actor_config.lr_decay_styel``
fails before launch with the closest valid key, never silently.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import MISSING, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from mindspeed_rl.config.errors import ConfigError, Problem


def option(default: Any, help: str, **metadata: Any):  # noqa: A002 - mirrors argparse's name
    """A dataclass field with a default and a one-line doc (shown by ``--help``)."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **metadata})
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return field(default_factory=default, metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, problems: list[Problem]) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        section = next((a for a in args if dataclasses.is_dataclass(a)), None)
        if section is not None and isinstance(value, dict):  # an optional section: its own keys' problems
            return _build(section, value, key, problems)
        for arg in args:
            if arg is type(None):
                continue
            trial: list[Problem] = []
            out = _coerce(value, arg, key, trial)
            if not trial:
                return out
        problems.append(Problem(key, value, f"expected {' or '.join(_type_name(a) for a in args)}", "give a value of that type"))
        return value
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(Problem(key, value, f"must be one of {list(allowed)}", f"{hint}use one of {list(allowed)}"))
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            # a bare string must not pass: list("acc") would be ['a', 'c', 'c']
            problems.append(Problem(key, value, "expected a list",
                                    f"write it as a list, e.g. {key}=[{value}]" if isinstance(value, (str, int, float))
                                    else "write it as a YAML list, e.g. [a, b]"))
            return value
        (item_type, *_rest) = get_args(tp) or (Any,)
        return [_coerce(v, item_type, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(Problem(key, value, "expected a mapping", "write it as a YAML mapping"))
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(Problem(key, value, f"expected a section ({tp.__name__})", "write it as a YAML mapping"))
            return tp()
        return _build(tp, value, key, problems)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            problems.append(Problem(key, value, "expected a number", "give a number such as 1e-6"))
            return value
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            problems.append(Problem(key, value, "expected an integer", "give a whole number"))
        return value
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(Problem(key, value, "expected true or false", "write true or false"))
        return value
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            problems.append(Problem(key, value, "expected a string", "quote the value"))
        return value
    return value


def _build(cls: type, data: dict, prefix: str, problems: list[Problem]):
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            close = difflib.get_close_matches(str(name), list(fields), n=1, cutoff=0.6)
            fix = f"did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else (
                f"valid keys here: {', '.join(sorted(fields))}"
            )
            problems.append(Problem(key, value, f"unknown key in {cls.__name__}", fix))
            continue
        kwargs[name] = _coerce(value, hints[name], key, problems)
    for name, f in fields.items():
        if name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
            problems.append(Problem(f"{prefix}.{name}" if prefix else name, None, "required key is missing", "set it"))
    try:
        return cls(**kwargs)
    except TypeError:
        return cls()


def from_dict(cls: type, data: dict, source: str = "config"):
    """Build ``cls`` from a plain dict; raise ConfigError listing every bad key and type."""
    problems: list[Problem] = []
    obj = _build(cls, data or {}, "", problems)
    if problems:
        raise ConfigError(problems, source)
    return obj


def field_docs(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, one-line doc) for every leaf field, for --help."""
    out = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if get_origin(tp) in (Union, types.UnionType):  # an optional section (None: off), e.g. critic_config
            tp = next((a for a in get_args(tp) if dataclasses.is_dataclass(a)), tp)
        if dataclasses.is_dataclass(tp):
            out.extend(field_docs(tp, key + "."))
        else:
            default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else None)
            out.append((key, default, f.metadata.get("help", "")))
    return out
