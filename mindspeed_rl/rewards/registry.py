"""Reward functions by name.

A reward function is ``fn(response: str, gold: str, extra: Mapping) -> float``. Register your own
with ``@register_reward("name")`` in an importable module; the scorer's worker processes import
that module by name, so functions must live at module level (not in ``__main__`` of a script run
with spawn, nor as lambdas). ``"package.module:function"`` strings work too, without registering.
"""
from __future__ import annotations

import importlib
from typing import Callable, Mapping

RewardFn = Callable[[str, str, Mapping], float]

_REGISTRY: dict[str, RewardFn] = {}


def register_reward(name: str, *, overwrite: bool = False):
    """Decorator: make ``fn`` selectable as ``verifier_function: [name]``."""

    def deco(fn: RewardFn) -> RewardFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn and not overwrite:
            raise ValueError(f"reward function {name!r} is already registered "
                             f"({_REGISTRY[name].__module__}); pass overwrite=True to replace it")
        _REGISTRY[name] = fn
        return fn

    return deco


def _ensure_builtins() -> None:
    from . import functions, mindspeed_names  # noqa: F401  (register the built-in rewards)


def get_reward(name: str) -> RewardFn:
    """The function registered as ``name`` or importable as ``module:function``."""
    _ensure_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"reward function {name!r} cannot be imported: {exc}") from exc
    raise KeyError(f"unknown reward function {name!r}; registered: {sorted(_REGISTRY)} "
                   "(or give 'package.module:function')")


def available_rewards() -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY)


def function_spec(name: str) -> tuple[str, str, str]:
    """(name, module, qualname): what a worker process needs to find the same function."""
    fn = get_reward(name)
    return name, fn.__module__, fn.__qualname__


def resolve_spec(spec: tuple[str, str, str]) -> RewardFn:
    name, module, qualname = spec
    _ensure_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
