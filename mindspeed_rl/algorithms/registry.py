"""Name -> function registries, so configs select algorithms by string and users can add their own."""
from __future__ import annotations

from typing import Callable, Dict, Iterator, TypeVar

F = TypeVar("F", bound=Callable)


class Registry:
    """A named table of functions filled by the ``register`` decorator.

    Lookups of unknown names raise a KeyError that lists the registered names and the config key
    that selects from this registry, so a typo in a config is fixed in one step.
    """

    def __init__(self, kind: str, config_key: str | None):
        self.kind = kind
        self.config_key = config_key  # None: chosen in code, not by a run key
        self._table: Dict[str, Callable] = {}

    def register(self, *names: str) -> Callable[[F], F]:
        """Register the decorated function under every name in ``names`` (aliases allowed)."""
        if not names:
            raise ValueError(f"register a {self.kind} under at least one name")

        def decorator(fn: F) -> F:
            for name in names:
                if name in self._table and self._table[name] is not fn:
                    raise ValueError(f"{self.kind} {name!r} is already registered to {self._table[name].__qualname__}")
                self._table[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> Callable:
        try:
            return self._table[name]
        except KeyError:
            where = f" (config key `{self.config_key}`)" if self.config_key else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{where}; choose one of: {', '.join(sorted(self._table))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


ADVANTAGE_ESTIMATORS = Registry("advantage estimator", "rl_config.advantage_estimator")
POLICY_LOSSES = Registry("policy loss", "rl_config.policy_loss")
KL_ESTIMATORS = Registry("KL estimator", "rl_config.kl_estimator")
